"""Closed-form market-making models in ticks and order-size units.

* Avellaneda & Stoikov (2008): reservation price r = s − q·γ·σ²·τ and total spread
  γσ²τ + (2/γ)·ln(1 + γ/k), with τ a rolling horizon instead of T − t.
* GLFT (Guéant, Lehalle & Fernandez-Tapia 2013), asymptotic closed form:
  δ_bid = c1 + (2q + 1)/2 · c2,  δ_ask = c1 − (2q − 1)/2 · c2 with
  c1 = (1/γ)·ln(1 + γ/k),  c2 = sqrt(σ²γ / (2kA) · (1 + γ/k)^(1 + k/γ)).

σ is ticks/√s, A orders/s, k per tick, q inventory in units of the quote size.
Both return (reservation offset from mid, half spread) in ticks, so
bid = mid + offset − half, ask = mid + offset + half.
"""

from __future__ import annotations

import math


def as_quote(q: float, sigma: float, gamma: float, k: float, tau: float) -> tuple[float, float]:
    """Avellaneda–Stoikov reservation offset and half spread."""
    var_tau = sigma * sigma * tau
    offset = -q * gamma * var_tau
    spread = gamma * var_tau + (2.0 / gamma) * math.log1p(gamma / k)
    return offset, spread / 2.0


def glft_quote(q: float, sigma: float, gamma: float, k: float, A: float) -> tuple[float, float]:
    """GLFT offset and half spread (asymptotic, no inventory bounds)."""
    c1 = math.log1p(gamma / k) / gamma
    c2 = math.sqrt(sigma * sigma * gamma / (2.0 * k * A) * (1.0 + gamma / k) ** (1.0 + k / gamma))
    # δ_bid = c1 + (q + 1/2)c2, δ_ask = c1 − (q − 1/2)c2  →  half = c1 + c2/2, offset = −q·c2
    return -q * c2, c1 + c2 / 2.0
