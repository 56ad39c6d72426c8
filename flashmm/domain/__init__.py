"""Domain types: instruments, orders, fills and positions in integer ticks and lots."""

from flashmm.domain.instrument import Instrument
from flashmm.domain.orders import Fill, Liquidity, Order, OrderState, Side
from flashmm.domain.position import Position

__all__ = ["Fill", "Instrument", "Liquidity", "Order", "OrderState", "Position", "Side"]
