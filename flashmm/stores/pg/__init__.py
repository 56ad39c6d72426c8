"""PostgreSQL: versioned migrations, the hot path's durable background writer, the audit log."""
