"""Recorded market data: importers for real venues' captures and the columnar event store."""
