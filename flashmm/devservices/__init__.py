"""Local PostgreSQL, Redis and VictoriaMetrics for development, tests and the demo.

``ensure()`` uses a server only when it is provably this project's own: the process that
listens on the port (found through ``/proc/net/tcp`` and ``/proc/<pid>/fd``) is the one this
run directory recorded (``.run/redis.pid``, ``.run/victoria.pid``, PostgreSQL's own
``.run/pg/postmaster.pid``) and it runs in, or names, that directory. Whatever else listens on
a configured port (another checkout's or another job's server) is foreign: never used nor
written to; a private server is started on a free loopback port instead, one line says so, and
``.run/ports.json`` records where each server runs so that every process of the run (test
workers, the demo's children, ``flashmm services status``) finds the same ones.

``ensure()`` returns the :class:`Endpoints` actually in use and updates the module's
``PG_PORT``/``PG_DSN``/``REDIS_*``/``VM_*`` (read them as ``devservices.PG_DSN`` after it, or
call ``pg_dsn()``/``redis_url()``/``vm_url()``); ``configured()`` gives the configured
(default) ones. ``stop()`` stops only servers proven this project's. A file lock makes
concurrent callers safe. Never used in production: there the settings point at managed
services.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from flashmm.devservices import _proc, _servers
from flashmm.devservices._servers import listening

__all__ = [
    "PG_DSN",
    "PG_PORT",
    "REDIS_PORT",
    "REDIS_URL",
    "RUN",
    "VM_PORT",
    "VM_URL",
    "Endpoints",
    "configured",
    "endpoints",
    "ensure",
    "listening",
    "notes",
    "own_port",
    "pg_dsn",
    "pg_restart_cmd",
    "redis_url",
    "status",
    "stop",
    "vm_url",
]

RUN = Path(
    os.environ.get("FLASHMM_RUN_DIR", Path(__file__).resolve().parent.parent.parent / ".run")
)
SERVICES = ("postgres", "redis", "victoria")
LABEL = {"postgres": "PostgreSQL", "redis": "Redis", "victoria": "VictoriaMetrics"}
CONFIGURED = {
    "postgres": int(os.environ.get("FLASHMM_DEV_PG_PORT", "55432")),
    "redis": int(os.environ.get("FLASHMM_DEV_REDIS_PORT", "56379")),
    "victoria": int(os.environ.get("FLASHMM_DEV_VM_PORT", "58428")),
}


@dataclass(frozen=True)
class Endpoints:
    """Where the local servers are; ``notes`` says which configured port was foreign."""

    pg_port: int
    redis_port: int
    vm_port: int
    notes: tuple[str, ...] = ()

    @property
    def pg_dsn(self) -> str:
        return f"postgresql://flashmm@127.0.0.1:{self.pg_port}/flashmm"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def vm_url(self) -> str:
        return f"http://127.0.0.1:{self.vm_port}"

    def as_dict(self) -> dict[str, str]:
        return {"pg": self.pg_dsn, "redis": self.redis_url, "vm": self.vm_url}

    def stores_env(self) -> dict[str, str]:
        """The settings' environment overrides that point a child process at these."""
        return {
            "FLASHMM_STORES__POSTGRES_DSN": self.pg_dsn,
            "FLASHMM_STORES__REDIS_URL": self.redis_url,
            "FLASHMM_STORES__TIMESERIES_URL": self.vm_url,
        }


def configured() -> Endpoints:
    """The configured ports (``FLASHMM_DEV_*_PORT``, else the defaults the settings use)."""
    return Endpoints(CONFIGURED["postgres"], CONFIGURED["redis"], CONFIGURED["victoria"])


# the endpoints in use: the configured ones until ensure() in this process finds others
PG_PORT, REDIS_PORT, VM_PORT = CONFIGURED["postgres"], CONFIGURED["redis"], CONFIGURED["victoria"]
PG_DSN, REDIS_URL, VM_URL = configured().pg_dsn, configured().redis_url, configured().vm_url


def _publish(e: Endpoints) -> None:
    global PG_PORT, REDIS_PORT, VM_PORT, PG_DSN, REDIS_URL, VM_URL
    PG_PORT, REDIS_PORT, VM_PORT = e.pg_port, e.redis_port, e.vm_port
    PG_DSN, REDIS_URL, VM_URL = e.pg_dsn, e.redis_url, e.vm_url


@contextmanager
def _locked() -> Iterator[None]:
    RUN.mkdir(parents=True, exist_ok=True)
    with open(RUN / "services.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _read_ports() -> dict[str, int]:
    with suppress(OSError, ValueError):
        data = json.loads((RUN / "ports.json").read_text())
        return {k: int(v) for k, v in data.items() if k in SERVICES}
    return {}


def _write_ports(ports: dict[str, int]) -> None:
    path = RUN / "ports.json"
    if not ports:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(ports, sort_keys=True) + "\n")
    tmp.replace(path)


