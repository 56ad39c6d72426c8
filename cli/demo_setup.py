"""What ``flashmm demo`` prepares around the processes it starts: the local stores and the
database's application role, the key that encrypts workflow payloads, the connection profile
client commands read, and each market's trading account on the localnet."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from flashmm.config import Settings


def write_profile(
    path: Path, control: Any, hotpaths: dict[str, str], pw_file: Path, env: dict[str, str]
) -> None:
    from flashmm import profile

    keys = profile.write_secret(control.run_dir / "codec-keys", env["FLASHMM_CODEC_KEYS"])
    token = profile.write_secret(control.run_dir / "control-token", control.token)
    profile.write(
        profile.Profile(
            pid=os.getpid(),
            temporal_address=control.address,
            namespace="default",
            temporal_ui=control.ui,
            api_url=control.api,
            api_user="admin",
            api_password_file=str(pw_file),
            codec_keys_file=str(keys),
            control_token_file=str(token),
            hotpaths=hotpaths,
        ),
        path,
    )


def codec_key() -> str:
    from flashmm.temporal.codec import new_key_spec

    return new_key_spec("demo1")


def ensure_stores(settings: Settings) -> tuple[Settings, dict[str, str], bool]:
    """This project's own local PostgreSQL/Redis/VictoriaMetrics when the settings point at
    the local defaults: a server on those ports that is not provably ours is never used (a
    private one is started on a free port, and the demo says so). Returns the settings and
    child environment that point at the servers used, and whether the demo started them (so
    it stops them again at the end)."""
    from flashmm import devservices

    st, local = settings.stores, devservices.configured()
    if (st.postgres_dsn, st.redis_url, st.timeseries_url) != (
        local.pg_dsn,
        local.redis_url,
        local.vm_url,
    ):
        return settings, {}, False  # the operator's own stores: used as configured
    before = devservices.status()
    try:
        eps = devservices.ensure(announce=False)
    except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
        print(
            f"flashmm demo: local stores unavailable ({e}); trading without them",
            file=sys.stderr,
        )
        return settings, {}, False
    for note in eps.notes:  # which server was foreign and where ours runs
        print(f"flashmm demo: {note}", file=sys.stderr, flush=True)
    stores = st.model_copy(
        update={
            "postgres_dsn": eps.pg_dsn,
            "redis_url": eps.redis_url,
            "timeseries_url": eps.vm_url,
        }
    )
    started = not any(before.values())
    return settings.model_copy(update={"stores": stores}), eps.stores_env(), started


async def app_role_env(settings: Settings) -> dict[str, str]:
    """Migrate as the owner; the services get the application role's DSN (not the owner's)."""
    from flashmm.stores.pg.migrate import migrate_for_services

    try:
        dsn = await asyncio.wait_for(migrate_for_services(settings.stores), 30)
    except Exception as e:  # stores unavailable: the services run without them
        print(f"flashmm demo: database roles not set up ({type(e).__name__})", file=sys.stderr)
        return {}
    return {"FLASHMM_STORES__POSTGRES_DSN": dsn}


def trader_address(settings: Settings, symbol: str) -> str:
    from flashmm.venue.sei.wallet import Wallet

    return Wallet.from_mnemonic(settings.venue.mnemonic(settings.environment, symbol)).address
