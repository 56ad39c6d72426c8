"""Gas estimation against the localnet's gas formula, and the market-data feed client's
config validation, circuit breaker, backoff and frame handling."""

from __future__ import annotations

import itertools
import json
import math
import random
from decimal import ROUND_CEILING
from typing import Any

import pytest

from flashmm.domain.instrument import SEI_USDC
from flashmm.domain.orders import Side
from flashmm.localnet.chain import Chain
from flashmm.localnet.config import GenesisAccount, LocalnetConfig, MarketSpec
from flashmm.localnet.errors import TxError
from flashmm.sim.params import MarketParams
from flashmm.venue.base import PlaceOrder
from flashmm.venue.feed import CircuitBreaker, FeedClient, FeedConfig
from flashmm.venue.sei.gas import GasConfig, GasEstimator, Urgency
from flashmm.venue.sei.tx import ChainCancel, MarketRef, build_tx, cancel_msg, place_msg
from flashmm.venue.sei.wallet import Wallet, contract_address, dev_mnemonic

LOCALNET = LocalnetConfig()


def _need(orders: int, cancels: int) -> int:
    return LOCALNET.gas_needed(orders, cancels)


# --- gas estimator --------------------------------------------------------------------------


def test_prior_before_any_observation() -> None:
    g = GasEstimator()
    cfg = g.cfg
    assert g.gas_limit(0, 0) == math.ceil(cfg.prior_base * cfg.headroom)
    assert g.gas_limit(2, 1) == math.ceil((cfg.prior_base + 3 * cfg.prior_per_item) * cfg.headroom)


def test_learns_base_and_per_item_from_localnet_formula() -> None:
    g = GasEstimator(GasConfig(prior_base=10_000, prior_per_item=90_000))
    for n in [1, 2, 3, 4, 2, 1, 6, 3]:
        g.observe(n, _need(n, 0))
    assert g.base == pytest.approx(LOCALNET.gas_per_tx, abs=1e-6)
    assert g.per_item == pytest.approx(LOCALNET.gas_per_order, abs=1e-6)
    for n in range(1, 25):
        limit = g.gas_limit(n, 0)
        assert limit >= _need(n, 0)
        assert _need(n, 0) * g.cfg.headroom <= limit <= _need(n, 0) * g.cfg.headroom + 1


def test_mixed_batches_are_covered_with_headroom() -> None:
    g = GasEstimator()
    shapes = [(o, c) for o in range(5) for c in range(5) if o + c]
    for o, c in shapes:
        g.observe(o + c, _need(o, c))
    assert g.per_item > 0
    for o, c in shapes:  # every shape seen is covered, with room to spare
        assert g.gas_limit(o, c) >= _need(o, c)
    # and orders-only batches of typical quoting size (a few levels per side)
    for o in range(1, 9):
        assert g.gas_limit(o, 0) >= _need(o, 0)


def test_single_shape_moves_the_intercept_only_upwards() -> None:
    g = GasEstimator()
    per_item = g.per_item
    g.observe(2, 200_000)  # above the prior: base rises to fit
    assert g.per_item == per_item
    assert g.base == 200_000 - 2 * per_item
    assert g.gas_limit(2, 0) >= 200_000
    g.observe(2, 10_000)  # below: keep the higher base (never shrink on one shape)
    assert g.base == 200_000 - 2 * per_item


def test_window_forgets_old_samples() -> None:
    g = GasEstimator(GasConfig(window=8))
    for n in [1, 2, 3, 4] * 2:
        g.observe(n, 50_000 + 50_000 * n)  # an old, expensive regime
    assert g.per_item == pytest.approx(50_000)
    for n in [1, 2, 3, 4] * 2:
        g.observe(n, _need(n, 0))
    assert g.per_item == pytest.approx(LOCALNET.gas_per_order)
    assert g.base == pytest.approx(LOCALNET.gas_per_tx)


def test_out_of_gas_raises_the_estimate() -> None:
    g = GasEstimator()
    for n in [1, 2, 3]:
        g.observe(n, _need(n, 0))
    before = [g.gas_limit(n, 0) for n in range(6)]
    g.out_of_gas()
    after = [g.gas_limit(n, 0) for n in range(6)]
    assert g.bumps == 1
    assert all(a > b for a, b in zip(after, before, strict=True))
    g.out_of_gas()
    assert g.bumps == 2
    assert g.gas_limit(3, 0) > after[3]


