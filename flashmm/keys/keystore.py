"""The keystore: signing keys encrypted at rest with AES-256-GCM under a key derived with
scrypt from an operator secret. One JSON file per key; the metadata (id, tier, address,
status, times) is readable without the secret, the key material is not.

Tiers: ``cold`` (never on the hot path, may live offline), ``warm`` (operational: funds the
hot key), ``hot`` (what the hot path signs with; limited funds, rotated). Callers pass
references (``keystore:<id>``), never key material; nothing here logs or reprs a secret.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from flashmm.venue.sei.wallet import Wallet

TIERS = ("cold", "warm", "hot")
# scrypt cost: 2^15 × 8 × 1 ≈ 32 MiB and ~0.1 s per derivation (OWASP's minimum is 2^17 with
# r=8 for interactive logins; keys are derived rarely, so the stronger setting is affordable)
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**17, 8, 1


class KeystoreError(RuntimeError):
    """Wrong secret, tampered file, unknown key or invalid request (never shows secrets)."""


@dataclass(frozen=True)
class KeyMeta:
    key_id: str
    tier: str
    address: str
    status: str  # active | retired
    label: str
    created_at: float
    retired_at: float | None = None

    @property
    def ref(self) -> str:
        return f"keystore:{self.key_id}"


class Keystore:
    def __init__(self, directory: Path, secret: str) -> None:
        if len(secret) < 16:
            raise KeystoreError("keystore secret must be at least 16 characters")
        self.dir = directory
        self._secret = secret.encode()

    def __repr__(self) -> str:
        return f"Keystore({str(self.dir)!r})"

    @classmethod
    def from_env(cls, directory: Path, env: str = "FLASHMM_KEYSTORE_SECRET") -> Keystore:
        secret = os.environ.get(env)
        if not secret:
            raise KeystoreError(f"set {env} to open the keystore")
        return cls(directory, secret)

    def _kek(self, salt: bytes) -> bytes:
        return Scrypt(salt=salt, length=32, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P).derive(self._secret)

    def _path(self, key_id: str) -> Path:
        if not key_id or not all(c.isalnum() or c == "-" for c in key_id):
            raise KeystoreError(f"invalid key id {key_id!r}")
        return self.dir / f"{key_id}.json"

    # --- create / read --------------------------------------------------------------------
    def create(self, tier: str, label: str = "", raw: bytes | None = None) -> KeyMeta:
        """A new random key (or ``raw`` 32 bytes, for imports) in ``tier``."""
        if tier not in TIERS:
            raise KeystoreError(f"tier must be one of {TIERS}, got {tier!r}")
        raw = raw if raw is not None else secrets.token_bytes(32)
        wallet = Wallet.from_private_key(raw)
        meta = KeyMeta(
            f"{tier}-{uuid.uuid4().hex[:12]}",
            tier,
            wallet.address,
            "active",
            label[:100],
            time.time(),
        )
        salt = secrets.token_bytes(16)
        nonce = secrets.token_bytes(12)
        aad = meta.key_id.encode()
        blob = AESGCM(self._kek(salt)).encrypt(nonce, raw, aad)
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        doc = {
            "meta": asdict(meta),
            "kdf": {
                "name": "scrypt",
                "n": SCRYPT_N,
                "r": SCRYPT_R,
                "p": SCRYPT_P,
                "salt": _b64(salt),
            },
            "cipher": {"name": "AES-256-GCM", "nonce": _b64(nonce), "data": _b64(blob)},
        }
        path = self._path(meta.key_id)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f)
        return meta

    def meta(self, key_id: str) -> KeyMeta:
        return KeyMeta(**self._doc(key_id)["meta"])

    def list(self) -> list[KeyMeta]:
        if not self.dir.exists():
            return []
        return sorted(
            (KeyMeta(**json.loads(p.read_text())["meta"]) for p in self.dir.glob("*.json")),
            key=lambda m: m.created_at,
        )

    def wallet(self, key_id: str) -> Wallet:
        """Decrypt a key into a wallet (for signing in memory). Cold keys are refused."""
        doc = self._doc(key_id)
        meta = KeyMeta(**doc["meta"])
        if meta.tier == "cold":
            raise KeystoreError("cold keys never leave the keystore for signing here")
        if meta.status != "active":
            raise KeystoreError(f"key {key_id} is {meta.status}")
        kdf, c = doc["kdf"], doc["cipher"]
        try:
            raw = AESGCM(self._kek(_unb64(kdf["salt"]))).decrypt(
                _unb64(c["nonce"]), _unb64(c["data"]), meta.key_id.encode()
            )
        except InvalidTag:
            raise KeystoreError(
                f"cannot decrypt key {key_id}: wrong secret or tampered file"
            ) from None
        w = Wallet.from_private_key(raw)
        if w.address != meta.address:
            raise KeystoreError(f"key {key_id} does not match its recorded address")
        return w

    def retire(self, key_id: str) -> KeyMeta:
        doc = self._doc(key_id)
        if doc["meta"]["status"] != "retired":
            doc["meta"]["status"] = "retired"
            doc["meta"]["retired_at"] = time.time()
            path = self._path(key_id)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(doc))
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        return KeyMeta(**doc["meta"])

    def _doc(self, key_id: str) -> dict:  # type: ignore[type-arg]
        path = self._path(key_id)
        if not path.exists():
            raise KeystoreError(f"unknown key {key_id}")
        doc: dict = json.loads(path.read_text())  # type: ignore[type-arg]
        return doc


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _unb64(s: str) -> bytes:
    return base64.b64decode(s)
