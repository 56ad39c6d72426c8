"""What a report says about its run: the assumptions it ran under and the parameters it
actually used, each with its unit.

The simulated market's prices are integer ticks (``MarketParams.start_price`` = 5,000 is a
price of 0.5 at a 0.0001 tick), so every tick or lot figure is shown with its value in the
instrument's currencies beside it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from flashmm.domain.instrument import Instrument
from flashmm.sim.params import PRESETS, MarketParams, market_preset
from hotpath.report_labels import number

if TYPE_CHECKING:
    from hotpath.backtest import BacktestConfig
    from hotpath.replay import ReplayConfig


@dataclass(frozen=True, slots=True)
class Assumption:
    """One assumption: a plain name, what was assumed, and the setting that chose it."""

    name: str
    value: str
    setting: str = ""


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter as used: its setting name, value and unit."""

    key: str
    value: str
    unit: str


# units of each parameter group; "ticks" and "lots" values also get their currency value
_MARKET_UNITS = {
    "seed": "—",
    "start_price": "price",
    "fair_vol": "ticks/√s",
    "jump_rate": "per s",
    "jump_sigma": "ticks",
    "limit_A": "orders/s per side",
    "limit_k": "per tick",
    "anchor_weight": "0 = mid, 1 = fair value",
    "max_depth_ticks": "ticks",
    "cancel_rate": "per s, each resting order",
    "noise_market_rate": "per s per side",
    "informed_rate": "per s",
    "informed_edge": "ticks",
    "limit_size_mean": "lots",
    "market_size_mean": "lots",
    "size_dispersion": "log-sd",
    "warmup_s": "s",
}
_QUOTING_UNITS = {
    "model": "—",
    "mode": "—",
    "gamma": "risk aversion",
    "horizon_s": "s",
    "prior_sigma": "ticks/√s",
    "prior_A": "fills/s",
    "prior_k": "per tick",
    "levels": "per side",
    "level_spacing_ticks": "ticks",
    "order_notional": "{quote}",
    "order_lots": "lots (0: from order_notional)",
    "size_decay": "× per level",
    "min_half_spread_ticks": "ticks",
    "max_half_spread_ticks": "ticks",
    "vol_ref": "ticks/√s",
    "vol_widen": "× per vol_ref",
    "signal_skew_ticks": "ticks",
    "signal_min_confidence": "0 to 1",
    "inventory_skew_mult": "×",
    "requote_min_interval_s": "s",
    "keep_size_tolerance": "fraction of size",
}
_RISK_UNITS = {
    "max_position_notional": "{quote}",
    "max_order_notional": "{quote}",
    "max_open_notional": "{quote}",
    "max_actions_per_s": "per s",
    "daily_loss_limit": "{quote}",
    "max_drawdown": "{quote}",
    "stale_after_s": "s",
    "vol_breaker_sigma": "ticks/√s",
    "vol_breaker_cooldown_s": "s",
}
_POLICY_UNITS = {
    "max_improve_ticks": "ticks",
    "behind_ticks": "ticks",
    "microprice_weight": "0 = mid, 1 = microprice",
    "signal_min_confidence": "0 to 1",
    "inventory_behind_util": "fraction of the limit",
}


def params_table(values: dict[str, Any], units: dict[str, str], inst: Instrument) -> list[Param]:
    """Parameters with units; ticks and lots also in currency, ``price`` (ticks) as a price."""
    out = []
    for key, v in values.items():
        unit = units.get(key) or ("ticks" if key.endswith("_ticks") else "—")
        unit = unit.format(base=inst.base, quote=inst.quote)
        shown = _plain(v)
        if unit == "price" and isinstance(v, int):
            shown = f"{_price(v, inst)} ({v:,} ticks of {inst.tick_size})"
            unit = inst.quote
        elif unit == "ticks" and isinstance(v, int | float):
            shown = f"{shown} ({_decimal(v) * inst.tick_size:f} {inst.quote})"
        elif unit == "lots" and isinstance(v, int | float):
            shown = f"{shown} ({_decimal(v) * inst.lot_size:f} {inst.base})"
        out.append(Param(key, shown, unit))
    return out