def _pid(svc: str) -> int | None:
    if svc == "postgres":
        return _servers.pg_pid(RUN)
    with suppress(OSError, ValueError):
        return int((RUN / f"{svc}.pid").read_text())
    return None


def _owned_pid(svc: str) -> int | None:
    """The recorded pid of ``svc`` if that process runs and belongs to this run directory."""
    pid = _pid(svc)
    return pid if pid is not None and _proc.alive(pid) and _proc.belongs(pid, RUN) else None


def own_port(svc: str) -> int | None:
    """The port this project's ``svc`` listens on (None when it does not run): the recorded
    process holds the listening socket, so no other server can pass for it."""
    pid = _owned_pid(svc)
    if pid is None:
        return None
    ports = _proc.listening_ports(pid)
    recorded = _read_ports().get(svc)
    if recorded in ports:
        return recorded
    return min(ports) if ports else None


def _foreign(port: int) -> str:
    who = [_proc.describe(p) for p in _proc.holders(port)]
    return "; ".join(who) or "a process this user cannot inspect"


def _note(svc: str, port: int | None) -> str | None:
    conf = CONFIGURED[svc]
    if port == conf:
        return None
    if listening(conf):
        where = f"a private one on 127.0.0.1:{port}" if port else "this project's is not running"
        return (
            f"flashmm services: {LABEL[svc]} on 127.0.0.1:{conf} is not this project's "
            f"({_foreign(conf)}), not used; {where} (data in {RUN})"
        )
    if port is not None:
        return f"flashmm services: this project's {LABEL[svc]} runs on 127.0.0.1:{port}"
    return None


def _start(svc: str) -> int:
    port = CONFIGURED[svc]
    if listening(port):
        port = _servers.free_port()
    start = {
        "postgres": _servers.start_postgres,
        "redis": _servers.start_redis,
        "victoria": _servers.start_victoria,
    }[svc]
    start(RUN, port)
    if own_port(svc) != port:
        raise RuntimeError(f"{LABEL[svc]} started for port {port}, but another process has it")
    return port


def ensure(
    postgres: bool = True, redis: bool = True, victoria: bool = True, announce: bool = True
) -> Endpoints:
    """Make sure this project's own server runs for each requested service, starting a private
    one on a free port where a foreign server holds the configured port (printed to stderr
    unless ``announce`` is false); returns the endpoints in use."""
    wanted = {"postgres": postgres, "redis": redis, "victoria": victoria}
    ports: dict[str, int] = {}
    lines: list[str] = []
    with _locked():
        for svc in SERVICES:
            port = own_port(svc)
            started = port is None and wanted[svc]
            if started:
                port = _start(svc)
            if port is not None:
                ports[svc] = port
            note = _note(svc, port) if wanted[svc] else None
            if note:
                lines.append(note)
                if started and announce:
                    print(note, file=sys.stderr, flush=True)
        _write_ports(ports)
    e = _endpoints(ports, tuple(lines))
    _publish(e)
    return e


def _endpoints(ports: dict[str, int], notes: tuple[str, ...] = ()) -> Endpoints:
    p = {**CONFIGURED, **ports}
    return Endpoints(p["postgres"], p["redis"], p["victoria"], notes)


def endpoints() -> Endpoints:
    """The endpoints of this project's running servers (configured ports for those that are
    not running); starts nothing."""
    return _endpoints({svc: p for svc in SERVICES if (p := own_port(svc)) is not None})


def pg_dsn() -> str:
    return endpoints().pg_dsn


def redis_url() -> str:
    return endpoints().redis_url


def vm_url() -> str:
    return endpoints().vm_url


def notes() -> list[str]:
    """One line per service that is not this project's own on its configured port."""
    return [n for svc in SERVICES if (n := _note(svc, own_port(svc)))]


def stop() -> list[str]:
    """Stop the servers proven this project's own; returns the services stopped."""
    stopped = []
    with _locked():
        for svc in SERVICES:
            pid = _owned_pid(svc)
            if pid is not None:
                if svc == "postgres":
                    cmd = _servers.pg_ctl(RUN, "stop", 0)
                    subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL)
                else:
                    _servers.terminate(pid)
                stopped.append(svc)
            if svc != "postgres":
                (RUN / f"{svc}.pid").unlink(missing_ok=True)
        (RUN / "pg.started").unlink(missing_ok=True)  # written by earlier versions
        _write_ports({s: p for s in SERVICES if (p := own_port(s)) is not None})
    return stopped


def status() -> dict[str, bool]:
    """Whether this project's own server runs, per service (a foreign one does not count)."""
    names = {"postgres": "postgres", "redis": "redis", "victoria": "victoria-metrics"}
    return {names[svc]: own_port(svc) is not None for svc in SERVICES}


def pg_restart_cmd(action: str) -> list[str]:
    """pg_ctl stop/start for fault tests (the server this module manages)."""
    return _servers.pg_ctl(RUN, action, own_port("postgres") or PG_PORT)
