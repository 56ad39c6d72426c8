"""Market data import tests."""
