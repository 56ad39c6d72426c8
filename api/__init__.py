"""The operator API (FastAPI); arrives with issue 7."""
