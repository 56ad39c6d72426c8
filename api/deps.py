"""Route dependencies: the caller's identity (JWT or API key), their permission for the
action, and their rate limit. ``Depends(require(Permission.X, "write"))`` on every route."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.auth.roles import Permission, allowed
from api.auth.store import Principal
from api.auth.tokens import TokenError
from api.context import AppContext
from api.errors import ApiError
from api.ratelimit import retry_after

bearer = HTTPBearer(auto_error=False, description="JWT access token from /v1/auth/login")
api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="fmm_... API key")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="flashmm"'}


def ctx(request: Request) -> AppContext:
    c: AppContext = request.app.state.ctx
    return c


async def authenticate(c: AppContext, token: str | None, key: str | None) -> Principal:
    """The principal for a bearer token or an API key; 401 otherwise."""
    if key:
        p = await c.identities.check_key(key)
        if p is None:
            raise ApiError(401, "invalid or revoked API key", _CHALLENGE)
        return p
    if not token:
        raise ApiError(401, "authentication required", _CHALLENGE)
    if token.startswith("fmm_"):  # an API key sent as a bearer token
        return await authenticate(c, None, token)
    try:
        claims = c.issuer.verify(token, "access")
    except TokenError as e:
        raise ApiError(401, str(e), _CHALLENGE) from None
    user = await c.identities.active_user(claims.subject)
    if user is None:
        raise ApiError(401, "user disabled or unknown", _CHALLENGE)
    return user


def limit(c: AppContext, cls: str, identity: str) -> None:
    wait = c.limiter.take(cls, identity)
    if wait > 0:
        raise ApiError(429, f"rate limit for {cls} requests", {"Retry-After": retry_after(wait)})


def require(permission: Permission, cls: str = "read") -> Callable[..., Awaitable[Principal]]:
    async def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),  # noqa: B008
        key: str | None = Depends(api_key),
    ) -> Principal:
        c = ctx(request)
        principal = await authenticate(c, credentials.credentials if credentials else None, key)
        request.state.principal = principal
        limit(c, cls, principal.actor)
        if not allowed(principal.role, permission):
            raise ApiError(403, f"role {principal.role.value} may not {permission.value}")
        return principal

    return dependency
