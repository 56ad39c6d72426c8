"""The signing keys the platform uses, for ``GET /v1/keys``: addresses and where each key
comes from, never key material.

Three sources, one list:

* ``settings mnemonic``: each market's hot path signs with the mnemonic its settings give it
  (``venue.mnemonic_env``, or in dev/test a development key derived per market, which is
  what ``make demo`` uses). The address is derived here; the mnemonic is dropped at once,
  never returned, logged or kept (only the address is cached, keyed by a hash).
* ``keystore``: keys in the keystore directory (``hotpath.keystore_dir``), read from each
  file's public metadata only; the keystore secret is not needed and not used. A key
  created by a rotation names its market in its label.
* ``key_metadata``: rows of the PostgreSQL table that are not in this keystore (another
  host's keystore, or a retired file).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from api.context import AppContext
from api.rows import row

_ADDRESSES: dict[str, str] = {}  # sha256(mnemonic) -> address


def _address(mnemonic: str) -> str:
    digest = hashlib.sha256(mnemonic.encode()).hexdigest()
    found = _ADDRESSES.get(digest)
    if found is None:
        from flashmm.venue.sei.wallet import Wallet

        found = _ADDRESSES[digest] = str(Wallet.from_mnemonic(mnemonic).address)
    return found


def settings_keys(settings: Any) -> list[dict[str, Any]]:
    """One entry per market whose settings give it a signing mnemonic."""
    venue = settings.venue
    from_env = bool(os.environ.get(venue.mnemonic_env))
    out = []
    for m in settings.markets:
        try:
            address = _address(venue.mnemonic(settings.environment, m.symbol))
        except ValueError:  # no key configured for this market in this environment
            continue
        account = venue.account_name(m.symbol)
        out.append(
            {
                "key_id": f"settings:{m.symbol}",
                "address": address,
                "market": m.symbol,
                "source": "settings mnemonic",
                "detail": (
                    f"mnemonic from ${venue.mnemonic_env}"
                    if from_env
                    else f"development key {account!r} derived from the settings "
                    f"(environment {settings.environment})"
                ),
                "tier": "hot",
                "status": "active",
                "created_at": None,
                "retired_at": None,
            }
        )
    return out


def _iso(ts: Any) -> str | None:
    if isinstance(ts, int | float) and ts:
        return datetime.fromtimestamp(ts, UTC).isoformat()
    return None


def _market_of(label: str, markets: list[str]) -> str | None:
    """``rotation SEI/USDC <run id>`` (``workflows/rotate_key_types.rotation_label``)."""
    parts = label.split()
    if len(parts) >= 2 and parts[0] == "rotation" and parts[1] in markets:
        return parts[1]
    return None


def keystore_keys(directory: Path, markets: list[str]) -> list[dict[str, Any]]:
    """The keystore's public metadata (no secret needed, none read into the answer)."""
    out: list[dict[str, Any]] = []
    if not directory.is_dir():
        return out
    for p in sorted(directory.glob("*.json")):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
            meta = json.loads(p.read_text())["meta"]
            label = str(meta.get("label") or "")
            out.append(
                {
                    "key_id": str(meta["key_id"]),
                    "ref": f"keystore:{meta['key_id']}",
                    "address": str(meta["address"]),
                    "market": _market_of(label, markets),
                    "source": "keystore",
                    "label": label,
                    "tier": str(meta.get("tier", "")),
                    "status": str(meta.get("status", "")),
                    "created_at": _iso(meta.get("created_at")),
                    "retired_at": _iso(meta.get("retired_at")),
                }
            )
    return out


async def signing_keys(c: AppContext) -> list[dict[str, Any]]:
    """Settings keys per market first, then the keystore's and the recorded ones, newest
    first."""
    markets = c.markets
    directory = Path(c.settings.hotpath.keystore_dir)
    from_settings, from_keystore, rows = await asyncio.gather(
        asyncio.to_thread(settings_keys, c.settings),
        asyncio.to_thread(keystore_keys, directory, markets),
        c.pool.fetch(
            "SELECT key_id, tier, address, status, created_at, retired_at FROM key_metadata "
            "ORDER BY created_at DESC, key_id LIMIT 1000"
        ),
    )
    stored = {k["key_id"]: k for k in from_keystore}
    for r in rows:
        rec = row(r)
        known = stored.get(rec["key_id"])
        if known is not None:
            known["recorded"] = True  # also in key_metadata
            continue
        stored[rec["key_id"]] = {
            **rec,
            "ref": f"keystore:{rec['key_id']}",
            "market": None,
            "source": "key_metadata",
        }
    rest = sorted(stored.values(), key=lambda k: k.get("created_at") or "", reverse=True)
    keys: list[dict[str, Any]] = from_settings + rest
    return keys
