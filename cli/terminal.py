"""Ctrl-C for a long-running command started by another program (``make demo``): the
command takes the terminal's foreground for its own process group, so the interrupt reaches
it alone and it can shut down in order and exit 0, instead of ``make`` and every child
receiving it at once. The terminal is handed back on the way out, as a shell's job control
does. No terminal (CI, a pipe): nothing changes."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def own_foreground() -> Iterator[bool]:
    """Yields whether this process now holds the terminal's foreground."""
    try:
        fd = sys.stdin.fileno()
        if not os.isatty(fd):
            raise OSError
        before = os.tcgetpgrp(fd)
    except (OSError, ValueError):
        yield False
        return
    if before != os.getpgrp():  # not in the foreground (started with &): leave it alone
        yield False
        return
    old_ttou = signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # tcsetpgrp from a new group
    moved = False
    try:
        if os.getpid() != os.getpgrp():
            os.setpgid(0, 0)
            os.tcsetpgrp(fd, os.getpgrp())
            moved = True
    except OSError:
        pass
    try:
        yield moved
    finally:
        if moved:
            with contextlib.suppress(OSError):
                os.tcsetpgrp(fd, before)
        signal.signal(signal.SIGTTOU, old_ttou)
