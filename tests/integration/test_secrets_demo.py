"""After a full demo run — localnet, hot paths, Temporal, worker, API; an operator logs in,
makes an API key, reads everything, makes mistakes and pulls the emergency stop — no known
secret appears in any log line, metric, API response or error, file the run left behind, or
workflow history (neither the stored, encrypted payloads nor the decrypted ones)."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from temporalio.api.common.v1 import Payload
from temporalio.client import Client

from flashmm.config import Settings
from flashmm.temporal.codec import EncryptionCodec


class Demo:
    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "demo", "--duration", "120", "--keep-files"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, pattern: str, timeout: float = 90.0) -> re.Match[str]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for line in list(self.lines):
                m = re.search(pattern, line)
                if m:
                    return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"demo never printed {pattern!r}:\n{''.join(self.lines)[-3000:]}")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(10)
        return "".join(self.lines)


def _payloads(node: Any) -> list[Payload]:
    """Every payload in a history's JSON form."""
    found: list[Payload] = []
    if isinstance(node, dict):
        if "data" in node and "metadata" in node and isinstance(node["metadata"], dict):
            found.append(
                Payload(
                    metadata={k: base64.b64decode(v) for k, v in node["metadata"].items()},
                    data=base64.b64decode(node["data"]),
                )
            )
        for v in node.values():
            found += _payloads(v)
    elif isinstance(node, list):
        for v in node:
            found += _payloads(v)
    return found


async def _histories(address: str, codec: EncryptionCodec) -> tuple[list[str], list[bytes], int]:
    client = await Client.connect(address)  # no codec: what Temporal stores
    raw: list[str] = []
    decoded: list[bytes] = []
    encrypted = 0
    async for wf in client.list_workflows():
        history = await client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history()
        raw.append(history.to_json())
        for p in _payloads(history.to_json_dict()):
            if p.metadata.get("encoding") == b"binary/encrypted":
                encrypted += 1
            decoded += [d.data for d in await codec.decode([p])]
    return raw, decoded, encrypted


