"""Key references to wallets: ``keystore:<id>`` (the encrypted keystore, secret from the
environment), or ``dev:<name>`` (a development key, only in the dev and test environments).
Callers pass references; the key material stays in the returned ``Wallet``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from flashmm.keys.keystore import Keystore
from flashmm.venue.sei.wallet import Wallet, dev_mnemonic

if TYPE_CHECKING:
    from flashmm.config.settings import Settings


def resolve_key(settings: Settings, ref: str) -> Wallet:
    """A key reference to a wallet; raises on an unsupported reference (naming its kind
    only), a wrong secret, or an unknown or retired key."""
    kind, _, name = ref.partition(":")
    if kind == "keystore":
        return Keystore.from_env(Path(settings.hotpath.keystore_dir)).wallet(name)
    if kind == "dev" and settings.environment in ("dev", "test"):
        return Wallet.from_mnemonic(dev_mnemonic(name))
    raise ValueError(f"unsupported key reference {ref.split(':')[0]!r}")
