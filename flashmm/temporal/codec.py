"""Workflow payloads encrypted with AES-256-GCM, tagged with a key id so keys can rotate:
new payloads use the first (current) key, old history still decrypts with older keys.

Keys come from ``FLASHMM_CODEC_KEYS`` as ``id:base64key[,id:base64key...]`` (current
first). The same codec serves the Temporal UI's codec endpoint for authorised operators.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"


class CodecKeyError(ValueError):
    """Missing or malformed codec keys (the message never contains key material)."""


def parse_keys(spec: str) -> list[tuple[str, bytes]]:
    out = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        kid, sep, b64 = part.partition(":")
        if not sep or not kid:
            raise CodecKeyError("codec keys must look like id:base64key[,id:base64key]")
        try:
            key = base64.b64decode(b64, validate=True)
        except ValueError:
            raise CodecKeyError(f"codec key {kid!r} is not base64") from None
        if len(key) != 32:
            raise CodecKeyError(f"codec key {kid!r} must be 32 bytes (AES-256)")
        out.append((kid, key))
    if not out:
        raise CodecKeyError("no codec keys configured")
    return out


def new_key_spec(kid: str = "k1") -> str:
    return f"{kid}:{base64.b64encode(secrets.token_bytes(32)).decode()}"


class UnencryptedPayloadError(CodecKeyError):
    """A plain payload reached a strict codec: its sender had no codec key."""


class EncryptionCodec(PayloadCodec):
    """``strict``: refuse payloads that are not encrypted (workers use it, so input sent by a
    client without the key is never acted on and the mistake shows as a clear failure)."""

    def __init__(self, keys: Sequence[tuple[str, bytes]], *, strict: bool = False) -> None:
        if not keys:
            raise CodecKeyError("no codec keys configured")
        self.strict = strict
        self._current = keys[0][0]
        self._keys = {kid: AESGCM(key) for kid, key in keys}

    def __repr__(self) -> str:
        return f"EncryptionCodec(current={self._current!r}, keys={len(self._keys)})"

    @classmethod
    def from_env(cls, env: str = "FLASHMM_CODEC_KEYS", *, strict: bool = False) -> EncryptionCodec:
        spec = os.environ.get(env)
        if not spec:
            raise CodecKeyError(f"set {env} (id:base64key, current first)")
        return cls(parse_keys(spec), strict=strict)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        aes = self._keys[self._current]
        out = []
        for p in payloads:
            nonce = secrets.token_bytes(12)
            data = nonce + aes.encrypt(nonce, p.SerializeToString(), self._current.encode())
            out.append(
                Payload(metadata={"encoding": ENCODING, KEY_ID: self._current.encode()}, data=data)
            )
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for p in payloads:
            if p.metadata.get("encoding") != ENCODING:
                if self.strict:
                    raise UnencryptedPayloadError(
                        "unencrypted payload refused: its sender has no codec key "
                        "(set FLASHMM_CODEC_KEYS, or run the command where the demo's "
                        "profile is found)"
                    )
                out.append(p)  # not ours (e.g. written before encryption was enabled)
                continue
            kid = p.metadata.get(KEY_ID, b"").decode()
            aes = self._keys.get(kid)
            if aes is None:
                raise CodecKeyError(f"no codec key {kid!r} to decrypt this payload")
            try:
                plain = aes.decrypt(p.data[:12], p.data[12:], kid.encode())
            except InvalidTag:
                raise CodecKeyError(f"payload under key {kid!r} failed authentication") from None
            out.append(Payload.FromString(plain))
        return out
