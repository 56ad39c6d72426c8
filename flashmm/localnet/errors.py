"""Cosmos SDK error codes (codespace ``sdk``) the localnet answers with, and dex codes."""

from __future__ import annotations

from dataclasses import dataclass

OK = 0
TX_DECODE = 2
INVALID_SEQUENCE = 3  # unused by the SDK's ante handler; kept for completeness
UNAUTHORIZED = 4
INSUFFICIENT_FUNDS = 5
UNKNOWN_REQUEST = 6
INVALID_ADDRESS = 7
INVALID_PUBKEY = 8
UNKNOWN_ADDRESS = 9
INVALID_REQUEST = 18
OUT_OF_GAS = 11
INSUFFICIENT_FEE = 13
TX_TOO_LARGE = 21
WRONG_SEQUENCE = 32
INVALID_CHAIN_ID = 41
MEMPOOL_FULL = 20


@dataclass(frozen=True, slots=True)
class TxError(Exception):
    """A transaction refused with a Cosmos-style code and log."""

    code: int
    log: str
    codespace: str = "sdk"

    def __str__(self) -> str:
        return f"code {self.code} ({self.codespace}): {self.log}"
