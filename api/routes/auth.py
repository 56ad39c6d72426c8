"""Log in, refresh, log out, who am I; users and API keys (admin).

Login is throttled per client address (every attempt: each costs a password hash) and per
(user name, client address) for failures, never per user name alone: wrong passwords sent
from one address cannot lock the user out from another. Refresh and logout have their own
bucket per address, apart from logins."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from api.auth.roles import GRANTS, Permission
from api.auth.store import Principal
from api.auth.tokens import TokenError
from api.deps import client_address, ctx, limit, require
from api.errors import COMMON, ApiError
from api.models import (
    ApiKeyCreated,
    ApiKeyInfo,
    KeyCreate,
    LoginRequest,
    Me,
    RefreshRequest,
    TokenPair,
    User,
    UserCreate,
)
from api.ratelimit import retry_after
from flashmm.inputs import short

router = APIRouter(prefix="/v1", responses=COMMON)
READ = require(Permission.READ)
ADMIN = require(Permission.ADMIN, "write")


async def _pair(request: Request, p: Principal) -> TokenPair:
    c = ctx(request)
    access, _ = c.issuer.issue(p.name, p.role, "access")
    refresh, rc = c.issuer.issue(p.name, p.role, "refresh")
    await c.identities.remember_refresh(rc.jti, p.name, rc.expires_at)
    return TokenPair(access_token=access, refresh_token=refresh, expires_in=c.issuer.access_ttl_s)


@router.post("/auth/login", response_model=TokenPair, tags=["auth"], name="auth.login")
async def login(body: LoginRequest, request: Request) -> TokenPair:
    c = ctx(request)
    request.state.claimed = f"login:{body.username}"
    address = client_address(request)
    pair = f"{address} {body.username}"  # an address has no space in it
    wait = c.limiter.wait("login_failures", pair)
    if wait > 0:  # checked before the password: guessing one account stays slow
        raise ApiError(
            429, "too many failed logins for this user from this address",
            {"Retry-After": retry_after(wait)},
        )  # fmt: skip
    limit(c, "login", f"addr:{address}")
    p = await c.identities.check_password(body.username, body.password)
    if p is None:
        c.limiter.take("login_failures", pair)
        raise ApiError(401, "invalid username or password")
    c.limiter.forget("login_failures", pair)
    request.state.principal = p
    return await _pair(request, p)


@router.post("/auth/refresh", response_model=TokenPair, tags=["auth"], name="auth.refresh")
async def refresh(body: RefreshRequest, request: Request) -> TokenPair:
    c = ctx(request)
    limit(c, "refresh", f"addr:{client_address(request)}")
    try:
        claims = c.issuer.verify(body.refresh_token, "refresh")
    except TokenError as e:
        raise ApiError(401, str(e)) from None
    request.state.claimed = f"user:{claims.subject}"
    user = await c.identities.active_user(claims.subject)
    if user is None:
        raise ApiError(401, "user disabled or unknown")
    pair = await _pair(request, user)
    new_jti = c.issuer.verify(pair.refresh_token, "refresh").jti
    if not await c.identities.spend_refresh(claims.jti, claims.subject, new_jti):
        await c.identities.revoke_refresh(new_jti)
        raise ApiError(401, "refresh token already used or revoked: log in again")
    request.state.principal = user
    return pair


@router.post("/auth/logout", status_code=204, tags=["auth"], name="auth.logout")
async def logout(body: RefreshRequest, request: Request) -> Response:
    c = ctx(request)
    limit(c, "refresh", f"addr:{client_address(request)}")
    try:
        claims = c.issuer.verify(body.refresh_token, "refresh")
    except TokenError as e:
        raise ApiError(401, str(e)) from None
    request.state.claimed = f"user:{claims.subject}"
    await c.identities.revoke_refresh(claims.jti)
    return Response(status_code=204)


@router.get("/auth/me", response_model=Me, tags=["auth"], name="auth.me")
async def me(p: Principal = Depends(READ)) -> Me:  # noqa: B008
    return Me(
        actor=p.actor,
        kind=p.kind,
        name=p.name,
        role=p.role,
        permissions=sorted(x.value for x in GRANTS[p.role]),
    )


@router.get("/users", response_model=list[User], tags=["admin"], name="users.list")
async def list_users(request: Request, _: Principal = Depends(ADMIN)) -> list[User]:  # noqa: B008
    return [User(**u) for u in await ctx(request).identities.list_users()]


@router.post(
    "/users",
    response_model=User,
    status_code=201,
    tags=["admin"],
    name="users.create",
    responses={409: COMMON[422] | {"description": "exists"}},
)
async def create_user(
    body: UserCreate,
    request: Request,
    _: Principal = Depends(ADMIN),  # noqa: B008
) -> User:
    ids = ctx(request).identities
    try:
        await ids.create_user(body.username, body.password, body.role)
    except ValueError as e:
        raise ApiError(409, str(e)) from None
    return next(User(**u) for u in await ids.list_users() if u["username"] == body.username)


@router.delete(
    "/users/{username}",
    status_code=204,
    tags=["admin"],
    name="users.disable",
    responses={404: COMMON[422] | {"description": "not found"}},
)
async def disable_user(
    username: str,
    request: Request,
    p: Principal = Depends(ADMIN),  # noqa: B008
) -> Response:
    if p.kind == "user" and p.name == username:
        raise ApiError(409, "you cannot disable yourself")
    if not await ctx(request).identities.disable_user(username):
        raise ApiError(404, f"no user {short(username)!r}")
    return Response(status_code=204)


@router.get("/api-keys", response_model=list[ApiKeyInfo], tags=["admin"], name="keys.list_api")
async def list_api_keys(
    request: Request,
    _: Principal = Depends(ADMIN),  # noqa: B008
) -> list[ApiKeyInfo]:
    return [ApiKeyInfo(**k) for k in await ctx(request).identities.list_keys()]


@router.post(
    "/api-keys",
    response_model=ApiKeyCreated,
    status_code=201,
    tags=["admin"],
    name="keys.create_api",
)
async def create_api_key(
    body: KeyCreate,
    request: Request,
    p: Principal = Depends(ADMIN),  # noqa: B008
) -> ApiKeyCreated:
    key_id, key = await ctx(request).identities.create_key(body.name, body.role, p.actor)
    return ApiKeyCreated(key_id=key_id, key=key, name=body.name, role=body.role)


@router.delete(
    "/api-keys/{key_id}",
    status_code=204,
    tags=["admin"],
    name="keys.revoke_api",
    responses={404: COMMON[422] | {"description": "not found"}},
)
async def revoke_api_key(
    key_id: str,
    request: Request,
    _: Principal = Depends(ADMIN),  # noqa: B008
) -> Response:
    if not await ctx(request).identities.revoke_key(key_id):
        raise ApiError(404, f"no active API key {short(key_id)!r}")
    return Response(status_code=204)
