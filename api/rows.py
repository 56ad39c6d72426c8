"""Turning database rows into JSON (decimals as strings, times as ISO 8601) and keyset
cursors (opaque to callers, stable under inserts)."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from api.errors import ApiError


def jsonable(v: Any) -> Any:
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [jsonable(x) for x in v]
    return v


def row(r: Any) -> dict[str, Any]:
    out = {k: jsonable(v) for k, v in dict(r).items()}
    for k, v in out.items():  # jsonb columns arrive as text
        if k in ("details", "metrics", "params", "markets") and isinstance(v, str):
            with contextlib.suppress(ValueError):
                out[k] = json.loads(v)
    return out


def encode_cursor(ts: datetime, key: str) -> str:
    raw = json.dumps([ts.isoformat(), key]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        ts, key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(ts), str(key)
    except (ValueError, TypeError, binascii.Error):
        raise ApiError(422, "cursor is not valid: pass back a next_cursor as it was") from None
