"""``flashmm api`` (serve the operator API) and ``flashmm api-user`` / ``flashmm api-key``
(bootstrap identities without the API, e.g. the first admin)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys

from flashmm.config import Settings

ROLES = ["viewer", "trader", "operator", "admin"]


def add_api_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    a = sub.add_parser(
        "api",
        help="serve the operator REST/WebSocket API",
        description="Needs the JWT secret in FLASHMM_API_JWT_SECRET (32+ bytes) and the "
        "stores; migrates the database first. Listens on api.host:api.port.",
    )
    a.add_argument("--host", default=None, help="default: api.host")
    a.add_argument("--port", type=int, default=None, help="default: api.port")

    u = sub.add_parser("api-user", help="add a user or set a user's password")
    u.add_argument("action", choices=["add", "passwd"])
    u.add_argument("username")
    u.add_argument("--role", choices=ROLES, default="viewer")
    u.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from stdin (else FLASHMM_API_PASSWORD, else a prompt)",
    )

    k = sub.add_parser("api-key", help="create or revoke an API key for automation")
    k.add_argument("action", choices=["create", "revoke"])
    k.add_argument("name", help="create: a name for the key; revoke: its key id")
    k.add_argument("--role", choices=ROLES, default="viewer")


def run_api(settings: Settings, host: str | None, port: int | None) -> int:
    import uvicorn

    from api.app import create_app
    from flashmm.stores.pg.migrate import migrate

    settings.api.jwt_secret()  # refuse to start without one
    settings.setup_logging()
    if settings.stores.migrate_on_start:
        asyncio.run(migrate(settings.stores.postgres_dsn))
    config = uvicorn.Config(
        create_app(settings),
        host=host or settings.api.host,
        port=settings.api.port if port is None else port,
        access_log=False,  # the pipeline records requests as metrics and audit entries
        log_config=None,
        proxy_headers=False,
        server_header=False,
        ws="websockets-sansio",
        ws_max_size=64 * 1024,  # clients send only the auth message
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)

    async def serve() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.05)
        if server.started:
            bound = server.servers[0].sockets[0].getsockname()
            print(json.dumps({"event": "api", "host": bound[0], "port": bound[1]}), flush=True)
        await task

    asyncio.run(serve())
    from cli.control import exit_now

    exit_now(0)


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    return os.environ.get("FLASHMM_API_PASSWORD") or getpass.getpass("password: ")


def run_api_user(settings: Settings, args: argparse.Namespace) -> int:
    from api.auth.roles import Role
    from api.auth.store import IdentityStore

    password = _password(args)

    async def go() -> str:
        import asyncpg

        from flashmm.stores.pg.migrate import migrate

        await migrate(settings.stores.postgres_dsn)
        pool = await asyncpg.create_pool(settings.stores.postgres_dsn, min_size=1, max_size=2)
        try:
            ids = IdentityStore(pool)
            if args.action == "add":
                await ids.create_user(args.username, password, Role(args.role))
                return "added"
            if not await ids.set_password(args.username, password):
                raise ValueError(f"no user {args.username!r}")
            return "password set"
        finally:
            await pool.close()

    print(json.dumps({"user": args.username, "result": asyncio.run(go())}))
    return 0


def run_api_key(settings: Settings, args: argparse.Namespace) -> int:
    from api.auth.roles import Role
    from api.auth.store import IdentityStore

    async def go() -> dict[str, str]:
        import asyncpg

        from flashmm.stores.pg.migrate import migrate

        await migrate(settings.stores.postgres_dsn)
        pool = await asyncpg.create_pool(settings.stores.postgres_dsn, min_size=1, max_size=2)
        try:
            ids = IdentityStore(pool)
            if args.action == "create":
                actor = "cli:" + os.environ.get("USER", "operator")
                key_id, key = await ids.create_key(args.name, Role(args.role), actor)
                return {"key_id": key_id, "key": key, "note": "shown once: store it now"}
            if not await ids.revoke_key(args.name):
                raise ValueError(f"no active API key {args.name!r}")
            return {"key_id": args.name, "result": "revoked"}
        finally:
            await pool.close()

    print(json.dumps(asyncio.run(go())))
    return 0
