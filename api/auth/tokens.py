"""JWT access and refresh tokens (HS256). Access tokens are short-lived and stateless;
refresh tokens are single-use: each has a row, is rotated on use, and reusing a spent one
revokes every refresh token of that user (a stolen token is then worthless).

The signing secret can be rotated without logging everyone out: tokens carry the key id
(``kid``, a hash prefix of their secret) and the previous secret is still accepted for
verification, never for signing."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

import jwt

from api.auth.roles import Role

ALGORITHM = "HS256"
AUDIENCE = "flashmm-api"


class TokenError(Exception):
    """The token is missing, malformed, expired, tampered with or of the wrong kind."""


@dataclass(frozen=True, slots=True)
class Claims:
    subject: str
    role: Role
    kind: str  # access | refresh
    jti: str
    expires_at: int


def key_id(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


class TokenIssuer:
    def __init__(
        self,
        secret: str,
        issuer: str,
        access_ttl_s: int,
        refresh_ttl_s: int,
        previous: str = "",
    ) -> None:
        self._secret = secret
        self._kid = key_id(secret)
        self._verify_keys = {self._kid: secret}
        if previous:
            self._verify_keys[key_id(previous)] = previous
        self.issuer = issuer
        self.access_ttl_s = access_ttl_s
        self.refresh_ttl_s = refresh_ttl_s

    def issue(self, subject: str, role: Role, kind: str) -> tuple[str, Claims]:
        now = int(time.time())
        ttl = self.access_ttl_s if kind == "access" else self.refresh_ttl_s
        claims = Claims(subject, role, kind, secrets.token_hex(16), now + ttl)
        token = jwt.encode(
            {
                "iss": self.issuer,
                "aud": AUDIENCE,
                "sub": subject,
                "role": role.value,
                "typ": kind,
                "jti": claims.jti,
                "iat": now,
                "exp": claims.expires_at,
            },
            self._secret,
            algorithm=ALGORITHM,
            headers={"kid": self._kid},
        )
        return token, claims

    def verify(self, token: str, kind: str) -> Claims:
        try:
            secret = self._verify_keys.get(str(jwt.get_unverified_header(token).get("kid")))
        except jwt.PyJWTError:
            raise TokenError("invalid token") from None
        if secret is None:
            raise TokenError("invalid token")
        try:
            data = jwt.decode(
                token,
                secret,
                algorithms=[ALGORITHM],  # never "none", never an asymmetric/symmetric mix-up
                audience=AUDIENCE,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "sub", "jti", "aud", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("token expired") from None
        except jwt.PyJWTError:
            raise TokenError("invalid token") from None
        if data.get("typ") != kind:
            raise TokenError(f"not an {kind} token" if kind == "access" else f"not a {kind} token")
        try:
            role = Role(str(data.get("role")))
        except ValueError:
            raise TokenError("invalid token") from None
        return Claims(str(data["sub"]), role, kind, str(data["jti"]), int(data["exp"]))
