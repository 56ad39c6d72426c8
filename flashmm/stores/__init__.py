"""Stores: PostgreSQL (durable records), Redis (hot state), time series (InfluxDB protocol)."""
