"""Temporal plumbing: the payload codec, the client, schedules."""
