"""Price-level order book structures shared by the exchange, the localnet and the hot path."""

from flashmm.book.l2 import L2Book

__all__ = ["L2Book"]
