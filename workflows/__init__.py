"""Temporal workflow definitions: deterministic, no I/O, no torch/numpy imports."""
