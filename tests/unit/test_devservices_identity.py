"""devservices uses a local server only when it is provably this project's own: a foreign server
on a configured port (a plain redis-server, another checkout's servers, any listener) is
neither used nor written to; a private one starts on a free port and is reused afterwards.

Every test works in a run directory and on ports of its own: the shared servers of the rest of
the suite (``.run/``) are never touched."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flashmm import devservices
from flashmm.devservices import _proc

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server not installed"
)

PUBLISHED = ("PG_PORT", "REDIS_PORT", "VM_PORT", "PG_DSN", "REDIS_URL", "VM_URL")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _use_run_dir(monkeypatch: pytest.MonkeyPatch, run: Path) -> None:
    monkeypatch.setattr(devservices, "RUN", run)


def _new_run_dir() -> Path:
    # not under pytest's 0700 tmp_path: PostgreSQL runs as the postgres user when we are root
    run = Path(tempfile.mkdtemp(prefix="flashmm-dsv-"))
    run.chmod(0o755)
    return run


@pytest.fixture
def run_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private run directory and configured ports nobody listens on; whatever the test
    started there is stopped afterwards, and the module's published endpoints restored."""
    run = _new_run_dir()
    _use_run_dir(monkeypatch, run)
    for svc in devservices.SERVICES:
        monkeypatch.setitem(devservices.CONFIGURED, svc, _free_port())
    for name in PUBLISHED:
        monkeypatch.setattr(devservices, name, getattr(devservices, name))
    try:
        yield run
    finally:
        devservices.RUN = run
        devservices.stop()
        shutil.rmtree(run, ignore_errors=True)


