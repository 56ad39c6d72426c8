"""``flashmm temporal setup|check``: register (or only check) the search attributes FlashMM's
workflows need in the configured namespace. Deployments run ``setup`` once before the workers
(compose service ``temporal-setup``, Kubernetes Job ``flashmm-temporal-setup``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from flashmm.config import Settings


def add_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    t = sub.add_parser(
        "temporal",
        help="prepare the Temporal namespace (search attributes)",
        description="setup: register the custom search attributes the workflows upsert "
        "(Market, TradingState; idempotent). check: exit 1 when any is missing.",
    )
    t.add_argument("action", choices=["setup", "check"])
    t.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="retry while Temporal or the namespace is not ready yet, up to SECONDS",
    )


async def _attempt(settings: Settings, action: str) -> dict[str, object]:
    from flashmm.temporal import search_attributes as sa
    from flashmm.temporal.client import connect

    client = await connect(settings.control.temporal_address, settings.control.namespace)
    out: dict[str, object] = {"namespace": client.namespace}
    if action == "setup":
        out["added"] = await sa.ensure(client)
    else:
        await sa.check(client)
    out["search_attributes"] = sorted(sa.REQUIRED)
    return out


async def _run(settings: Settings, action: str, wait_s: float) -> dict[str, object]:
    from flashmm.temporal.search_attributes import SearchAttributesMissingError

    deadline = time.monotonic() + wait_s
    while True:
        try:
            return await _attempt(settings, action)
        except SearchAttributesMissingError:
            raise  # a fact about the namespace, not a server still starting
        except Exception as e:  # unreachable, or the namespace is not registered yet
            if time.monotonic() >= deadline:
                raise
            print(json.dumps({"event": "temporal not ready", "error": str(e)}), flush=True)
            await asyncio.sleep(2.0)


def run(settings: Settings, args: argparse.Namespace) -> int:
    from cli.control import exit_now
    from flashmm.temporal.search_attributes import SearchAttributesMissingError

    try:
        out = asyncio.run(_run(settings, args.action, args.wait))
    except SearchAttributesMissingError as e:
        print(f"flashmm temporal {args.action}: {e}", file=sys.stderr)
        exit_now(1)
    except Exception as e:
        print(f"flashmm temporal {args.action}: {type(e).__name__}: {e}", file=sys.stderr)
        exit_now(1)
    print(json.dumps(out))
    exit_now(0)
