"""The seeded background market: latent fair value, noise and informed order flow.

``SimMarket`` owns an ``Exchange`` and advances it one Poisson event at a time
(Gillespie-style: draw the time to the next event from the total rate, then pick which
event). Owner 0 is the background; anyone else (owner >= 1) may trade in the same book.
"""

from __future__ import annotations

import math

from flashmm.sim.matching import Exchange, Trade
from flashmm.sim.params import MarketParams
from flashmm.sim.rng import RandomStream

BACKGROUND = 0

# event kinds returned by step()
LIMIT, CANCEL, NOISE_MARKET, INFORMED, JUMP, IDLE = range(6)


class SimMarket:
    """Background market flow around a latent fair value, in simulated seconds."""

    __slots__ = (
        "_const_rate",
        "_idx",
        "_limit_rate",
        "_mark",
        "_mu_lim",
        "_mu_mkt",
        "_noise",
        "_rng",
        "events",
        "exchange",
        "fair",
        "next_time",
        "p",
        "time",
    )

    def __init__(self, params: MarketParams, record_deltas: bool = False) -> None:
        self.p = params
        self._rng = RandomStream(params.seed)
        self.exchange = Exchange(record_deltas=record_deltas)
        self.fair = float(params.start_price)
        self.time = 0.0
        self.events = 0
        # total per-side arrival rate of  A·e^(−kδ) summed over δ = 0, 1, 2, ...
        self._limit_rate = params.limit_A / (1.0 - math.exp(-params.limit_k))
        self._const_rate = (
            2 * self._limit_rate
            + 2 * params.noise_market_rate
            + params.informed_rate
            + params.jump_rate
        )
        s2 = params.size_dispersion**2
        self._mu_lim = math.log(params.limit_size_mean) - s2 / 2
        self._mu_mkt = math.log(params.market_size_mean) - s2 / 2
        self._mark = 0  # trades already checked by _forget_filled
        self._noise: list[int] = []  # resting background order ids
        self._idx: dict[int, int] = {}  # oid -> position in _noise
        self._seed_book()
        self.next_time = self._draw_next(0.0)
        if params.warmup_s > 0:
            self.run_until(params.warmup_s)
            self.take_trades()
            self.exchange.deltas.clear()

    def _seed_book(self) -> None:
        """A symmetric starting book so the first events see a two-sided market."""
        p = self.p
        for d in range(1, 21):
            for side in (1, -1):
                self._add_noise_limit(side, p.start_price - side * d, self._size(self._mu_lim))

    def _size(self, mu: float) -> int:
        return max(1, int(math.exp(mu + self.p.size_dispersion * self._rng.normal())))

    def _total_rate(self) -> float:
        return self._const_rate + self.p.cancel_rate * len(self._noise)

    def _draw_next(self, now: float) -> float:
        return now + self._rng.exponential() / self._total_rate()

    @property
    def mid(self) -> float:
        """Current mid in ticks (falls back to fair value on a one-sided book)."""
        m = self.exchange.book.mid
        return m if m else self.fair

    def run_until(self, t: float) -> None:
        """Process every background event up to simulated time ``t``."""
        while self.next_time <= t:
            self.step()
        if t > self.time:
            self._diffuse(t - self.time)
            self.time = t

    def _diffuse(self, dt: float) -> None:
        self.fair += self.p.fair_vol * math.sqrt(dt) * self._rng.normal()
        if self.fair < 1.0:
            self.fair = 1.0

    def step(self) -> int:
        """Advance to and apply the next background event; returns its kind."""
        t = self.next_time
        p = self.p
        rng = self._rng
        fair = self.fair + p.fair_vol * math.sqrt(t - self.time) * rng.normal()
        self.fair = fair if fair > 1.0 else 1.0
        self.time = t
        kind = self._apply_event(self._const_rate + p.cancel_rate * len(self._noise))
        self.events += 1
        if len(self.exchange.trades) > self._mark:
            self._forget_filled()
        self.next_time = t + rng.exponential() / (
            self._const_rate + p.cancel_rate * len(self._noise)
        )
        return kind

    def _apply_event(self, total_rate: float) -> int:
        p = self.p
        rng = self._rng
        x = rng.uniform() * total_rate
        lim2 = 2 * self._limit_rate
        if x < lim2:
            side = 1 if x < self._limit_rate else -1
            mid = self.mid
            anchor = mid + p.anchor_weight * (self.fair - mid)
            delta = int(rng.exponential() / p.limit_k)
            if delta >= p.max_depth_ticks:
                return IDLE
            price = (math.floor(anchor) - delta) if side > 0 else (math.ceil(anchor) + delta)
            if price < 1:
                return IDLE
            self._add_noise_limit(side, price, self._size(self._mu_lim))
            return LIMIT
        x -= lim2
        cancels = p.cancel_rate * len(self._noise)
        if x < cancels:
            oid = self._noise[int(rng.uniform() * len(self._noise))]
            self.exchange.cancel(oid)
            self._drop(oid)
            return CANCEL
        x -= cancels
        if x < 2 * p.noise_market_rate:
            side = 1 if x < p.noise_market_rate else -1
            self.exchange.market(BACKGROUND, side, self._size(self._mu_mkt))
            return NOISE_MARKET
        x -= 2 * p.noise_market_rate
        if x < p.informed_rate:
            gap = self.fair - self.mid
            if abs(gap) <= p.informed_edge:
                return IDLE
            self.exchange.market(BACKGROUND, 1 if gap > 0 else -1, self._size(self._mu_mkt))
            return INFORMED
        self.fair += p.jump_sigma * rng.normal()
        if self.fair < 1.0:
            self.fair = 1.0
        return JUMP

    def _add_noise_limit(self, side: int, price: int, lots: int) -> None:
        oid, resting = self.exchange.place_limit(BACKGROUND, side, price, lots)
        if resting:
            self._idx[oid] = len(self._noise)
            self._noise.append(oid)

    def _drop(self, oid: int) -> None:
        i = self._idx.pop(oid, None)
        if i is None:
            return
        last = self._noise.pop()
        if last != oid:
            self._noise[i] = last
            self._idx[last] = i

    def _forget_filled(self) -> None:
        """Remove fully filled background orders from the cancel pool."""
        trades = self.exchange.trades
        n = len(trades)
        for i in range(self._mark, n):
            tr = trades[i]
            if tr.maker_left == 0 and tr.maker_owner == BACKGROUND:
                self._drop(tr.maker_oid)
        self._mark = n

    def take_trades(self) -> list[Trade]:
        """Hand over the executions since the last call (the caller owns the list)."""
        self._forget_filled()
        trades = self.exchange.trades
        self.exchange.trades = []
        self._mark = 0
        return trades
