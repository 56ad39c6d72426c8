"""Ctrl-C on ``make demo``: the demo takes the terminal's foreground, so the interrupt reaches
it alone; it finishes in order and make exits 0 (not "make: *** Interrupt")."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import termios
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import signal, sys, time
from cli.terminal import own_foreground
with own_foreground() as moved:
    got = []
    signal.signal(signal.SIGINT, lambda *a: got.append(1))
    print("moved", moved, flush=True)
    end = time.time() + 20
    while not got and time.time() < end:
        time.sleep(0.02)
    print("interrupted, stopping in order" if got else "never interrupted", flush=True)
"""


def _run_under_make_with_ctrl_c(tmp_path: Path, script: str) -> tuple[int, str]:
    (tmp_path / "job.py").write_text(script)
    (tmp_path / "Makefile").write_text(f"run:\n\t@{sys.executable} job.py\n")
    master, slave = os.openpty()

    def controlling_terminal() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    p = subprocess.Popen(
        ["make", "-s", "-C", str(tmp_path), "run"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        preexec_fn=controlling_terminal,
        env=env,
    )
    os.close(slave)
    out = b""
    end = time.monotonic() + 20
    while b"\n" not in out.partition(b"moved")[2] and time.monotonic() < end:
        out += os.read(master, 1024)
    os.write(master, b"\x03")  # the terminal's Ctrl-C
    rc = p.wait(timeout=20)
    while True:
        try:
            chunk = os.read(master, 1024)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return rc, out.decode(errors="replace")


def test_ctrl_c_under_make_reaches_only_the_command(tmp_path: Path) -> None:
    rc, out = _run_under_make_with_ctrl_c(tmp_path, SCRIPT)
    assert "moved True" in out and "interrupted, stopping in order" in out, out
    assert rc == 0 and "Interrupt" not in out, out


def test_without_it_make_itself_is_interrupted(tmp_path: Path) -> None:
    """The failure the helper exists for (so the test above can fail)."""
    plain = SCRIPT.replace("with own_foreground() as moved:", "if True:\n    moved = None")
    rc, out = _run_under_make_with_ctrl_c(tmp_path, plain)
    assert rc != 0, out  # make dies of the SIGINT it received too
