"""Who listens on a loopback port: /proc/net/tcp{,6} listening sockets and the processes
holding them (/proc/<pid>/fd), and whether a process belongs to a run directory."""

from __future__ import annotations

import os
from pathlib import Path

LISTEN = "0A"
# local addresses a connection to 127.0.0.1 can reach: 127.0.0.1 and 0.0.0.0, and in
# /proc/net/tcp6 the IPv4-mapped 127.0.0.1 and the dual-stack wildcard ::
_REACHABLE = {
    "/proc/net/tcp": {"0100007F", "00000000"},
    "/proc/net/tcp6": {"0000000000000000FFFF00000100007F", "0" * 32},
}


def _listeners() -> dict[int, int]:
    """Listening sockets reachable through 127.0.0.1: inode -> port."""
    out: dict[int, int] = {}
    for path, reachable in _REACHABLE.items():
        try:
            lines = Path(path).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) < 10 or f[3] != LISTEN:
                continue
            addr, _, port = f[1].partition(":")
            if addr in reachable and f[9] != "0":
                out[int(f[9])] = int(port, 16)
    return out


def _sockets(pid: int) -> set[int]:
    """Socket inodes among the open files of ``pid`` (empty when it cannot be read)."""
    found: set[int] = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(int(target[8:-1]))
    return found


def listening_ports(pid: int) -> set[int]:
    """Loopback-reachable ports on which ``pid`` holds a listening socket."""
    held = _sockets(pid)
    return {port for inode, port in _listeners().items() if inode in held}


def holders(port: int) -> list[int]:
    """The processes holding a listening socket on ``port`` (those this user may inspect)."""
    inodes = {inode for inode, p in _listeners().items() if p == port}
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _sockets(int(entry)) & inodes:
            pids.append(int(entry))
    return pids


def belongs(pid: int, run: Path) -> bool:
    """Whether ``pid`` runs in ``run`` (its working directory is there) or names it on its
    command line: the servers started by devservices do one or the other."""
    root = str(run.resolve())
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return False
    cwd = cwd.removesuffix(" (deleted)")
    parts = [p for a in args for p in a.split("=")]
    return any(p == root or p.startswith(root + os.sep) for p in [cwd, *parts])


def describe(pid: int) -> str:
    """``name pid N, in DIR`` for a message about a foreign server."""
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return f"pid {pid}"
    return f"{name} pid {pid}, in {cwd}"


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"