def test_fee_by_urgency_and_cap() -> None:
    g = GasEstimator()
    limit = 150_000
    normal = g.fee(limit, Urgency.NORMAL)
    cancel = g.fee(limit, Urgency.CANCEL)
    emergency = g.fee(limit, Urgency.EMERGENCY)
    assert normal == 3_000  # 0.02 usei/gas
    assert cancel == 4_500
    assert emergency == 9_000
    assert normal < cancel < emergency
    assert g.fee(1, Urgency.NORMAL) == 1  # rounds up, never below the minimum price
    assert g.fee(10**9, Urgency.NORMAL) == g.cfg.max_fee_usei
    assert g.fee(10**9, Urgency.EMERGENCY) == g.cfg.max_fee_usei
    capped = GasEstimator(GasConfig(max_fee_usei=5_000))
    assert capped.fee(limit, Urgency.NORMAL) == 3_000
    assert capped.fee(limit, Urgency.EMERGENCY) == 5_000


def test_fee_meets_the_localnet_minimum_gas_price() -> None:
    g = GasEstimator()
    for limit in [1, 99, 12_345, 160_000, 1_000_001]:
        required = int((LOCALNET.min_gas_price * limit).to_integral_value(rounding=ROUND_CEILING))
        assert g.fee(limit, Urgency.NORMAL) >= required


def test_estimated_tx_is_accepted_by_the_localnet() -> None:
    """The estimator's gas limit and fee pass the localnet's ante checks, before and after
    learning; a tx one gas unit short of the need is refused."""
    w = Wallet.from_mnemonic(dev_mnemonic("gas"))
    contract = contract_address("SEI/USDC")
    spec = MarketSpec(SEI_USDC, contract, "uusdc", "usei", MarketParams(warmup_s=5))
    chain = Chain(
        LocalnetConfig(
            markets=(spec,),
            genesis=(GenesisAccount(w.address, (("usei", 10**12), ("uusdc", 10**12))),),
        )
    )
    ref = MarketRef(contract, "uusdc", "usei", SEI_USDC)
    g = GasEstimator()
    seq = 0
    for round_ in range(3):
        places = [PlaceOrder(f"g{round_}-{i}", Side.BUY, 4000 + i, 1) for i in range(3)]
        cancels = [ChainCancel(1_000 + round_, Side.BUY, 4000)]
        limit = g.gas_limit(len(places), len(cancels))
        raw = build_tx(
            w,
            [cancel_msg(w.address, ref, cancels), place_msg(w.address, ref, places)],
            chain_id=chain.cfg.chain_id,
            account_number=chain.accounts[w.address].number,
            sequence=seq,
            gas_limit=limit,
            fee_amount=g.fee(limit, Urgency.NORMAL),
        )
        chain.check_tx(raw)
        seq += 1
        (r,) = chain.produce_block(chain.markets[contract].sim.time).txs
        assert r.gas_used <= r.gas_wanted == limit
        g.observe(len(places) + len(cancels), r.gas_used)

    short = chain.cfg.gas_needed(1, 0) - 1
    raw = build_tx(
        w,
        [place_msg(w.address, ref, [PlaceOrder("short", Side.BUY, 4000, 1)])],
        chain_id=chain.cfg.chain_id,
        account_number=chain.accounts[w.address].number,
        sequence=seq,
        gas_limit=short,
        fee_amount=g.fee(short, Urgency.NORMAL),
    )
    with pytest.raises(TxError) as ei:
        chain.check_tx(raw)
    assert ei.value.code == 11


# --- feed config ----------------------------------------------------------------------------


def test_feed_config_accepts_ws_endpoints() -> None:
    cfg = FeedConfig(("ws://127.0.0.1:1/websocket", "wss://example.invalid/ws"), ("q",))
    assert len(cfg.endpoints) == 2


@pytest.mark.parametrize(
    "endpoints",
    [
        (),
        ("http://127.0.0.1:26657/websocket",),
        ("https://node/ws",),
        ("127.0.0.1:26657",),
        ("",),
        ("ws://ok/websocket", "tcp://bad"),
    ],
)
def test_feed_config_rejects_bad_endpoints(endpoints: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="endpoint"):
        FeedConfig(endpoints, ("tm.event='NewBlock'",))


# --- circuit breaker ------------------------------------------------------------------------


def test_breaker_opens_after_n_failures_and_half_opens_after_cooldown() -> None:
    b = CircuitBreaker(limit=3, cooldown_s=10.0)
    assert b.allow(0.0)
    b.failure(1.0)
    b.failure(2.0)
    assert b.allow(2.0)  # 2 < 3: still closed
    b.failure(3.0)
    assert not b.allow(3.0)  # open
    assert not b.allow(12.999)
    assert b.allow(13.0)  # half-open: one try allowed
    b.failure(13.5)  # the trial fails: open again at once, for a full cooldown
    assert not b.allow(13.5)
    assert not b.allow(23.4)
    assert b.allow(23.5)
    b.success()  # the trial succeeds: closed, counter reset
    assert b.failures == 0
    assert b.allow(23.5)
    b.failure(24.0)
    b.failure(25.0)
    assert b.allow(25.0)


