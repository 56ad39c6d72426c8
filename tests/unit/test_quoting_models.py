"""Avellaneda–Stoikov / GLFT closed forms and the online σ and (A, k) estimators."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest

from hotpath.quoting.estimators import IntensityEstimator, VolEstimator
from hotpath.quoting.models import as_quote, glft_quote

S = 1_000_000_000  # ns per second

# The worked example: q = 2 order sizes long, σ = 1.5 ticks/√s, γ = 0.1, k = 0.5 per tick.
Q, SIGMA, GAMMA, K, TAU, A = 2.0, 1.5, 0.1, 0.5, 5.0, 2.0


# --- Avellaneda–Stoikov ---------------------------------------------------------------------
def test_as_quote_matches_hand_computed_values() -> None:
    # r − s = −q·γ·σ²·τ = −2 · 0.1 · 2.25 · 5 = −2.25
    # spread = γσ²τ + (2/γ)·ln(1 + γ/k) = 1.125 + 20·ln(1.2) = 1.125 + 3.646431… = 4.771431…
    offset, half = as_quote(Q, SIGMA, GAMMA, K, TAU)
    assert offset == pytest.approx(-2.25, rel=1e-12)
    assert half == pytest.approx((1.125 + 20.0 * math.log(1.2)) / 2.0, rel=1e-12)
    assert half == pytest.approx(2.3857156, abs=1e-6)


def test_as_quote_flat_inventory_has_no_offset() -> None:
    offset, half = as_quote(0.0, SIGMA, GAMMA, K, TAU)
    assert offset == 0.0
    assert half == pytest.approx(2.3857156, abs=1e-6)  # spread does not depend on q


@pytest.mark.parametrize("q", [0.5, 1.0, 3.0, 10.0])
def test_as_offset_sign_is_opposite_to_inventory(q: float) -> None:
    long_off, long_half = as_quote(q, SIGMA, GAMMA, K, TAU)
    short_off, short_half = as_quote(-q, SIGMA, GAMMA, K, TAU)
    assert long_off < 0 < short_off
    assert long_off == pytest.approx(-short_off)
    assert long_half == pytest.approx(short_half)
    # linear in q: −q·γσ²τ
    assert long_off == pytest.approx(-q * GAMMA * SIGMA**2 * TAU)


def test_as_spread_increases_with_sigma_and_horizon() -> None:
    halves = [as_quote(0.0, s, GAMMA, K, TAU)[1] for s in (0.0, 0.5, 1.0, 2.0, 4.0)]
    assert all(a < b for a, b in pairwise(halves))
    # σ = 0 leaves only the intensity term (1/γ)·ln(1 + γ/k)
    assert halves[0] == pytest.approx(10.0 * math.log(1.2))
    assert as_quote(0.0, 1.0, GAMMA, K, 10.0)[1] > as_quote(0.0, 1.0, GAMMA, K, 5.0)[1]


def test_as_spread_narrows_when_the_book_is_more_liquid() -> None:
    # larger k (intensity decays faster with distance) → tighter quotes
    assert as_quote(0.0, 1.0, GAMMA, 2.0, TAU)[1] < as_quote(0.0, 1.0, GAMMA, 0.5, TAU)[1]


# --- GLFT ------------------------------------------------------------------------------------
def test_glft_quote_matches_hand_computed_values() -> None:
    # c1 = ln(1 + γ/k)/γ = ln(1.2)/0.1 = 1.823216…
    # c2 = sqrt(σ²γ/(2kA) · (1 + γ/k)^(1 + k/γ)) = sqrt(2.25·0.1/2 · 1.2^6)
    #    = sqrt(0.1125 · 2.985984) = 0.579589…
    c1 = math.log(1.0 + GAMMA / K) / GAMMA
    c2 = math.sqrt(SIGMA**2 * GAMMA / (2 * K * A) * (1 + GAMMA / K) ** (1 + K / GAMMA))
    assert c1 == pytest.approx(1.8232156, abs=1e-6)
    assert c2 == pytest.approx(0.5795888, abs=1e-6)
    offset, half = glft_quote(Q, SIGMA, GAMMA, K, A)
    assert offset == pytest.approx(-Q * c2, rel=1e-12)
    assert offset == pytest.approx(-1.1591776, abs=1e-6)
    assert half == pytest.approx(c1 + c2 / 2, rel=1e-12)
    assert half == pytest.approx(2.1130100, abs=1e-6)


def test_glft_bid_ask_distances_match_the_paper_form() -> None:
    # δ_bid = c1 + (2q+1)/2·c2, δ_ask = c1 − (2q−1)/2·c2 with bid = s − δ_bid, ask = s + δ_ask
    c1 = math.log(1.0 + GAMMA / K) / GAMMA
    c2 = math.sqrt(SIGMA**2 * GAMMA / (2 * K * A) * (1 + GAMMA / K) ** (1 + K / GAMMA))
    for q in (-3.0, -1.0, 0.0, 1.0, 2.0, 5.0):
        offset, half = glft_quote(q, SIGMA, GAMMA, K, A)
        delta_bid = -(offset - half)
        delta_ask = offset + half
        assert delta_bid == pytest.approx(c1 + (2 * q + 1) / 2 * c2, abs=1e-12)
        assert delta_ask == pytest.approx(c1 - (2 * q - 1) / 2 * c2, abs=1e-12)


def test_glft_half_spread_independent_of_inventory_and_skew_linear() -> None:
    _, h0 = glft_quote(0.0, SIGMA, GAMMA, K, A)
    o1, h1 = glft_quote(1.0, SIGMA, GAMMA, K, A)
    o3, h3 = glft_quote(3.0, SIGMA, GAMMA, K, A)
    om, _ = glft_quote(-1.0, SIGMA, GAMMA, K, A)
    assert h0 == pytest.approx(h1) == pytest.approx(h3)
    assert o1 < 0 < om
    assert o3 == pytest.approx(3 * o1)
    assert glft_quote(0.0, SIGMA, GAMMA, K, A)[0] == 0.0


def test_glft_spread_and_skew_grow_with_sigma() -> None:
    prev_half, prev_skew = -1.0, -1.0
    for s in (0.0, 0.5, 1.0, 2.0, 4.0):
        offset, half = glft_quote(1.0, s, GAMMA, K, A)
        assert half > prev_half
        assert -offset >= prev_skew
        prev_half, prev_skew = half, -offset
    # σ = 0: no inventory risk term, half spread is c1 alone
    assert glft_quote(1.0, 0.0, GAMMA, K, A) == pytest.approx((0.0, math.log(1.2) / GAMMA))


def test_glft_skew_shrinks_with_more_order_flow() -> None:
    # higher A → inventory can be worked off faster → smaller skew (c2 ∝ 1/√A)
    o_lo, _ = glft_quote(1.0, SIGMA, GAMMA, K, 1.0)
    o_hi, _ = glft_quote(1.0, SIGMA, GAMMA, K, 4.0)
    assert o_hi == pytest.approx(o_lo / 2.0)


# --- VolEstimator ----------------------------------------------------------------------------
def test_vol_first_update_only_records() -> None:
    v = VolEstimator(prior_sigma=1.5)
    assert v.update(100.0, 10 * S) == 1.5
    assert v.sigma == 1.5


def test_vol_constant_mid_decays_towards_zero_at_the_halflife() -> None:
    v = VolEstimator(prior_sigma=2.0, halflife_updates=10.0)
    t = 10 * S
    v.update(500.0, t)
    sigmas = []
    for _ in range(100):
        t += S
        sigmas.append(v.update(500.0, t))
    assert all(a > b for a, b in pairwise(sigmas))
    # variance halves every 10 updates: σ_n = 2·sqrt(0.5^(n/10))
    assert sigmas[9] == pytest.approx(2.0 * math.sqrt(0.5), rel=1e-9)
    assert sigmas[99] == pytest.approx(2.0 * 0.5**5, rel=1e-9)
    assert sigmas[99] < 0.07


def test_vol_step_pattern_gives_expected_variance() -> None:
    # mid alternates ±1 tick every second: each update sees d²/dt = 1 tick²/s.
    # From a zero prior the EWMA is var_n = 1 − 0.5^(n/h).
    v = VolEstimator(prior_sigma=0.0, halflife_updates=10.0)
    t = 10 * S
    v.update(100.0, t)
    seen = []
    for m in [101.0, 100.0] * 20:
        t += S
        seen.append(v.update(m, t))
    assert seen[9] ** 2 == pytest.approx(0.5, rel=1e-9)  # var = 1 − 0.5
    assert seen[29] ** 2 == pytest.approx(1 - 0.5**3, rel=1e-9)  # 0.875
    assert seen[39] ** 2 == pytest.approx(1 - 0.5**4, rel=1e-9)  # 0.9375


def test_vol_steady_state_for_two_tick_steps_every_two_seconds() -> None:
    # d = 2 ticks, dt = 2 s → d²/dt = 2; a long run converges to σ = √2 from any prior
    v = VolEstimator(prior_sigma=5.0, halflife_updates=5.0)
    t = 10 * S
    mid = 100.0
    v.update(mid, t)
    for i in range(200):
        t += 2 * S
        mid += 2.0 if i % 2 == 0 else -2.0
        v.update(mid, t)
    assert v.sigma == pytest.approx(math.sqrt(2.0), rel=1e-6)


def test_vol_samples_mid_changes_at_least_the_sample_interval_apart() -> None:
    # updates closer together than sample_interval_s are skipped; the next sample measures the
    # whole move since the last accepted one: d = 3 ticks over 2 s → d²/dt = 4.5
    v = VolEstimator(prior_sigma=0.0, halflife_updates=1.0, sample_interval_s=2.0)
    v.update(100.0, 10 * S)
    assert v.update(110.0, 11 * S) == 0.0  # 1 s later: skipped (bid-ask bounce guard)
    assert v.update(103.0, 12 * S) == pytest.approx(math.sqrt(0.5 * 4.5))  # α = 0.5


def test_vol_ignores_non_increasing_timestamps() -> None:
    v = VolEstimator(prior_sigma=1.0, halflife_updates=10.0)
    v.update(100.0, 10 * S)
    assert v.update(150.0, 10 * S) == 1.0  # same timestamp: no division by zero, no update
    assert v.update(100.0, 9 * S) == 1.0  # going back in time: no update


# --- IntensityEstimator ----------------------------------------------------------------------
def _feed_exponential(
    est: IntensityEstimator, a: float, k: float, start_ns: int, mid: float = 1000.0
) -> int:
    """Trades whose 'reached at least δ' counts are round(A·window·e^(−kδ)); returns count."""
    depth = est.max_depth
    at_least = [round(a * est.window_s * math.exp(-k * d)) for d in range(depth + 1)]
    exact = [at_least[d] - at_least[d + 1] for d in range(depth)] + [at_least[depth]]
    n = 0
    for d, count in enumerate(exact):
        for j in range(count):
            side = 1 if (n + j) % 2 == 0 else -1
            est.on_trade(int(mid) + side * d, mid, start_ns + n * 1_000_000)
            n += 1
    return n


@pytest.mark.parametrize(("a", "k"), [(20.0, 0.25), (8.0, 0.15), (50.0, 0.2)])
def test_intensity_fit_recovers_a_and_k(a: float, k: float) -> None:
    est = IntensityEstimator(prior_A=1.0, prior_k=0.5, window_s=60.0, max_depth=20)
    start = 100 * S
    n = _feed_exponential(est, a, k, start)
    assert n >= est.min_trades
    fit_a, fit_k = est.fit(start + 30 * S)
    assert fit_a == pytest.approx(a, rel=0.10)
    assert fit_k == pytest.approx(k, rel=0.10)
    assert (est.A, est.k) == (fit_a, fit_k)


def test_intensity_keeps_priors_with_too_few_trades() -> None:
    est = IntensityEstimator(prior_A=3.0, prior_k=0.7, min_trades=20)
    for i in range(19):
        est.on_trade(1000 + i % 5, 1000.0, 100 * S + i)
    assert est.fit(101 * S) == (3.0, 0.7)
    est.on_trade(1004, 1000.0, 100 * S + 19)  # the 20th trade makes a fit possible
    a, k = est.fit(101 * S)
    assert (a, k) != (3.0, 0.7)
    assert k > 0


def test_intensity_keeps_priors_with_fewer_than_three_depths() -> None:
    est = IntensityEstimator(prior_A=3.0, prior_k=0.7, min_trades=5)
    for i in range(30):
        est.on_trade(1000 + i % 2, 1000.0, 100 * S + i)  # only δ = 0 and δ = 1
    assert est.fit(101 * S) == (3.0, 0.7)


def test_intensity_drops_trades_outside_the_window() -> None:
    est = IntensityEstimator(prior_A=3.0, prior_k=0.7, window_s=60.0)
    _feed_exponential(est, 20.0, 0.25, start_ns=100 * S)
    # the trades span ~1.2 s from t = 100 s; all are > 60 s old at 170 s: pruned, priors kept
    assert est.fit(100 * S + 70 * S) == (3.0, 0.7)


def test_intensity_keeps_last_good_fit_when_data_thins() -> None:
    est = IntensityEstimator(prior_A=3.0, prior_k=0.7, window_s=60.0)
    _feed_exponential(est, 20.0, 0.25, start_ns=100 * S)
    good = est.fit(130 * S)
    assert est.fit(300 * S) == good  # window now empty: last good values kept


def test_intensity_ignores_trades_without_a_mid() -> None:
    est = IntensityEstimator(prior_A=3.0, prior_k=0.7, min_trades=1)
    for i in range(50):
        est.on_trade(1000 + i % 10, 0.0, 100 * S + i)
    assert est.fit(101 * S) == (3.0, 0.7)
