"""Shared helpers for the localnet integration tests: build a localnet and a hot path wired to
it over loopback, tap the venue's events, read the chain's view, run the node in a child
process, and a TCP proxy that can be killed.

Everything binds port 0 and every wait is bounded, so tests can run in parallel.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from flashmm.book.l2 import L2Book
from flashmm.domain.instrument import SEI_USDC, Instrument
from flashmm.domain.orders import Fill
from flashmm.localnet.chain import Block
from flashmm.localnet.config import MICRO, GenesisAccount, LocalnetConfig, MarketSpec
from flashmm.localnet.server import Localnet
from flashmm.sim.params import MarketParams
from flashmm.venue.base import (
    OrderBatch,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    VenueEvent,
)
from flashmm.venue.sei.adapter import SeiVenue, SeiVenueConfig
from flashmm.venue.sei.gas import GasConfig
from flashmm.venue.sei.tx import FEE_DENOM, MarketRef, build_tx, decode_tx
from flashmm.venue.sei.wallet import Wallet, contract_address, dev_mnemonic
from hotpath.engine import MarketMaker
from hotpath.loop import LoopConfig, QuoteLoop
from hotpath.quoting.params import QuoteParams
from hotpath.risk import RiskLimits

CHAIN_ID = "flashmm-local-1"
BLOCK_S = 0.2
ATOM_USDC = Instrument(
    symbol="ATOM/USDC",
    base="ATOM",
    quote="USDC",
    tick_size=Decimal("0.001"),
    lot_size=Decimal("0.1"),
    maker_fee_bps=Decimal("-0.5"),
    taker_fee_bps=Decimal("2.5"),
)
SEI = 1_000_000
USDC = 1_000_000
CHILD_ACCOUNT = "child-trader"  # the dev account the child node funds at genesis


def wallet(name: str = "trader") -> Wallet:
    return Wallet.from_mnemonic(dev_mnemonic(name))


def sei_spec(seed: int = 11, **market: Any) -> MarketSpec:
    params = MarketParams(**{"seed": seed, "warmup_s": 5.0, "start_price": 5_000, **market})
    return MarketSpec(SEI_USDC, contract_address("SEI/USDC"), "uusdc", "usei", params)


def atom_spec(seed: int = 12, **market: Any) -> MarketSpec:
    params = MarketParams(**{"seed": seed, "warmup_s": 5.0, "start_price": 8_000, **market})
    return MarketSpec(ATOM_USDC, contract_address("ATOM/USDC"), "uusdc", "uatom", params)


def default_genesis(*extra: GenesisAccount) -> tuple[GenesisAccount, ...]:
    trader = GenesisAccount(
        wallet("trader").address,
        (("uatom", 5_000 * SEI), ("usei", 50_000 * SEI), ("uusdc", 50_000 * USDC)),
    )
    return (trader, *extra)


def localnet_cfg(
    markets: tuple[MarketSpec, ...] | None = None,
    genesis: tuple[GenesisAccount, ...] | None = None,
    block_interval_s: float = BLOCK_S,
    **kw: Any,
) -> LocalnetConfig:
    return LocalnetConfig(
        chain_id=CHAIN_ID,
        block_interval_s=block_interval_s,
        markets=markets if markets is not None else (sei_spec(),),
        genesis=genesis if genesis is not None else default_genesis(),
        **kw,
    )


@contextlib.asynccontextmanager
async def localnet(cfg: LocalnetConfig) -> AsyncIterator[Localnet]:
    node = Localnet(cfg, rest_port=0, rpc_port=0)
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


def urls(node: Localnet) -> tuple[str, str]:
    return f"http://127.0.0.1:{node.rest_port}", f"ws://127.0.0.1:{node.rpc_port}/websocket"


class TapSeiVenue(SeiVenue):
    """The real Sei adapter with a record of what it handed to the hot path and what the
    hot path submitted. Events are recorded right before the loop applies them."""

    def __init__(self, cfg: SeiVenueConfig, w: Wallet) -> None:
        super().__init__(cfg, w)
        self.seen: list[VenueEvent] = []
        self.places: list[PlaceOrder] = []
        # (place, engine best bid, engine best ask) as the batch went out
        self.placed_against: list[tuple[PlaceOrder, int, int]] = []
        self.watch_book: L2Book | None = None

    async def submit(self, batch: OrderBatch) -> None:
        self.places.extend(batch.places)
        b = self.watch_book
        for p in batch.places:
            self.placed_against.append((p, b.best_bid if b else 0, b.best_ask if b else 0))
        await super().submit(batch)

    async def events(self) -> AsyncIterator[VenueEvent]:  # type: ignore[override]
        async for ev in super().events():
            self.seen.append(ev)
            yield ev

    def undelivered(self) -> list[VenueEvent]:
        """Take what the venue produced but the loop never consumed (after it stopped)."""
        out = []
        while not self._queue.empty():
            out.append(self._queue.get_nowait())
        return out

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.seen if isinstance(e, kind)]

    @property
    def fills(self) -> list[Fill]:
        return [e.fill for e in self.of(OrderFilled)]

    @property
    def rejects(self) -> list[OrderRejected]:
        return self.of(OrderRejected)


def venue_for(
    spec: MarketSpec,
    rest_urls: tuple[str, ...],
    ws_urls: tuple[str, ...],
    w: Wallet | None = None,
    gas: GasConfig | None = None,
    stale_after_s: float = 1.0,
) -> TapSeiVenue:
    cfg = SeiVenueConfig(
        rest_urls=rest_urls,
        ws_urls=ws_urls,
        chain_id=CHAIN_ID,
        market=MarketRef(spec.contract, spec.price_denom, spec.asset_denom, spec.instrument),
        gas=gas or GasConfig(),
        broadcast_timeout_s=1.0,
        feed_stale_after_s=stale_after_s,
    )
    return TapSeiVenue(cfg, w or wallet("trader"))


def hot_path(
    venue: TapSeiVenue,
    inst: Instrument,
    prefix: str = "fmm",
    quoting: QuoteParams | None = None,
    limits: RiskLimits | None = None,
    hz: float = 10.0,
    reconcile_every_s: float = 0.5,
    shutdown_timeout_s: float = 3.0,
    cancel_retry_s: float = 0.5,
) -> tuple[QuoteLoop, MarketMaker]:
    mm = MarketMaker(
        inst,
        quoting or QuoteParams(),
        limits or RiskLimits(stale_after_s=1.0),
        order_prefix=prefix,
        cancel_retry_s=cancel_retry_s,
    )
    cfg = LoopConfig(
        quote_hz=hz, reconcile_every_s=reconcile_every_s, shutdown_timeout_s=shutdown_timeout_s
    )
    venue.watch_book = mm.book
    return QuoteLoop(mm, venue, cfg), mm


class Running:
    """A started loop: ``stop()`` ends it and waits (bounded) for ``run`` to return."""

    def __init__(self, loop: QuoteLoop) -> None:
        self.loop = loop
        self.stop_event = asyncio.Event()
        self.task = asyncio.create_task(loop.run(self.stop_event))

    def alive(self) -> None:
        if self.task.done():
            self.task.result()  # raises if the loop crashed
            pytest.fail("quote loop returned before it was stopped")

    async def stop(self, timeout: float = 10.0) -> None:
        if not self.task.done():
            self.stop_event.set()
            await asyncio.wait_for(self.task, timeout)
        else:
            self.task.result()


@contextlib.asynccontextmanager
async def running(loop: QuoteLoop) -> AsyncIterator[Running]:
    r = Running(loop)
    try:
        yield r
        r.alive()
    finally:
        try:
            await r.stop()
        finally:
            await loop.venue.close()


def bounded(seconds: float) -> Callable[[Any], Any]:
    """Fail an async test that runs longer than ``seconds`` (no pytest-timeout here)."""

    def deco(fn: Any) -> Any:
        @functools.wraps(fn)
        async def wrapper(*args: Any, **kw: Any) -> Any:
            t0 = time.monotonic()
            try:
                return await asyncio.wait_for(fn(*args, **kw), seconds)
            except TimeoutError:
                if time.monotonic() - t0 < seconds:
                    raise  # a timeout inside the test, not the test's own bound
                pytest.fail(f"test took longer than {seconds}s")

        return wrapper

    return deco


async def stop_and_drain(r: Running, venue: TapSeiVenue, settle_s: float) -> list[VenueEvent]:
    """Stop the loop, give the venue ``settle_s`` to receive what is still in flight, then
    return what it produced that the loop never consumed, and close it."""
    try:
        await r.stop()
    finally:
        await asyncio.sleep(settle_s)
        left = venue.undelivered()
        await venue.close()
    return left


async def wait_until(
    pred: Callable[[], bool], timeout: float, r: Running | None = None, what: str = "condition"
) -> float:
    """Poll ``pred`` every 10 ms; returns the seconds it took, fails after ``timeout``."""
    t0 = time.monotonic()
    while not pred():
        if r is not None:
            r.alive()
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"{what} not met within {timeout}s")
        await asyncio.sleep(0.01)
    return time.monotonic() - t0


# --- the chain's view over REST -------------------------------------------------------------


class Rest:
    """A small REST client for assertions (independent of the adapter's client)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2.0))

    async def close(self) -> None:
        await self.http.close()

    async def get(self, path: str) -> Any:
        async with self.http.get(self.base + path) as r:
            return await r.json(content_type=None)

    async def orders(self, contract: str, address: str) -> list[dict[str, Any]]:
        data = await self.get(f"/sei-protocol/seichain/dex/get_orders/{contract}/{address}")
        return list(data["orders"])

    async def balances(self, address: str) -> dict[str, int]:
        data = await self.get(f"/cosmos/bank/v1beta1/balances/{address}")
        return {b["denom"]: int(b["amount"]) for b in data["balances"]}

    async def sequence(self, address: str) -> int:
        data = await self.get(f"/cosmos/auth/v1beta1/accounts/{address}")
        return int(data["account"]["sequence"])

    async def tx(self, txhash: str) -> dict[str, Any]:
        data: dict[str, Any] = await self.get(f"/cosmos/tx/v1beta1/txs/{txhash}")
        return data

    async def broadcast(self, tx_bytes: bytes) -> dict[str, Any]:
        body = {"tx_bytes": base64.b64encode(tx_bytes).decode(), "mode": "BROADCAST_MODE_SYNC"}
        async with self.http.post(self.base + "/cosmos/tx/v1beta1/txs", json=body) as r:
            data: dict[str, Any] = (await r.json(content_type=None))["tx_response"]
            return data


def freeze_markets(node: Localnet) -> None:
    """Stop the background market of every contract (no more trades, so no more fills of
    ours: our orders are post-only). Blocks, transactions and the feed go on."""
    for m in node.chain.markets.values():
        m.advance = lambda t, accounts: []  # type: ignore[method-assign]


class BlockRecorder:
    """Keeps every block an in-process node produces (fills live in begin-block events,
    which the node does not index by transaction)."""

    def __init__(self, node: Localnet) -> None:
        self.blocks: list[Block] = []
        produce = node.chain.produce_block

        def recording(time_s: float) -> Block:
            b = produce(time_s)
            self.blocks.append(b)
            return b

        node.chain.produce_block = recording  # type: ignore[method-assign]

    def events(self, kind: str, address: str) -> list[dict[str, str]]:
        """Attributes of every ``kind`` event for ``address``, in chain order."""
        out = []
        for b in self.blocks:
            evs = b.begin_events + [e for r in b.txs for e in r.events] + b.end_events
            for e in evs:
                if e["type"] == kind and attrs(e).get("account") == address:
                    out.append(attrs(e))
        return out


async def send_tx(http: Rest, w: Wallet, msgs: list[Any]) -> dict[str, Any]:
    """Sign ``msgs`` with ``w`` at the chain's current sequence and broadcast them."""
    data = await http.get(f"/cosmos/auth/v1beta1/accounts/{w.address}")
    acct = data["account"]
    tx = build_tx(
        w,
        msgs,
        chain_id=CHAIN_ID,
        account_number=int(acct["account_number"]),
        sequence=int(acct["sequence"]),
        gas_limit=200_000,
        fee_amount=4_000,
    )
    return await http.broadcast(tx)


def order_ticks(o: dict[str, Any], inst: Instrument) -> int:
    ticks = Decimal(o["price"]) / inst.tick_size
    assert ticks == ticks.to_integral_value(), o
    return int(ticks)


def order_cid(o: dict[str, Any]) -> str:
    return str(json.loads(o["data"])["cid"])


def tx_fee_usei(tx_bytes: bytes) -> int:
    tx = decode_tx(tx_bytes)
    return sum(int(c.amount) for c in tx.auth_info.fee.amount if c.denom == FEE_DENOM)


def attrs(e: dict[str, Any]) -> dict[str, str]:
    return {a["key"]: a["value"] for a in e["attributes"]}


@dataclass
class ChainLedger:
    """What the chain recorded for one account, from delivered transactions and blocks."""

    gas_usei: int = 0
    txs: int = 0
    placed: list[str] = field(default_factory=list)  # client ids, in order
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (client id, reason)


def ledger(node: Localnet, address: str) -> ChainLedger:
    """Fees paid and orders placed by ``address``, read from the node's delivered txs."""
    out = ChainLedger()
    for r in node.chain.results.values():
        if r.sender != address:
            continue
        out.txs += 1
        out.gas_usei += tx_fee_usei(r.tx_bytes)
        for e in r.events:
            a = attrs(e)
            if e["type"] == "dex_order_placed":
                out.placed.append(a["client_id"])
            elif e["type"] == "dex_order_rejected":
                out.rejected.append((a["client_id"], a["reason"]))
    return out


def expected_deltas(fills: list[Fill], spec: MarketSpec) -> tuple[int, int]:
    """(base, quote) balance change in micro-units that ``fills`` imply, fees included."""
    base = quote = 0
    for f in fills:
        base += int(f.side) * f.lots * spec.base_micro_per_lot
        q = f.price * f.lots * spec.quote_micro_per_tick_lot
        fee = Decimal(repr(f.fee)) * MICRO
        assert fee == fee.to_integral_value(), f.fee
        quote -= int(f.side) * q + int(fee)
    return base, quote


# --- the localnet as a child process --------------------------------------------------------


class NodeProcess:
    """``python -m cli localnet`` in a child process (for kill -9)."""

    def __init__(self, state_file: Path, rest_port: int = 0, rpc_port: int = 0) -> None:
        self.state_file = state_file
        self.rest_port = rest_port
        self.rpc_port = rpc_port
        self.proc: asyncio.subprocess.Process | None = None
        self.ready: dict[str, Any] = {}

    @staticmethod
    def env() -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHMM_")}
        env.update(
            {
                "FLASHMM_LOG_LEVEL": "WARNING",
                # one market whose base is not the gas denom: balances need no gas sums
                "FLASHMM_MARKETS": json.dumps(
                    [
                        {
                            "symbol": "ATOM/USDC",
                            "tick_size": "0.001",
                            "lot_size": "0.1",
                            "start_price": "8.0",
                        }
                    ]
                ),
                "FLASHMM_SIM__MARKET": json.dumps(
                    {"warmup_s": 5, "seed": 11, "noise_market_rate": 8.0}
                ),
                "FLASHMM_LOCALNET__BLOCK_INTERVAL_S": str(BLOCK_S),
                "FLASHMM_LOCALNET__ACCOUNTS": json.dumps(
                    {
                        CHILD_ACCOUNT: {
                            "usei": 50_000 * SEI,
                            "uusdc": 50_000 * USDC,
                            "uatom": 5_000 * SEI,
                        }
                    }
                ),
                "FLASHMM_LOCALNET__CHAIN_ID": CHAIN_ID,
            }
        )
        return env

    async def start(self, timeout: float = 30.0) -> dict[str, Any]:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cli",
            "localnet",
            "--rest-port",
            str(self.rest_port),
            "--rpc-port",
            str(self.rpc_port),
            "--state-file",
            str(self.state_file),
            env=self.env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError("localnet exited before it was ready")
        self.ready = json.loads(line)
        assert self.ready["event"] == "ready"
        self.rest_port = int(self.ready["rest"].rsplit(":", 1)[1])
        self.rpc_port = int(self.ready["rpc"].rsplit(":", 1)[1].split("/")[0])
        return self.ready

    @property
    def rest(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def rpc(self) -> str:
        return f"ws://127.0.0.1:{self.rpc_port}/websocket"

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await asyncio.wait_for(self.proc.wait(), 10)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                await self.kill()


# --- a TCP proxy that can be killed ----------------------------------------------------------


class TcpProxy:
    """Forwards every connection on an OS-chosen port to ``target_port``; ``kill()`` closes
    the listener and every forwarded connection at once, as if the host went away."""

    def __init__(self, target_port: int, delay_s: float = 0.0) -> None:
        self.target_port = target_port
        self.delay_s = delay_s  # latency added to what flows back from the target
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            cw.close()
            return
        self._writers.update((cw, uw))
        t1 = asyncio.create_task(self._pipe(cr, uw))
        t2 = asyncio.create_task(self._pipe(ur, cw, self.delay_s))
        self._tasks.update((t1, t2))
        await asyncio.gather(t1, t2, return_exceptions=True)

    @staticmethod
    async def _pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter, delay_s: float = 0.0) -> None:
        q: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def later() -> None:
            while True:
                due, data = await q.get()
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                if not data:
                    return
                w.write(data)
                await w.drain()

        writer = asyncio.create_task(later()) if delay_s > 0 else None
        try:
            while data := await r.read(65536):
                if writer is None:
                    w.write(data)
                    await w.drain()
                else:
                    q.put_nowait((time.monotonic() + delay_s, data))
            if writer is not None:
                q.put_nowait((time.monotonic() + delay_s, b""))
                await writer
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            if writer is not None:
                writer.cancel()
            with contextlib.suppress(Exception):
                w.close()

    async def kill(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for w in list(self._writers):
            transport = w.transport
            with contextlib.suppress(Exception):
                transport.abort()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