@pytest.fixture
def foreign_redis(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A plain redis-server of someone else's, on a free port."""
    port = _free_port()
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    p = subprocess.Popen(
        [*cmd, "--appendonly", "no", "--dir", str(tmp_path)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_listening(port)
        yield port, p
    finally:
        p.terminate()
        p.wait(10)


@pytest.fixture
def foreign_listener() -> Iterator[int]:
    """Any process's listening socket (this one's): not a server of this project either."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield int(s.getsockname()[1])


def _wait_listening(port: int) -> None:
    end = time.monotonic() + 10
    while not devservices.listening(port):
        assert time.monotonic() < end, f"nothing listens on {port}"
        time.sleep(0.05)


def _keyspace(port: int) -> dict[str, object]:
    import redis

    r = redis.Redis(host="127.0.0.1", port=port)
    try:
        return dict(r.info("keyspace"))
    finally:
        r.close()


def test_proc_finds_the_process_holding_a_listening_socket(
    foreign_listener: int, tmp_path: Path
) -> None:
    import os

    assert foreign_listener in _proc.listening_ports(os.getpid())
    assert os.getpid() in _proc.holders(foreign_listener)
    assert _proc.belongs(os.getpid(), Path.cwd())
    assert not _proc.belongs(os.getpid(), tmp_path)


def test_foreign_redis_is_not_used_nor_written_to(
    run_dir: Path,
    foreign_redis: tuple[int, subprocess.Popen[bytes]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import redis

    foreign, proc = foreign_redis
    monkeypatch.setitem(devservices.CONFIGURED, "redis", foreign)

    e = devservices.ensure(postgres=False, victoria=False)

    assert e.redis_port != foreign
    assert devservices.own_port("redis") == e.redis_port
    assert devservices.REDIS_URL == devservices.redis_url() == e.redis_url
    said = capsys.readouterr().err
    assert f"Redis on 127.0.0.1:{foreign} is not this project's" in said
    assert f"private one on 127.0.0.1:{e.redis_port}" in said
    assert e.notes and f"127.0.0.1:{e.redis_port}" in e.notes[0]
    assert json.loads((run_dir / "ports.json").read_text()) == {"redis": e.redis_port}
    assert devservices.status()["redis"]

    r = redis.Redis.from_url(devservices.REDIS_URL)
    r.set("flashmm:test", "1")
    r.close()
    assert _keyspace(foreign) == {}  # the foreign server got nothing
    assert _keyspace(e.redis_port)

    # a second caller (another test worker, the demo's child) finds the same private server
    pid = (run_dir / "redis.pid").read_text()
    again = devservices.ensure(postgres=False, victoria=False)
    assert again.redis_port == e.redis_port
    assert (run_dir / "redis.pid").read_text() == pid
    assert capsys.readouterr().err == ""  # nothing started, nothing announced

    assert devservices.stop() == ["redis"]
    assert not devservices.listening(e.redis_port)
    assert proc.poll() is None and devservices.listening(foreign)  # stop() spared it
    assert not (run_dir / "ports.json").exists()


def test_a_recorded_pid_of_a_foreign_server_proves_nothing(
    run_dir: Path,
    foreign_redis: tuple[int, subprocess.Popen[bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Stale records pointing at someone else's server (its pid, its port): the process does
    not run in this run directory, so it is not ours, and stop() leaves it alone."""
    foreign, proc = foreign_redis
    monkeypatch.setitem(devservices.CONFIGURED, "redis", foreign)
    (run_dir / "redis.pid").write_text(str(proc.pid))
    (run_dir / "ports.json").write_text(json.dumps({"redis": foreign}))

    assert devservices.own_port("redis") is None
    assert not devservices.status()["redis"]
    assert devservices.stop() == []
    assert proc.poll() is None

    e = devservices.ensure(postgres=False, victoria=False, announce=False)
    assert e.redis_port != foreign
    assert devservices.own_port("redis") == e.redis_port


def test_own_server_on_the_configured_port_is_recognised(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    e = devservices.ensure(postgres=False, victoria=False)
    assert e.redis_port == devservices.CONFIGURED["redis"]
    assert e.notes == () and devservices.notes() == []
    pid = (run_dir / "redis.pid").read_text()
    assert devservices.ensure(postgres=False, victoria=False).redis_port == e.redis_port
    assert (run_dir / "redis.pid").read_text() == pid
    assert capsys.readouterr().err == ""


def test_another_checkouts_servers_are_foreign(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo's case: another copy of the project (another job) runs its PostgreSQL and Redis
    on the default ports. This checkout starts its own elsewhere and writes only there."""
    import asyncio

    import asyncpg

    other = _new_run_dir()
    try:
        _use_run_dir(monkeypatch, other)
        theirs = devservices.ensure(victoria=False, announce=False)
        _use_run_dir(monkeypatch, run_dir)

        ours = devservices.ensure(victoria=False, announce=False)
        assert ours.pg_port != theirs.pg_port and ours.redis_port != theirs.redis_port
        assert any(str(other) in n for n in ours.notes)  # says whose the foreign ones are

        async def tables(dsn: str, create: bool = False) -> list[str]:
            conn = await asyncpg.connect(dsn)
            try:
                if create:
                    await conn.execute("CREATE TABLE written_here (x int)")
                rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
                return [r["tablename"] for r in rows]
            finally:
                await conn.close()

        assert asyncio.run(tables(devservices.PG_DSN, create=True)) == ["written_here"]
        assert asyncio.run(tables(theirs.pg_dsn)) == []

        assert sorted(devservices.stop()) == ["postgres", "redis"]
        assert devservices.listening(theirs.pg_port) and devservices.listening(theirs.redis_port)
    finally:
        devservices.RUN = other
        devservices.stop()
        shutil.rmtree(other, ignore_errors=True)


def test_any_listener_on_the_victoria_port_is_foreign(
    run_dir: Path, foreign_listener: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(devservices.CONFIGURED, "victoria", foreign_listener)
    e = devservices.ensure(postgres=False, redis=False, announce=False)
    assert e.vm_port != foreign_listener
    assert devservices.own_port("victoria") == e.vm_port
    assert e.vm_url == devservices.VM_URL
    assert devservices.status() == {"postgres": False, "redis": False, "victoria-metrics": True}