def test_breaker_success_resets_before_limit() -> None:
    b = CircuitBreaker(limit=2, cooldown_s=5.0)
    b.failure(0.0)
    b.success()
    b.failure(1.0)
    assert b.allow(1.0)
    b.failure(2.0)
    assert not b.allow(2.0)
    assert b.allow(7.0)


# --- backoff --------------------------------------------------------------------------------


class FixedRng(random.Random):
    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def _client(rng: random.Random | None = None, **cfg: Any) -> FeedClient:
    return FeedClient(
        FeedConfig(("ws://127.0.0.1:1/websocket",), ("tm.event='NewBlock'",), **cfg),
        lambda _: None,
        rng=rng,
    )


def test_backoff_grows_exponentially_and_is_capped() -> None:
    c = _client(FixedRng(0.5), backoff_initial_s=0.05, backoff_max_s=5.0)  # 0.5: no jitter
    values = [c.backoff(a) for a in range(12)]
    assert values[:5] == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.8])
    for a, b in itertools.pairwise(values):
        assert b == pytest.approx(min(2 * a, 5.0))
    assert values[-1] == 5.0
    assert c.backoff(60) == 5.0


def test_backoff_jitter_stays_within_bounds() -> None:
    jitter = 0.25
    lo = _client(FixedRng(0.0), jitter=jitter)
    hi = _client(FixedRng(0.999999), jitter=jitter)
    assert lo.backoff(3) == pytest.approx(0.4 * (1 - jitter))
    assert hi.backoff(3) == pytest.approx(0.4 * (1 + jitter), rel=1e-5)

    c = _client(random.Random(1234), jitter=jitter)
    for attempt in range(10):
        base = min(5.0, 0.05 * 2**attempt)
        samples = [c.backoff(attempt) for _ in range(200)]
        assert all(base * (1 - jitter) <= s <= base * (1 + jitter) for s in samples)
        assert max(samples) - min(samples) > base * jitter  # it does spread
    no_jitter = _client(random.Random(1), jitter=0.0)
    assert {no_jitter.backoff(4) for _ in range(20)} == {0.8}


def test_backoff_survives_a_very_long_outage() -> None:
    c = _client(FixedRng(0.5))
    assert c.backoff(1023) == 5.0
    assert c.backoff(1024) == 5.0


# --- frame handling -------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, result: dict[str, Any]) -> None:
        if result["data"].get("bad"):
            raise ValueError("malformed inside the event")
        self.events.append(result)


GOOD = {
    "jsonrpc": "2.0",
    "id": 1,
    "result": {
        "query": "tm.event='NewBlock'",
        "data": {"type": "tendermint/event/NewBlock", "value": {"block": {}}},
        "events": {"tm.event": ["NewBlock"]},
    },
}


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param("not json {", id="not-json"),
        pytest.param("", id="empty"),
        pytest.param("[1, 2]", id="array"),
        pytest.param('"text"', id="string"),
        pytest.param("42", id="number"),
        pytest.param('{"jsonrpc": "2.0", "id": 1}', id="no-result"),
        pytest.param('{"result": [1]}', id="result-not-object"),
        pytest.param('{"result": {"query": "q"}}', id="result-without-data"),
        pytest.param('{"result": {"query": "q", "data": "x"}}', id="data-not-object"),
        pytest.param('{"result": {"data": {"bad": true}}}', id="on-event-raises"),
    ],
)
def test_handle_counts_and_drops_malformed_frames(frame: str) -> None:
    rec = Recorder()
    c = FeedClient(FeedConfig(("ws://127.0.0.1:1/websocket",), ("q",)), rec)
    assert c._handle(frame) is False
    assert c.malformed == 1
    assert rec.events == []
    # and the next good frame still gets through
    assert c._handle(json.dumps(GOOD)) is True
    assert c.malformed == 1
    assert rec.events == [GOOD["result"]]


def test_handle_delivers_events_and_ignores_acks_and_errors() -> None:
    rec = Recorder()
    c = FeedClient(FeedConfig(("ws://127.0.0.1:1/websocket",), ("q",)), rec)
    assert c._handle('{"jsonrpc": "2.0", "id": 1, "result": {}}') is False  # subscribe ack
    err = '{"jsonrpc": "2.0", "id": 2, "error": {"code": -32602, "message": "bad"}}'
    assert c._handle(err) is False
    assert c.malformed == 0
    assert rec.events == []
    for i in range(3):
        frame = json.loads(json.dumps(GOOD))
        frame["result"]["data"]["value"]["n"] = i
        assert c._handle(json.dumps(frame)) is True
    assert [e["data"]["value"]["n"] for e in rec.events] == [0, 1, 2]
    assert c.malformed == 0
