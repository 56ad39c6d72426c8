"""Orders and fills: client ids, lifecycle states, and fees with maker/taker liquidity."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, IntEnum


class Side(IntEnum):
    """Order side; the value is the sign of the position change when filled."""

    BUY = 1
    SELL = -1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


SIDES: dict[int, Side] = {1: Side.BUY, -1: Side.SELL}
"""``Side(x)`` for the hot path: a dict lookup instead of the enum's call machinery."""


class Liquidity(Enum):
    """Whether a fill added (maker) or removed (taker) liquidity."""

    MAKER = "maker"
    TAKER = "taker"


class OrderState(Enum):
    """Order lifecycle as the order manager sees it.

    PENDING_NEW → OPEN → (PARTIALLY_FILLED) → FILLED | PENDING_CANCEL → CANCELLED;
    PENDING_NEW → REJECTED.
    """

    PENDING_NEW = "pending_new"
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    PENDING_CANCEL = "pending_cancel"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"

    @property
    def is_live(self) -> bool:
        """Can still trade (in flight to the venue counts as live: risk must assume it)."""
        return self in _LIVE


_LIVE = frozenset(
    {
        OrderState.PENDING_NEW,
        OrderState.OPEN,
        OrderState.PARTIALLY_FILLED,
        OrderState.PENDING_CANCEL,
    }
)


@dataclass(slots=True)
class Order:
    """One of our orders. ``client_id`` is ours and idempotent; ``venue_id`` the venue's."""

    client_id: str
    side: Side
    price: int
    lots: int
    state: OrderState = OrderState.PENDING_NEW
    filled_lots: int = 0
    venue_id: int | None = None
    level: int = 0
    created_ns: int = 0
    cancel_ns: int = 0  # when the last cancel for it was sent
    reject_reason: str = ""

    @property
    def remaining(self) -> int:
        return self.lots - self.filled_lots


@dataclass(frozen=True, slots=True)
class Fill:
    """An execution of one of our orders. ``fill_id`` is unique per venue execution."""

    fill_id: str
    client_id: str
    side: Side
    price: int
    lots: int
    fee: float
    liquidity: Liquidity
    ts_ns: int
    extra: dict[str, str] = field(default_factory=dict)
