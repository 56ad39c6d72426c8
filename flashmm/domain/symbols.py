"""A market symbol (``"SEI/USDC"``) turned into names, each in one place.

The forms differ because each is already persisted somewhere; they must stay byte-identical
(running workflows, recorded histories, files on disk and resting orders use them):

* ``slug`` — ids: per-host task queues (``flashmm-host-sei-usdc``) and schedule ids
  (``key-rotation-sei-usdc``); lower case, every other character a ``-``;
* ``file_stem`` — file names (``SEI_USDC.control.json``, the ``SEI_USDC.jsonl`` journal);
  case kept, every other character a ``_``;
* ``order_prefix`` — the start of our client order ids (``seiusdc``); lower-case letters
  and digits only, at most 8.
"""

from __future__ import annotations


def slug(symbol: str) -> str:
    """``"SEI/USDC"`` → ``"sei-usdc"``."""
    return "".join(ch.lower() if ch.isalnum() else "-" for ch in symbol)


def file_stem(symbol: str) -> str:
    """``"SEI/USDC"`` → ``"SEI_USDC"``."""
    return "".join(ch if ch.isalnum() else "_" for ch in symbol)


def order_prefix(symbol: str) -> str:
    """``"SEI/USDC"`` → ``"seiusdc"``."""
    return "".join(ch for ch in symbol.lower() if ch.isalnum())[:8]
