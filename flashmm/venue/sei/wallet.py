"""Sei keys: a mnemonic through HD path m/44'/118'/0'/0/0 to a secp256k1 key and a
``sei1...`` bech32 address (coin type 118), with cosmpy doing the cryptography.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cosmpy.crypto.address import Address
from cosmpy.crypto.keypairs import PrivateKey, PublicKey
from cosmpy.mnemonic import derive_child_key_from_mnemonic, entropy_to_mnemonic

HD_PATH = "m/44'/118'/0'/0/0"
PREFIX = "sei"


@dataclass(frozen=True)
class Wallet:
    """A signing key and its address. ``repr`` never shows key material."""

    key: PrivateKey
    address: str

    def __repr__(self) -> str:
        return f"Wallet(address={self.address!r})"

    @property
    def public_key(self) -> PublicKey:
        return self.key.public_key

    @property
    def public_key_bytes(self) -> bytes:
        return bytes(self.key.public_key.public_key_bytes)

    def sign(self, message: bytes) -> bytes:
        """Deterministic (RFC 6979), canonical low-S secp256k1 signature over sha256."""
        return bytes(self.key.sign(message, deterministic=True, canonicalise=True))

    @classmethod
    def from_mnemonic(cls, mnemonic: str, path: str = HD_PATH) -> Wallet:
        key = PrivateKey(derive_child_key_from_mnemonic(mnemonic, path=path))
        return cls(key, address_of(key.public_key))

    @classmethod
    def from_private_key(cls, raw: bytes) -> Wallet:
        key = PrivateKey(raw)
        return cls(key, address_of(key.public_key))


def address_of(public_key: PublicKey | bytes) -> str:
    """bech32 ``sei1...`` address of a compressed secp256k1 public key."""
    pk = public_key if isinstance(public_key, PublicKey) else PublicKey(public_key)
    return str(Address(pk, prefix=PREFIX))


def dev_mnemonic(name: str) -> str:
    """A reproducible BIP-39 mnemonic for local development accounts (never for real funds)."""
    return str(entropy_to_mnemonic(hashlib.sha256(f"flashmm-dev/{name}".encode()).digest()[:16]))


def contract_address(symbol: str) -> str:
    """A stable ``sei1...`` contract address for a market on the localnet."""
    digest = hashlib.sha256(f"flashmm-dex/{symbol}".encode()).digest()
    return str(Address(digest[:20], prefix=PREFIX))


def valid_address(text: str) -> bool:
    """True for a well-formed ``sei1...`` address of 20 bytes."""
    try:
        a = Address(text)
    except (RuntimeError, TypeError, ValueError):
        return False
    return text.startswith(PREFIX + "1") and len(bytes(a)) == 20
