"""Who is calling and what they may do: passwords, JWTs, API keys, roles."""
