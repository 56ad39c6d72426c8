"""Temporal workflow definitions (deterministic, no I/O); the control plane arrives with issue 6."""
