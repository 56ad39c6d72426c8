"""The venue interface the hot path trades through, and its event types."""
