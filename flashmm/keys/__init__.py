"""Signing keys: an encrypted keystore with cold, warm and hot tiers."""
