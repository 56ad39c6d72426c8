#!/usr/bin/env python3
"""Container health probe for roles that listen on loopback only (installed as flashmm-probe).

Kubernetes httpGet probes connect to the pod IP, but the hot path's control API and metrics,
and the localnet, bind 127.0.0.1; an exec probe runs inside the pod's network namespace and
reaches them. Standard library only, so it starts in ~50 ms.

    flashmm-probe http http://127.0.0.1:7001/v1/status --token-env FLASHMM_CONTROL_TOKEN
    flashmm-probe http http://127.0.0.1:9101/metrics
    flashmm-probe tcp temporal-frontend:7233
    flashmm-probe tcp-env FLASHMM_CONTROL__TEMPORAL_ADDRESS   # host:port from a variable

Exit status 0 when healthy, 1 otherwise (with the reason on stderr).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import urllib.error
import urllib.request


def _http(url: str, token_env: str | None, timeout: float) -> str | None:
    req = urllib.request.Request(url)
    if token_env:
        token = os.environ.get(token_env, "")
        if not token:
            return f"{token_env} is not set"
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return None if 200 <= resp.status < 300 else f"HTTP {resp.status}"
    except (urllib.error.URLError, OSError) as e:
        return str(e)


def _tcp(address: str, timeout: float) -> str | None:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return None
    except (OSError, ValueError) as e:
        return f"{address}: {e}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="flashmm-probe", description=__doc__)
    p.add_argument("kind", choices=["http", "tcp", "tcp-env"])
    p.add_argument("target", help="URL, host:port, or the variable holding host:port")
    p.add_argument("--token-env", default=None, help="send Bearer $VAR (http)")
    p.add_argument("--timeout", type=float, default=2.0)
    a = p.parse_args(argv)
    if a.kind == "http":
        err = _http(a.target, a.token_env, a.timeout)
    elif a.kind == "tcp":
        err = _tcp(a.target, a.timeout)
    else:
        err = _tcp(os.environ.get(a.target, ""), a.timeout)
    if err:
        print(f"unhealthy: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
