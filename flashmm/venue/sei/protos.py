"""Sei dex protobuf messages, built from the ``.proto`` files in ``proto/``.

``python -m flashmm.venue.sei.protos`` compiles them with protoc (grpcio-tools) into a
descriptor set (``make`` runs it at install time); importing this module loads that set into
the default descriptor pool next to cosmpy's Cosmos SDK definitions (recompiling first if
the set is missing or older than a ``.proto``) and exposes the message classes.
"""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

# cosmpy registers the real cosmos/base/v1beta1/coin.proto that tx.proto imports
import cosmpy.protos.cosmos.base.v1beta1.coin_pb2  # noqa: F401
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

PROTO_ROOT = Path(__file__).parent / "proto"
DEPS_ROOT = PROTO_ROOT / "_deps"
PACKAGE = "seiprotocol.seichain.dex"
FILES = ("enums.proto", "order.proto", "tx.proto")
DESCRIPTOR_SET = PROTO_ROOT / "dex.binpb"

TYPE_URL_PLACE = f"/{PACKAGE}.MsgPlaceOrders"
TYPE_URL_CANCEL = f"/{PACKAGE}.MsgCancelOrders"

# enums (values from sei-chain's proto/dex/enums.proto)
LONG, SHORT = 0, 1
LIMIT, MARKET, FOKMARKET, FOKMARKETBYVALUE, STOPLOSS, STOPLIMIT = 0, 1, 3, 4, 5, 6
PLACED, FAILED_TO_PLACE, CANCELLED, FULFILLED = 0, 1, 2, 3
USER, LIQUIDATED = 0, 1

_DEC_SCALE = Decimal(10) ** 18


def compile_protos(out: Path = DESCRIPTOR_SET) -> Path:
    """Run protoc over the dex ``.proto`` files into a descriptor set at ``out``."""
    from grpc_tools import protoc

    sources = [str(PROTO_ROOT / "seiprotocol/seichain/dex" / f) for f in FILES]
    args = ["protoc", f"-I{PROTO_ROOT}", f"-I{DEPS_ROOT}", f"--descriptor_set_out={out}", *sources]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {sources}")
    return out


def _stale() -> bool:
    if not DESCRIPTOR_SET.exists():
        return True
    built = DESCRIPTOR_SET.stat().st_mtime
    return any(p.stat().st_mtime > built for p in PROTO_ROOT.rglob("*.proto"))


def _load() -> dict[str, type[Message]]:
    path = DESCRIPTOR_SET
    if _stale():
        try:
            path = compile_protos()
        except OSError:  # read-only install: build next to the user's cache instead
            cache = Path.home() / ".cache" / "flashmm"
            cache.mkdir(parents=True, exist_ok=True)
            path = compile_protos(cache / "dex.binpb")
    fds = descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())
    pool = descriptor_pool.Default()
    for fd in fds.file:
        if not fd.name.startswith("seiprotocol/"):
            continue  # the Cosmos SDK files come from cosmpy
        try:
            pool.FindFileByName(fd.name)
        except KeyError:
            pool.Add(fd)
    names = (
        "Order",
        "Cancellation",
        "MsgPlaceOrders",
        "MsgPlaceOrdersResponse",
        "MsgCancelOrders",
        "MsgCancelOrdersResponse",
    )
    return {
        n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{n}"))
        for n in names
    }


_CLASSES = _load()
Order: Any = _CLASSES["Order"]
Cancellation: Any = _CLASSES["Cancellation"]
MsgPlaceOrders: Any = _CLASSES["MsgPlaceOrders"]
MsgPlaceOrdersResponse: Any = _CLASSES["MsgPlaceOrdersResponse"]
MsgCancelOrders: Any = _CLASSES["MsgCancelOrders"]
MsgCancelOrdersResponse: Any = _CLASSES["MsgCancelOrdersResponse"]


def to_sdk_dec(value: Decimal | int | str) -> str:
    """A decimal as sdk.Dec wire text: value × 10^18 as an integer string (exact)."""
    d = Decimal(value) * _DEC_SCALE
    if d != d.to_integral_value():
        raise ValueError(f"{value} has more than 18 decimal places")
    return str(int(d))


def from_sdk_dec(text: str) -> Decimal:
    """Parse sdk.Dec wire text back into a decimal; rejects anything but an integer string."""
    if not text or not text.isascii() or not text.lstrip("-").isdigit():
        raise ValueError(f"not an sdk.Dec integer string: {text!r}")
    return Decimal(int(text)) / _DEC_SCALE


if __name__ == "__main__":
    print(compile_protos(Path(sys.argv[1]) if len(sys.argv) > 1 else DESCRIPTOR_SET))
