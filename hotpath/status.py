"""One-line live status for the terminal (best bid/ask, our quotes, position, PnL, latency)."""

from __future__ import annotations

from typing import Any

from flashmm.domain.instrument import Instrument


def status_line(st: dict[str, Any], instrument: Instrument, elapsed_s: float) -> str:
    """Format ``MarketMaker.status()`` for a person watching the demo."""
    tick = instrument.tick

    def px(ticks: int) -> str:
        return f"{ticks * tick:.4f}" if ticks else "  -   "

    return (
        f"[{elapsed_s:6.1f}s] {st['symbol']:<9} {st['state']:<8} "
        f"mkt {px(st['best_bid'])}/{px(st['best_ask'])}  "
        f"ours {px(st['our_bid'])}/{px(st['our_ask'])}  "
        f"pos {st['position_lots']:>+6d}  "
        f"rPnL {st['realized']:+8.3f} uPnL {st['unrealized']:+8.3f} fees {st['fees']:+7.3f}  "
        f"fills {st['fills']:>4d}  cycle p50 {st['cycle_p50_us']:6.1f}µs "
        f"p99 {st['cycle_p99_us']:6.1f}µs"
    )