def backtest_params(cfg: BacktestConfig) -> dict[str, list[Param]]:
    """Every parameter group the generated-market run used."""
    inst = cfg.instrument
    groups = {
        "Simulated market": params_table(cfg.market.as_dict(), _MARKET_UNITS, inst),
        "Venue": [
            Param("order_latency_s", f"{cfg.venue.order_latency_s * 1e3:g} ms", "ms"),
            Param("report_latency_s", f"{cfg.venue.report_latency_s * 1e3:g} ms", "ms"),
            Param("post_only", str(cfg.venue.post_only), "—"),
        ],
        "Quoting": params_table(cfg.quoting.as_dict(), _QUOTING_UNITS, inst),
        "Risk limits": params_table(cfg.limits.as_dict(), _RISK_UNITS, inst),
        "Instrument": _instrument(inst),
    }
    if cfg.policy is not None:
        groups["Touch policy"] = params_table(asdict(cfg.policy), _POLICY_UNITS, inst)
    return groups


def replay_params(cfg: ReplayConfig, inst: Instrument) -> dict[str, list[Param]]:
    """Every parameter group the replay used."""
    return {
        "Quoting": params_table(cfg.quoting.as_dict(), _QUOTING_UNITS, inst),
        "Risk limits": params_table(cfg.limits.as_dict(), _RISK_UNITS, inst),
        "Instrument": _instrument(inst),
    }


def preset_diff(market: MarketParams, name: str) -> dict[str, tuple[Any, Any]]:
    """Where ``market`` differs from preset ``name`` (seed and start price are the run's
    own): {field: (used, preset's)}."""
    ref = market_preset(name, seed=market.seed, start_price=market.start_price)
    return {
        f.name: (getattr(market, f.name), getattr(ref, f.name))
        for f in fields(market)
        if getattr(market, f.name) != getattr(ref, f.name)
    }


def preset_of(market: MarketParams) -> tuple[str, dict[str, tuple[Any, Any]]]:
    """The named preset closest to ``market``, and what differs from it."""
    diffs = {name: preset_diff(market, name) for name in PRESETS}
    name = min(diffs, key=lambda n: len(diffs[n]))
    return name, diffs[name]


def backtest_assumptions(cfg: BacktestConfig, preset: str | None = None) -> list[Assumption]:
    """The generated-market run's assumptions, each with the setting that chose it;
    ``preset`` where the caller knows it, else the closest preset to the parameters."""
    m, v, q, inst = cfg.market, cfg.venue, cfg.quoting, cfg.instrument
    if preset in PRESETS:
        assert preset is not None
        name, diff = preset, preset_diff(m, preset)
    else:
        name, diff = preset_of(m)
    changes = "; ".join(f"{k} = {_plain(a)} (preset: {_plain(b)})" for k, (a, b) in diff.items())
    period = 1.0 / cfg.quote_hz
    return [
        Assumption("Market", f"simulated, seeded; preset {name}", f"--preset {name}"),
        Assumption("Random seed", str(m.seed), f"--seed {m.seed}"),
        Assumption(
            "Start price",
            f"{_price(m.start_price, inst)} {inst.quote} ({m.start_price:,} ticks)",
            "markets[0].start_price",
        ),
        Assumption("Changes to the preset", changes or "none", "sim.market"),
        Assumption(
            "Duration",
            f"{cfg.minutes:g} simulated minutes, after a {m.warmup_s:g} s warm-up not counted",
            f"--minutes {cfg.minutes:g}",
        ),
        Assumption(
            "Quote refresh",
            f"every {period * 1e3:g} ms ({cfg.quote_hz:g} Hz), and at once when the book moves "
            "through a live quote",
            f"hotpath.quote_hz = {cfg.quote_hz:g}",
        ),
        Assumption("Market-data latency", "none: the engine reads the matcher's book directly"),
        Assumption(
            "Order entry latency",
            f"{v.order_latency_s * 1e3:g} ms",
            f"order_latency_s = {v.order_latency_s:g}",
        ),
        Assumption(
            "Order report latency",
            f"{v.report_latency_s * 1e3:g} ms",
            f"report_latency_s = {v.report_latency_s:g}",
        ),
        Assumption(
            "Queue model",
            "exact FIFO: our orders join the back of their price level and move up only as "
            "orders ahead of them fill or cancel",
        ),
        Assumption(
            "Fills", "partial fills happen: market orders meet resting orders, ours included"
        ),
        Assumption(
            "Post-only",
            "on: an order that would cross on arrival is rejected"
            if v.post_only
            else "off: an order that crosses takes",
            f"post_only = {v.post_only}",
        ),
        _fees(inst),
        Assumption(
            "Market impact",
            "yes: our orders rest in the simulated book, and the background flow anchors on "
            "the mid they move",
        ),
        Assumption(
            "Spread without us",
            "the same seed and schedule with our engine off (the counterfactual)"
            if cfg.counterfactual
            else "not run",
            "" if cfg.counterfactual else "--no-counterfactual",
        ),
        Assumption(
            "Quote model",
            f"{q.model.value}, mode {q.mode.value}; touch policy "
            + ("on" if cfg.policy is not None else "off"),
            f"--policy {'touch' if cfg.policy is not None else 'none'}",
        ),
        Assumption(
            "Sampling",
            f"charts every {cfg.sample_every_s:g} s; spread figures on the quote-time grid",
        ),
        Assumption("Event core", cfg.sim_core, f"sim_core = {cfg.sim_core}"),
    ]


