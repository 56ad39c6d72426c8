"""The dead-man's switch rule with a controllable clock: a hot path whose loop stops turning
(the process alive, the heartbeat task still writing) is dead to the watcher and to its own
``/healthz``; a loop that was stuck longer than the limit halts itself when it turns again;
a clean record is left alone. Real Redis, the real in-process venue and quote loop."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from flashmm.domain.instrument import SEI_USDC
from flashmm.sim.inprocess import InProcessVenue
from flashmm.sim.params import MarketParams
from hotpath.engine import MarketMaker
from hotpath.heartbeat import Beat, Heartbeat, armed_key, health, verdict
from hotpath.loop import LoopConfig, QuoteLoop
from hotpath.quoting.params import QuoteParams
from hotpath.risk import RiskLimits
from hotpath.status import serve_metrics
from workers.deadman import DeadmanWatcher
from workflows.deadman import DeadmanInput

MARKET = "SEI/USDC"


def _loop(stall_halt_s: float = 0.0) -> QuoteLoop:
    venue = InProcessVenue(SEI_USDC, MarketParams(seed=11, warmup_s=5.0))
    mm = MarketMaker(SEI_USDC, QuoteParams(), RiskLimits())
    return QuoteLoop(mm, venue, LoopConfig(quote_hz=20.0, stall_halt_s=stall_halt_s))


async def _until(pred: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, "condition not met in time"
        await asyncio.sleep(0.01)


def _stick(ql: QuoteLoop, release: asyncio.Event) -> None:
    """The next cycle never finishes (until ``release`` is set): the event loop and the
    heartbeat task stay alive, the quote loop does not turn."""
    step = ql._step

    async def stuck(reactive: bool, reconcile: bool) -> None:
        await release.wait()
        await step(reactive, reconcile)

    ql._step = stuck  # type: ignore[method-assign]


def test_verdict_rule() -> None:
    now = 1000.0
    assert verdict(None, now, 1.5) is None
    assert verdict(Beat(MARKET, "a", now - 0.2, now - 0.1), now, 1.5) is None
    missed = verdict(Beat(MARKET, "a", now - 3.0, now - 3.0), now, 1.5)
    assert missed is not None and missed.startswith("heartbeat missed")
    stuck = verdict(Beat(MARKET, "a", now - 3.0, now - 0.1), now, 1.5)
    assert stuck is not None and stuck.startswith("loop stuck")


async def test_a_stuck_loop_is_dead_to_the_watcher_and_the_probe(redis_url: str) -> None:
    ql = _loop()
    hb = Heartbeat(ql, MARKET, redis_url, interval_s=0.05, timeout_s=1.5)
    fired: list[DeadmanInput] = []

    async def fire(inp: DeadmanInput) -> str:
        fired.append(inp)
        return "wf"

    offset = [0.0]  # the probe's clock runs ahead by this much
    watcher = DeadmanWatcher(MARKET, redis_url, fire, timeout_s=1.0)
    started = time.monotonic()
    httpd = serve_metrics(
        0,
        "127.0.0.1",
        lambda: health(ql, 1.5, started, clock=lambda: time.monotonic() + offset[0]),
    )
    url = f"http://127.0.0.1:{httpd.server_port}/healthz"
    stop = asyncio.Event()
    release = asyncio.Event()
    task = asyncio.create_task(ql.run(stop))
    hb.start()
    try:
        await _until(lambda: ql.turns > 3 and hb.writes > 2)
        assert ql.orphans_at_start == 0
        assert await watcher.check() is None  # turning: alive
        status, body = await asyncio.to_thread(_get, url)
        assert status == 200 and body["ok"] and body["last_cycle_at"] == ql.last_cycle_at
        _stick(ql, release)
        await asyncio.sleep(0.1)
        stuck_at = ql.last_cycle_at
        writes = hb.writes
        await asyncio.sleep(0.2)
        assert ql.last_cycle_at == stuck_at and hb.writes > writes  # beats, no cycles
        assert await watcher.check() is None  # about 0.3 s: within the watcher's limit (1 s)
        status, body = await asyncio.to_thread(_get, url)
        assert status == 200  # and the probe's
        offset[0] = 2.0  # the probe's clock moves on; the loop is still stuck
        status, body = await asyncio.to_thread(_get, url)
        assert status == 503 and not body["ok"] and body["age_s"] > 1.5
        await asyncio.sleep(0.8)
        assert await watcher.check() == "wf"
        assert len(fired) == 1 and fired[0].reason.startswith("loop stuck")
        assert fired[0].last_cycle_at == stuck_at and fired[0].incarnation == hb.incarnation
        assert await watcher.check() is None  # one incident, one firing
    finally:
        release.set()
        stop.set()
        await asyncio.wait_for(task, 10)
        await hb.stop(retire=not ql.mm.om.live)
        await ql.venue.close()
        httpd.shutdown()
    import redis.asyncio as aioredis

    r = aioredis.from_url(redis_url)
    try:
        assert await r.get(armed_key(MARKET)) is None  # a clean shutdown retires the record
    finally:
        await r.aclose()


async def test_a_loop_stuck_past_the_limit_halts_itself() -> None:
    ql = _loop(stall_halt_s=1.0)
    stop = asyncio.Event()
    release = asyncio.Event()
    task = asyncio.create_task(ql.run(stop))
    try:
        await _until(lambda: ql.turns > 3 and bool(ql.mm.om.live))
        _stick(ql, release)
        await asyncio.sleep(1.3)
        assert ql.mm.risk.state.value != "halted"  # stuck: nothing turns, nothing decides
        release.set()
        await _until(lambda: ql.mm.risk.state.value == "halted", 2.0)
        assert "dead-man" in ql.mm.risk.halt_reason
        await _until(lambda: not ql.mm.om.live, 5.0)  # its orders are cancelled
        turns = ql.turns
        await asyncio.sleep(0.3)
        assert ql.turns > turns and not ql.mm.om.live  # turning again, quoting nothing
    finally:
        release.set()
        stop.set()
        await asyncio.wait_for(task, 10)
        await ql.venue.close()


async def test_a_clean_shutdown_is_not_an_incident(redis_url: str) -> None:
    ql = _loop()
    hb = Heartbeat(ql, MARKET, redis_url, interval_s=0.05, timeout_s=1.0)
    fired: list[DeadmanInput] = []

    async def fire(inp: DeadmanInput) -> str:
        fired.append(inp)
        return "wf"

    watcher = DeadmanWatcher(MARKET, redis_url, fire, timeout_s=1.0)
    stop = asyncio.Event()
    task = asyncio.create_task(ql.run(stop))
    hb.start()
    await _until(lambda: hb.writes > 2)
    stop.set()
    while not task.done():  # the shutdown (cancel, confirm, drain) keeps beating
        assert await watcher.check() is None
        await asyncio.sleep(0.1)
    await hb.stop(retire=not ql.mm.om.live)
    await ql.venue.close()
    await asyncio.sleep(1.2)
    assert await watcher.check() is None and not fired


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
