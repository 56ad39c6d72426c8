"""Local PostgreSQL, Redis and VictoriaMetrics for development, tests and the demo.

``ensure()`` reuses a server already listening on the configured loopback port and starts
the missing ones from Debian's packages, with data under ``.run/``; ``stop()`` stops only
the servers it started (pid files in ``.run/``). A file lock makes concurrent callers (test
workers) safe. Never used in production: there the settings point at managed services.
"""

from __future__ import annotations

import fcntl
import glob
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

RUN = Path(os.environ.get("FLASHMM_RUN_DIR", Path(__file__).resolve().parent.parent / ".run"))
PG_PORT = int(os.environ.get("FLASHMM_DEV_PG_PORT", "55432"))
REDIS_PORT = int(os.environ.get("FLASHMM_DEV_REDIS_PORT", "56379"))
VM_PORT = int(os.environ.get("FLASHMM_DEV_VM_PORT", "58428"))
PG_DSN = f"postgresql://flashmm@127.0.0.1:{PG_PORT}/flashmm"
REDIS_URL = f"redis://127.0.0.1:{REDIS_PORT}/0"
VM_URL = f"http://127.0.0.1:{VM_PORT}"


def listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def _wait(port: int, what: str, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if listening(port):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start listening on 127.0.0.1:{port}")


@contextmanager
def _locked() -> Iterator[None]:
    RUN.mkdir(parents=True, exist_ok=True)
    with open(RUN / "services.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} not found: run scripts/system-deps.sh")
    return path


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _start_postgres() -> None:
    data = RUN / "pg"
    if not (data / "PG_VERSION").exists():
        data.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(data, "postgres", "postgres")
            os.chmod(RUN, 0o755)
        subprocess.run(
            _as_postgres(
                [_pg_bin("initdb"), "-D", str(data), "-U", "flashmm", "--auth=trust", "-E", "UTF8"]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
    sock = RUN / "pgsock"
    sock.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(sock, "postgres", "postgres")
    opts = f"-c listen_addresses=127.0.0.1 -p {PG_PORT} -k {sock} -c fsync=off"
    subprocess.run(
        _as_postgres(
            [
                _pg_bin("pg_ctl"),
                "-D",
                str(data),
                "-o",
                opts,
                "-l",
                str(data / "server.log"),
                "-w",
                "start",
            ]
        ),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    (RUN / "pg.started").write_text("1")
    _wait(PG_PORT, "PostgreSQL")
    r = subprocess.run(
        [
            _pg_bin("psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(PG_PORT),
            "-U",
            "flashmm",
            "-d",
            "postgres",
            "-tAc",
            "SELECT 1 FROM pg_database WHERE datname='flashmm'",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    if r.stdout.strip() != "1":
        subprocess.run(
            [
                _pg_bin("createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(PG_PORT),
                "-U",
                "flashmm",
                "flashmm",
            ],
            check=True,
        )


def _start_daemon(name: str, cmd: list[str], port: int) -> None:
    log = open(RUN / f"{name}.log", "ab")  # noqa: SIM115 (kept open by the child)
    p = subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)
    (RUN / f"{name}.pid").write_text(str(p.pid))
    _wait(port, name)


def ensure(postgres: bool = True, redis: bool = True, victoria: bool = True) -> None:
    """Make sure each requested server listens on its loopback port."""
    with _locked():
        if postgres and not listening(PG_PORT):
            _start_postgres()
        if redis and not listening(REDIS_PORT):
            (RUN / "redis").mkdir(parents=True, exist_ok=True)
            _start_daemon(
                "redis",
                [
                    shutil.which("redis-server") or "redis-server",
                    "--port",
                    str(REDIS_PORT),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(RUN / "redis"),
                ],
                REDIS_PORT,
            )
        if victoria and not listening(VM_PORT):
            _start_daemon(
                "victoria",
                [
                    shutil.which("victoria-metrics") or "victoria-metrics",
                    f"-httpListenAddr=127.0.0.1:{VM_PORT}",
                    f"-storageDataPath={RUN / 'vm'}",
                    "-retentionPeriod=1",
                    "-search.latencyOffset=0s",
                    "-loggerLevel=ERROR",
                ],
                VM_PORT,
            )


def stop() -> None:
    """Stop the servers this module started."""
    with _locked():
        if (RUN / "pg.started").exists():
            subprocess.run(
                _as_postgres(
                    [_pg_bin("pg_ctl"), "-D", str(RUN / "pg"), "-m", "fast", "-w", "stop"]
                ),
                check=False,
                stdout=subprocess.DEVNULL,
            )
            (RUN / "pg.started").unlink()
        for name in ("redis", "victoria"):
            pidfile = RUN / f"{name}.pid"
            if pidfile.exists():
                with suppress(ProcessLookupError, ValueError):
                    os.kill(int(pidfile.read_text()), signal.SIGTERM)
                pidfile.unlink()


def status() -> dict[str, bool]:
    return {
        "postgres": listening(PG_PORT),
        "redis": listening(REDIS_PORT),
        "victoria-metrics": listening(VM_PORT),
    }


def pg_restart_cmd(action: str) -> list[str]:
    """pg_ctl stop/start for fault tests (the server this module manages)."""
    data = RUN / "pg"
    if action == "stop":
        return _as_postgres([_pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
    opts = f"-c listen_addresses=127.0.0.1 -p {PG_PORT} -k {RUN / 'pgsock'} -c fsync=off"
    return _as_postgres(
        [
            _pg_bin("pg_ctl"),
            "-D",
            str(data),
            "-o",
            opts,
            "-l",
            str(data / "server.log"),
            "-w",
            "start",
        ]
    )
