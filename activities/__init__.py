"""Retryable, idempotent activities that workflows run; the control plane arrives with issue 6."""
