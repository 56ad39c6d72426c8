"""Worker processes hosting workflows and activities; the control plane arrives with issue 6."""
