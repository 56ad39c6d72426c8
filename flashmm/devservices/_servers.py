"""Starting and stopping the Debian-packaged servers with their data under a run directory."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import time
from contextlib import suppress
from pathlib import Path

from flashmm.devservices import _proc


def listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(port: int, what: str, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if listening(port):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start listening on 127.0.0.1:{port}")


def pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} not found: run scripts/system-deps.sh")
    return path


def as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def pg_ctl(run: Path, action: str, port: int) -> list[str]:
    """``pg_ctl start|stop`` for the cluster in ``run/pg`` (listening on ``port``)."""
    data = run / "pg"
    if action == "stop":
        return as_postgres([pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
    opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {run / 'pgsock'} -c fsync=off"
    log = str(data / "server.log")
    return as_postgres([pg_bin("pg_ctl"), "-D", str(data), "-o", opts, "-l", log, "-w", "start"])


def pg_pid(run: Path) -> int | None:
    """The postmaster's pid from its own lock file (``postmaster.pid``, first line)."""
    with suppress(OSError, ValueError, IndexError):
        return int((run / "pg" / "postmaster.pid").read_text().split("\n", 1)[0])
    return None


def start_postgres(run: Path, port: int) -> None:
    data = run / "pg"
    if not (data / "PG_VERSION").exists():
        data.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(data, "postgres", "postgres")
            os.chmod(run, 0o755)
        initdb = [pg_bin("initdb"), "-D", str(data), "-U", "flashmm", "--auth=trust", "-E", "UTF8"]
        subprocess.run(as_postgres(initdb), check=True, stdout=subprocess.DEVNULL)
    stale = pg_pid(run)
    if stale is not None and not _proc.belongs(stale, run):
        (data / "postmaster.pid").unlink()  # a crashed server's pid, since reused by another
    sock = run / "pgsock"
    sock.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(sock, "postgres", "postgres")
    subprocess.run(pg_ctl(run, "start", port), check=True, stdout=subprocess.DEVNULL)
    wait(port, "PostgreSQL")
    conn = ["-h", "127.0.0.1", "-p", str(port), "-U", "flashmm"]
    exists = "SELECT 1 FROM pg_database WHERE datname='flashmm'"
    r = subprocess.run(
        [pg_bin("psql"), *conn, "-d", "postgres", "-tAc", exists],
        capture_output=True,
        text=True,
        check=True,
    )
    if r.stdout.strip() != "1":
        subprocess.run([pg_bin("createdb"), *conn, "flashmm"], check=True)


def start_redis(run: Path, port: int) -> int:
    (run / "redis").mkdir(parents=True, exist_ok=True)
    exe = shutil.which("redis-server") or "redis-server"
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    return _daemon(run, "redis", [exe, *args, "--dir", str(run / "redis")], port)


def start_victoria(run: Path, port: int) -> int:
    exe = shutil.which("victoria-metrics") or "victoria-metrics"
    args = [
        f"-httpListenAddr=127.0.0.1:{port}",
        f"-storageDataPath={run / 'vm'}",
        "-retentionPeriod=1",
        "-search.latencyOffset=0s",
        "-loggerLevel=ERROR",
    ]
    return _daemon(run, "victoria", [exe, *args], port)


def _daemon(run: Path, name: str, cmd: list[str], port: int) -> int:
    with open(run / f"{name}.log", "ab") as log:
        p = subprocess.Popen(cmd, stdout=log, stderr=log, cwd=run, start_new_session=True)
    (run / f"{name}.pid").write_text(str(p.pid))
    wait(port, name)
    return p.pid


def terminate(pid: int, timeout: float = 10.0) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + timeout
    while _proc.alive(pid) and time.monotonic() < end:
        with suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # our own child: reap it
        time.sleep(0.05)
