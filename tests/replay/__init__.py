"""Replay tests: recorded books through the live engine."""
