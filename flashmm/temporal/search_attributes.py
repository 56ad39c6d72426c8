"""The custom search attributes FlashMM's workflows upsert (``Market``, ``TradingState``), in one
place: their keys, a check that a namespace has them, and an idempotent registration.

Without them every ``TradingLifecycle`` workflow task fails with ``BadSearchAttributes`` and the
market cannot be changed, so deployments register them once per namespace
(``flashmm temporal setup``: the compose ``temporal-setup`` service, the Kubernetes
``flashmm-temporal-setup`` Job) and workers that run workflows refuse to start without them.
"""

from __future__ import annotations

from collections.abc import Mapping

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode

MARKET = SearchAttributeKey.for_keyword("Market")
TRADING_STATE = SearchAttributeKey.for_keyword("TradingState")
KEYS: tuple[SearchAttributeKey[str], ...] = (MARKET, TRADING_STATE)

# name -> the indexed type each key needs (every key here is a Keyword)
REQUIRED: Mapping[str, IndexedValueType.ValueType] = {
    k.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for k in KEYS
}


def _type_name(value: IndexedValueType.ValueType) -> str:
    return IndexedValueType.Name(value).removeprefix("INDEXED_VALUE_TYPE_").title()


# `temporal server start-dev --search-attribute NAME=TYPE` values (the demo's dev server)
DEV_SERVER_SPECS: tuple[str, ...] = tuple(f"{n}={_type_name(t)}" for n, t in REQUIRED.items())


def fix_commands(namespace: str) -> str:
    """The commands that register the attributes (either one does)."""
    names = " ".join(f"--name {n} --type {_type_name(t)}" for n, t in REQUIRED.items())
    return (
        f"flashmm temporal setup   (namespace {namespace!r} from control.namespace)\n"
        f"  or: temporal operator search-attribute create --namespace {namespace} {names}"
    )


class SearchAttributesMissingError(RuntimeError):
    """The namespace lacks search attributes the workflows upsert (or has them with another
    type); the message names them and the command that registers them."""

    def __init__(self, namespace: str, missing: Mapping[str, str]) -> None:
        self.namespace = namespace
        self.missing = dict(missing)
        listed = ", ".join(f"{n} ({why})" for n, why in self.missing.items())
        super().__init__(
            f"Temporal namespace {namespace!r} lacks the search attributes {listed}: every "
            "TradingLifecycle workflow task would fail with BadSearchAttributes. Register "
            f"them with:\n  {fix_commands(namespace)}"
        )


async def registered(client: Client) -> dict[str, IndexedValueType.ValueType]:
    """The namespace's custom search attributes: name -> indexed type."""
    resp = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    return dict(resp.custom_attributes)


async def missing(client: Client) -> dict[str, str]:
    """Required attributes the namespace lacks: name -> why ("missing", or "is Text, needs
    Keyword" when it exists with another type). Empty when everything is in place."""
    have = await registered(client)
    out: dict[str, str] = {}
    for name, kind in REQUIRED.items():
        if name not in have:
            out[name] = f"missing, needs {_type_name(kind)}"
        elif have[name] != kind:
            out[name] = f"is {_type_name(have[name])}, needs {_type_name(kind)}"
    return out


async def check(client: Client) -> None:
    """Raise :class:`SearchAttributesMissingError` unless every required attribute is registered
    with its type."""
    gone = await missing(client)
    if gone:
        raise SearchAttributesMissingError(client.namespace, gone)


async def ensure(client: Client) -> list[str]:
    """Register the required attributes the namespace lacks; return the names added (empty
    when all were there). Idempotent, and safe when two run at once. An attribute that exists
    with another type cannot be changed in place: that raises :class:`SearchAttributesMissingError`.
    """
    have = await registered(client)
    wrong = {
        n: f"is {_type_name(have[n])}, needs {_type_name(t)}"
        for n, t in REQUIRED.items()
        if n in have and have[n] != t
    }
    if wrong:
        raise SearchAttributesMissingError(client.namespace, wrong)
    add = {n: t for n, t in REQUIRED.items() if n not in have}
    if add:
        try:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(namespace=client.namespace, search_attributes=add)
            )
        except RPCError as e:  # another setup registered them first
            if e.status != RPCStatusCode.ALREADY_EXISTS:
                raise
    await check(client)
    return sorted(add)
