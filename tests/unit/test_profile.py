"""The demo's connection profile: private, only for client commands, never stale, never
stronger than the environment."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from flashmm import profile


def _profile(tmp_path: Path, pid: int) -> profile.Profile:
    keys = profile.write_secret(tmp_path / "codec-keys", "k1:" + "A" * 43 + "=")
    token = profile.write_secret(tmp_path / "control-token", "tok-123")
    return profile.Profile(
        pid=pid,
        temporal_address="127.0.0.1:17233",
        namespace="default",
        temporal_ui="http://127.0.0.1:18233",
        api_url="http://127.0.0.1:18000",
        api_user="admin",
        api_password_file=str(tmp_path / "pw"),
        codec_keys_file=str(keys),
        control_token_file=str(token),
        hotpaths={"SEI/USDC": "http://127.0.0.1:19000"},
    )


def test_the_profile_and_its_secrets_are_private_and_hold_no_secret(tmp_path: Path) -> None:
    p = _profile(tmp_path, os.getpid())
    path = tmp_path / "dir" / "demo-profile.json"
    profile.write(p, path)
    for f in (path, Path(p.codec_keys_file), Path(p.control_token_file)):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
    text = path.read_text()
    assert "tok-123" not in text and "AAAA" not in text  # secrets stay in their own files
    assert profile.load(path) == p


def test_client_commands_get_unset_variables_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "demo-profile.json"
    profile.write(_profile(tmp_path, os.getpid()), path)
    monkeypatch.setenv(profile.PROFILE_ENV, str(path))
    env = {"FLASHMM_CONTROL_TOKEN": "mine"}
    assert profile.apply("market", env) == path
    assert env["FLASHMM_CONTROL__TEMPORAL_ADDRESS"] == "127.0.0.1:17233"
    assert env["FLASHMM_CODEC_KEYS"].startswith("k1:")
    assert env["FLASHMM_CONTROL_TOKEN"] == "mine"  # the environment wins
    assert json.loads(env["FLASHMM_CONTROL__HOTPATHS"]) == {"SEI/USDC": "http://127.0.0.1:19000"}
    for server in ("demo", "hotpath", "worker", "api", "localnet", "backtest"):
        untouched: dict[str, str] = {}
        assert profile.apply(server, untouched) is None and untouched == {}


def test_a_stale_or_broken_profile_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    path = tmp_path / "demo-profile.json"
    profile.write(_profile(tmp_path, int(dead.stdout)), path)
    monkeypatch.setenv(profile.PROFILE_ENV, str(path))
    env: dict[str, str] = {}
    assert profile.apply("estop", env) is None and env == {}
    path.write_text("{not json")
    assert profile.load(path) is None
    monkeypatch.setenv(profile.PROFILE_ENV, "none")
    assert profile.default_path() is None


def test_a_demo_removes_only_its_own_profile(tmp_path: Path) -> None:
    path = tmp_path / "demo-profile.json"
    profile.write(_profile(tmp_path, os.getppid()), path)  # another live demo's
    profile.remove(path, os.getpid())
    assert path.exists()
    profile.write(_profile(tmp_path, os.getpid()), path)
    profile.remove(path, os.getpid())
    assert not path.exists()