_REPLAY_NAMES = {
    "feed_latency": "Market-data (feed) latency",
    "order_entry_latency_ms": "Order entry latency (ms)",
    "order_response_latency_ms": "Order response latency (ms)",
    "queue_model": "Queue model",
    "partial_fills": "Partial fills",
    "market_impact": "Market impact",
    "post_only": "Post-only",
}


_REPLAY_VALUES: dict[tuple[str, Any], str] = {
    ("partial_fills", False): "never: once reached, the whole order fills at its own price",
    ("post_only", True): "on: an order that would cross on arrival is rejected",
}


def replay_assumptions(
    cfg: ReplayConfig, inst: Instrument, summary: dict[str, Any]
) -> list[Assumption]:
    """The replay's assumptions: the recording it replays and the named options."""
    out = [
        Assumption(
            "Market",
            f"recorded data, replayed: {summary.get('data', '?')}",
            f"--data {summary.get('data', '?')}",
        ),
        Assumption(
            "Recording",
            f"{summary.get('minutes', 0.0):.1f} minutes from {summary.get('data_from_utc', '?')}"
            f"; tick {inst.tick_size}, lot {inst.lot_size}",
        ),
        Assumption(
            "Quote refresh",
            f"every {1e3 / cfg.quote_hz:g} ms ({cfg.quote_hz:g} Hz)"
            + (", and at once when the book moves through a live quote" if cfg.reactive else ""),
            f"quote_hz = {cfg.quote_hz:g}",
        ),
    ]
    for k, v in cfg.assumptions().items():
        if k in ("maker_fee_bps", "taker_fee_bps"):
            continue  # one Fees line below
        shown = _REPLAY_VALUES.get((k, v), _plain(v)) if isinstance(v, bool) else _plain(v)
        out.append(Assumption(_REPLAY_NAMES.get(k, k), shown, f"{k} = {v}"))
    out.append(_fees(inst))
    return out


def _fees(inst: Instrument) -> Assumption:
    maker = float(inst.maker_fee_bps)
    rebate = " (a rebate)" if maker < 0 else ""
    return Assumption(
        "Fees",
        f"maker {maker:g} bps{rebate}, taker {float(inst.taker_fee_bps):g} bps of notional; "
        "our fills are maker fills",
        f"maker_fee_bps = {maker:g}, taker_fee_bps = {float(inst.taker_fee_bps):g}",
    )


def _instrument(inst: Instrument) -> list[Param]:
    return [
        Param("symbol", inst.symbol, "—"),
        Param("tick_size", str(inst.tick_size), inst.quote),
        Param("lot_size", str(inst.lot_size), inst.base),
        Param("maker_fee_bps", str(inst.maker_fee_bps), "bps (negative = rebate)"),
        Param("taker_fee_bps", str(inst.taker_fee_bps), "bps"),
    ]


def _price(ticks: int, inst: Instrument) -> str:
    return f"{inst.ticks_to_price(ticks):f}"


def _decimal(v: float) -> Decimal:
    return Decimal(str(v)).normalize()


def _plain(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int | float):
        return number(float(v))
    return str(v)
