"""The running demo's connection profile: how ``flashmm`` client commands (``market``,
``estop``, ``runbook``...) reach the platform ``flashmm demo`` started, with no flags.

The demo writes the profile (mode 0600, in a 0700 folder) when it is up and removes it when
it stops. Secrets are not in the profile itself: it names 0600 files that hold them (the
payload-codec keys, the hot-path control token), so the profile can be shown or pasted.
A profile whose demo process is gone is stale and ignored. Variables already set in the
environment always win, and ``FLASHMM_PROFILE=none`` turns the profile off.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

PROFILE_ENV = "FLASHMM_PROFILE"
# commands that talk to a running platform; servers and offline tools never read a profile
CLIENT_COMMANDS = frozenset(
    {"market", "estop", "runbook", "deploy-model", "temporal", "codec-server"}
)


def default_path() -> Path | None:
    """``$FLASHMM_PROFILE``, else ``~/.flashmm/demo-profile.json``; None when turned off."""
    env = os.environ.get(PROFILE_ENV)
    if env is not None:
        return None if env.strip().lower() in ("", "none", "off") else Path(env)
    return Path.home() / ".flashmm" / "demo-profile.json"


@dataclass(frozen=True)
class Profile:
    pid: int  # the demo process: the profile is valid while it lives
    temporal_address: str
    namespace: str
    temporal_ui: str
    api_url: str
    api_user: str
    api_password_file: str
    codec_keys_file: str
    control_token_file: str
    hotpaths: dict[str, str] = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        """The FLASHMM_* variables this profile stands for (secrets read from their files)."""
        env = {
            "FLASHMM_CONTROL__TEMPORAL_ADDRESS": self.temporal_address,
            "FLASHMM_CONTROL__NAMESPACE": self.namespace,
            "FLASHMM_CONTROL__HOTPATHS": json.dumps(self.hotpaths),
        }
        for var, path in (
            ("FLASHMM_CODEC_KEYS", self.codec_keys_file),
            ("FLASHMM_CONTROL_TOKEN", self.control_token_file),
        ):
            # unreadable: the demo is stopping; the command then fails with its own message
            with contextlib.suppress(OSError):
                env[var] = Path(path).read_text().strip()
        return env


def write_secret(path: Path, value: str) -> Path:
    """A file only the owner can read, created that way (never world-readable for a moment)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    os.chmod(path, 0o600)
    return path


def write(profile: Profile, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    write_secret(tmp, json.dumps(asdict(profile), indent=2))
    os.replace(tmp, path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def load(path: Path | None) -> Profile | None:
    """The profile at ``path`` if its demo still runs; None if absent, stale or unreadable."""
    if path is None:
        return None
    try:
        raw = json.loads(path.read_text())
        profile = Profile(**raw)
    except (OSError, ValueError, TypeError):
        return None
    return profile if _alive(profile.pid) else None


def remove(path: Path, pid: int) -> None:
    """Remove the profile only if it is this demo's (a newer demo may have replaced it)."""
    current = load(path) if path.exists() else None
    if current is None or current.pid == pid:
        path.unlink(missing_ok=True)


def apply(command: str, environ: dict[str, str] | os._Environ[str]) -> Path | None:
    """Fill unset FLASHMM_* variables from the running demo's profile for client commands;
    returns the profile's path when it was used."""
    if command not in CLIENT_COMMANDS:
        return None
    path = default_path()
    profile = load(path)
    if profile is None:
        return None
    for var, value in profile.environment().items():
        environ.setdefault(var, value)
    return path
