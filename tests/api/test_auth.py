"""Logging in, tokens (expired, tampered, wrong kind, wrong key, alg none), refresh rotation
and reuse detection, API keys (hashed at rest, revoked at once), disabled users."""

from __future__ import annotations

import base64
import json
import time

import jwt

from api.auth.roles import Role
from api.auth.tokens import TokenError, TokenIssuer, key_id
from tests.api.conftest import JWT_SECRET, PASSWORD, Harness


async def test_login_gives_tokens_that_work(harness: Harness) -> None:
    r = await harness.login("viewer")
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 900
    me = await harness.http.get(
        "/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["actor"] == "user:viewer" and me.json()["role"] == "viewer"
    assert me.json()["permissions"] == ["read"]


async def test_wrong_password_and_unknown_user_look_the_same(harness: Harness) -> None:
    bad = await harness.login("viewer", "wrong password!!")
    nobody = await harness.login("nobody", "wrong password!!")
    assert bad.status_code == nobody.status_code == 401
    assert bad.json()["error"]["message"] == nobody.json()["error"]["message"]
    assert "request_id" in bad.json()["error"]


async def test_passwords_and_keys_are_hashed_at_rest(harness: Harness) -> None:
    r = await harness.http.post(
        "/v1/api-keys", json={"name": "bot", "role": "trader"}, headers=harness.auth(Role.ADMIN)
    )
    assert r.status_code == 201
    key = r.json()["key"]
    users = await harness.ctx.pool.fetch("SELECT password_hash FROM api_users")
    keys = await harness.ctx.pool.fetch("SELECT * FROM api_keys")
    dump = json.dumps([dict(u) for u in users] + [dict(k) for k in keys], default=str)
    assert PASSWORD not in dump
    assert key not in dump and key.rsplit("_", 1)[1] not in dump
    assert all(u["password_hash"].startswith("scrypt$") for u in users)


def _forge(claims: dict[str, object], secret: str = JWT_SECRET) -> str:
    base = {
        "iss": "flashmm",
        "aud": "flashmm-api",
        "sub": "admin",
        "role": "admin",
        "typ": "access",
        "jti": "x",
        "iat": int(time.time()),
        "exp": int(time.time()) + 60,
    }
    return jwt.encode(
        {**base, **claims}, secret, algorithm="HS256", headers={"kid": key_id(secret)}
    )


async def _me(h: Harness, token: str) -> tuple[int, str]:
    r = await h.http.get("/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    return r.status_code, r.json().get("error", {}).get("message", "")


async def test_expired_tampered_and_foreign_tokens_are_refused(harness: Harness) -> None:
    h = harness
    assert await _me(h, _forge({})) == (200, "")  # the forge itself is right
    assert await _me(h, _forge({"exp": int(time.time()) - 5})) == (401, "token expired")
    assert (await _me(h, _forge({}, secret="another-secret-" + "x" * 32)))[0] == 401
    assert (await _me(h, _forge({"aud": "someone-else"})))[0] == 401
    assert (await _me(h, _forge({"typ": "refresh"})))[0] == 401
    # a viewer's token with the role claim edited to admin: the signature no longer fits
    head, payload, sig = h.tokens[Role.VIEWER].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["role"] = "admin"
    edited = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    assert (await _me(h, f"{head}.{edited}.{sig}"))[0] == 401
    # alg "none"
    none_head = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("=")
    assert (await _me(h, f"{none_head}.{payload}."))[0] == 401
    assert (await _me(h, "not-a-token"))[0] == 401
    r = await h.http.get("/v1/auth/me")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")


def test_the_signing_secret_rotates_without_logging_everyone_out() -> None:
    old, new = "old-secret-" + "o" * 32, "new-secret-" + "n" * 32
    before = TokenIssuer(old, "flashmm", 900, 3600)
    token, _ = before.issue("alice", Role.VIEWER, "refresh")
    during = TokenIssuer(new, "flashmm", 900, 3600, previous=old)
    assert during.verify(token, "refresh").subject == "alice"  # still valid
    fresh, _ = during.issue("alice", Role.VIEWER, "access")
    assert jwt.get_unverified_header(fresh)["kid"] == key_id(new)  # signed with the new one
    after = TokenIssuer(new, "flashmm", 900, 3600)  # the previous secret removed
    try:
        after.verify(token, "refresh")
    except TokenError as e:
        assert str(e) == "invalid token"
    else:
        raise AssertionError("a token of the removed secret was accepted")
    # a token naming the current key id but signed with another secret
    forged = jwt.encode(
        {"sub": "x"}, "other-" + "x" * 32, algorithm="HS256", headers={"kid": key_id(new)}
    )
    try:
        after.verify(forged, "access")
    except TokenError:
        pass
    else:
        raise AssertionError("forged token accepted")


async def test_role_comes_from_the_store_not_the_token(harness: Harness) -> None:
    """A token minted for a user who is now disabled stops working at once."""
    h = harness
    token = h.tokens[Role.TRADER]
    assert (await _me(h, token))[0] == 200
    r = await h.http.delete("/v1/users/trader", headers=h.auth(Role.ADMIN))
    assert r.status_code == 204
    assert await _me(h, token) == (401, "user disabled or unknown")
    assert (await h.login("trader")).status_code == 401


async def test_refresh_rotates_and_reuse_revokes_everything(harness: Harness) -> None:
    h = harness
    first = (await h.login("operator")).json()
    r1 = await h.http.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r1.status_code == 200
    second = r1.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (await _me(h, second["access_token"]))[0] == 200
    # the spent token again (a thief replaying it): refused, and the new one dies with it
    replay = await h.http.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401
    after = await h.http.post("/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert after.status_code == 401
    # an access token is not a refresh token
    wrong = await h.http.post("/v1/auth/refresh", json={"refresh_token": second["access_token"]})
    assert wrong.status_code == 401


async def test_logout_revokes_the_refresh_token(harness: Harness) -> None:
    h = harness
    pair = (await h.login("viewer")).json()
    r = await h.http.post("/v1/auth/logout", json={"refresh_token": pair["refresh_token"]})
    assert r.status_code == 204
    r = await h.http.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert r.status_code == 401


async def test_api_keys_work_until_revoked(harness: Harness) -> None:
    h = harness
    created = await h.http.post(
        "/v1/api-keys", json={"name": "ci-bot", "role": "viewer"}, headers=h.auth(Role.ADMIN)
    )
    key, key_id = created.json()["key"], created.json()["key_id"]
    assert key.startswith("fmm_")
    r = await h.http.get("/v1/auth/me", headers={"X-API-Key": key})
    assert r.status_code == 200 and r.json()["actor"] == f"apikey:{key_id}"
    r = await h.http.get("/v1/auth/me", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200
    listed = await h.http.get("/v1/api-keys", headers=h.auth(Role.ADMIN))
    assert [k["key_id"] for k in listed.json()] == [key_id]
    assert "key" not in listed.json()[0] and "secret_hash" not in listed.json()[0]
    r = await h.http.delete(f"/v1/api-keys/{key_id}", headers=h.auth(Role.ADMIN))
    assert r.status_code == 204
    r = await h.http.get("/v1/auth/me", headers={"X-API-Key": key})
    assert r.status_code == 401 and r.json()["error"]["message"] == "invalid or revoked API key"
    # a key with a right id and a wrong secret
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    r = await h.http.get("/v1/auth/me", headers={"X-API-Key": forged})
    assert r.status_code == 401
    again = await h.http.delete(f"/v1/api-keys/{key_id}", headers=h.auth(Role.ADMIN))
    assert again.status_code == 404


async def test_user_management_validates(harness: Harness) -> None:
    h = harness
    short = await h.http.post(
        "/v1/users",
        json={"username": "eve", "password": "short", "role": "viewer"},
        headers=h.auth(Role.ADMIN),
    )
    assert short.status_code == 422
    assert short.json()["error"]["fields"][0]["loc"][-1] == "password"
    ok = await h.http.post(
        "/v1/users",
        json={"username": "eve", "password": "a long enough one", "role": "viewer"},
        headers=h.auth(Role.ADMIN),
    )
    assert ok.status_code == 201 and ok.json()["role"] == "viewer"
    assert "password" not in ok.text
    dup = await h.http.post(
        "/v1/users",
        json={"username": "eve", "password": "a long enough one", "role": "admin"},
        headers=h.auth(Role.ADMIN),
    )
    assert dup.status_code == 409
    me = await h.http.delete("/v1/users/admin", headers=h.auth(Role.ADMIN))
    assert me.status_code == 409  # an admin cannot lock themselves out