def test_no_secret_leaks_anywhere_after_a_demo_run(
    pg_dsn: str, redis_url: str, tmp_path: Path
) -> None:
    codec_key = secrets.token_bytes(32)
    known = {
        "jwt secret": "jwt-" + secrets.token_urlsafe(40),
        "control token": "ctl-" + secrets.token_urlsafe(24),
        "codec key": base64.b64encode(codec_key).decode(),
        "admin password": "pw-" + secrets.token_urlsafe(16),
    }
    for m in Settings().markets:
        known[f"mnemonic {m.symbol}"] = Settings().venue.mnemonic("dev", m.symbol)
    env = {
        **os.environ,
        "FLASHMM_API_JWT_SECRET": known["jwt secret"],
        "FLASHMM_CONTROL_TOKEN": known["control token"],
        "FLASHMM_CODEC_KEYS": f"scan1:{known['codec key']}",
        "FLASHMM_API_ADMIN_PASSWORD": known["admin password"],
        "FLASHMM_STORES__POSTGRES_DSN": pg_dsn,
        "FLASHMM_STORES__REDIS_URL": redis_url,
        "FLASHMM_LOG_LEVEL": "INFO",  # more log lines to leak into, if anything would
    }
    demo = Demo(env)
    seen: dict[str, str] = {}  # where -> text
    try:
        api = demo.wait_for(r"API: (http://\S+)  \(user admin, password in (\S+);")
        url, pw_file = api.group(1), Path(api.group(2))
        temporal = demo.wait_for(r"\(server (127\.0\.0\.1:\d+)[;)]").group(1)
        demo.wait_for(r"started through TradingLifecycle")
        metrics = re.findall(r"(http://127\.0\.0\.1:\d+/metrics)", "".join(demo.lines))

        with httpx.Client(base_url=url, timeout=30) as http:
            r = http.post(
                "/v1/auth/login", json={"username": "admin", "password": known["admin password"]}
            )
            assert r.status_code == 200, r.text
            admin = {"Authorization": f"Bearer {r.json()['access_token']}"}
            r = http.post(
                "/v1/api-keys", json={"name": "scanner", "role": "operator"}, headers=admin
            )
            assert r.status_code == 201
            known["api key"] = r.json()["key"]  # shown once, in that response only
            key = {"X-API-Key": known["api key"]}
            calls = [
                ("GET", "/v1/markets", admin, None),
                ("GET", "/v1/markets/SEI-USDC", key, None),
                ("GET", "/v1/positions", key, None),
                ("GET", "/v1/orders?state=all", key, None),
                ("GET", "/v1/fills", key, None),
                ("GET", "/v1/pnl", key, None),
                ("GET", "/v1/risk", key, None),
                ("GET", "/v1/keys", key, None),
                ("GET", "/v1/models", key, None),
                ("GET", "/v1/audit", admin, None),
                ("GET", "/v1/api-keys", admin, None),
                ("GET", "/v1/users", admin, None),
                ("GET", "/ready", {}, None),
                ("POST", "/v1/auth/login", {}, {"username": "admin", "password": "wrong-one!"}),
                ("GET", "/v1/markets", {"Authorization": "Bearer " + known["control token"]}, None),
                ("GET", "/v1/markets", {"X-API-Key": known["api key"][:-2] + "xx"}, None),
                ("POST", "/v1/users", admin, {"username": "x", "password": known["jwt secret"]}),
                ("PUT", "/v1/markets/ATOM-USDC/params", admin, {"quoting": {"gamma": -1}}),
                ("POST", "/v1/emergency-stop", key, {"markets": ["SEI-USDC"], "reason": "scan"}),
            ]
            for i, (method, path, headers, body) in enumerate(calls):
                r = http.request(method, path, headers=headers, json=body)
                assert r.status_code < 500, (path, r.text)
                seen[f"response {i} {method} {path}"] = f"{r.headers}\n{r.text}"
            wid = r.json()["workflow"]["workflow_id"]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                w = http.get(f"/v1/workflows/{wid}", headers=admin).json()
                if w["status"] != "RUNNING":
                    break
                time.sleep(0.5)
            assert w["status"] == "COMPLETED", w
            assert w["result"]["markets"][0]["verified_open"] == 0
            seen["estop workflow via API"] = str(w)
            for m in [f"{url}/metrics", *metrics]:
                seen[f"metrics {m}"] = httpx.get(m, timeout=5).text

        codec = EncryptionCodec([("scan1", codec_key)])
        raw, decoded, encrypted = asyncio.run(_histories(temporal, codec))
        assert len(raw) >= 3 and encrypted > 10  # lifecycles, the stop: payloads encrypted
        for i, h in enumerate(raw):
            seen[f"stored history {i}"] = h
        seen["decrypted payloads"] = "\n".join(d.decode("utf-8", "replace") for d in decoded)
    finally:
        output = demo.stop()
    seen["demo output and logs"] = output
    assert "Traceback" not in output, output[-3000:]
    run_dir = pw_file.parent
    # files that exist to hold a secret, for the operator and the CLI's profile: owner-only
    holders = {pw_file, run_dir / "codec-keys", run_dir / "control-token"}
    files = [p for p in run_dir.rglob("*") if p.is_file() and p not in holders]
    assert files, "the run left no files to check"
    for p in files:
        seen[f"file {p.relative_to(run_dir)}"] = p.read_bytes().decode("latin-1")
    for p in holders:
        assert not p.exists() or oct(p.stat().st_mode & 0o777) == "0o600", p

    leaks = [
        f"{name} in {where}"
        for name, value in known.items()
        for where, text in seen.items()
        if value in text and not (name == "api key" and where.startswith("response"))
    ]
    assert not leaks, "\n".join(leaks)
    assert codec_key.decode("latin-1") not in "".join(seen.values())
