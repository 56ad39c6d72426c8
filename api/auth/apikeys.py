"""API keys for automation: ``fmm_<key id>_<secret>``. Only the SHA-256 of the secret is
stored (the secret is 256 random bits, so a fast hash is enough); the whole key is shown
once, at creation."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

PREFIX = "fmm_"
_FORMAT = re.compile(r"^fmm_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")


def new_key() -> tuple[str, str, str]:
    """(key id, the full key to hand out once, the hash to store)."""
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return key_id, f"{PREFIX}{key_id}_{secret}", hash_secret(secret)


def parse(key: str) -> tuple[str, str] | None:
    """(key id, secret), or None when it is not shaped like one of our keys."""
    m = _FORMAT.match(key)
    return (m.group(1), m.group(2)) if m else None


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
