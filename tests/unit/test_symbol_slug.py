"""A market symbol becomes a name in one place (``flashmm.domain.symbols``), and every user of
a name takes it from there: the per-host task queue, the schedule (workflow) ids, the
instrument, the hot path's journal and control-state files. The names are persisted (running
workflows, recorded histories, files on disk), so each is pinned to what the code produced
before it was unified, character for character."""

from __future__ import annotations

from pathlib import Path

import pytest

from flashmm.config import load_settings
from flashmm.config.settings import MarketSettings
from flashmm.domain.symbols import file_stem, order_prefix, slug
from hotpath.sinks import open_sinks
from workers.schedules import schedules
from workflows.types import host_queue

SYMBOLS = ["SEI/USDC", "ATOM/USDC", "wBTC/USDC.e", "ÉTH/ÜSD", "A_B/C-D", "LONGNAME1/USDC"]


# the expressions each call site used before, copied verbatim
def _old_id(s: str) -> str:  # workflows/types.py, workers/schedules.py
    return "".join(ch.lower() if ch.isalnum() else "-" for ch in s)


def _old_file(s: str) -> str:  # hotpath/main.py (control state), hotpath/sinks.py
    return "".join(ch if ch.isalnum() else "_" for ch in s)


def _old_prefix(s: str) -> str:  # hotpath/main.py (client order ids)
    return "".join(ch for ch in s.lower() if ch.isalnum())[:8]


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_names_are_byte_identical_to_before(symbol: str) -> None:
    assert slug(symbol) == _old_id(symbol)
    assert file_stem(symbol) == _old_file(symbol)
    assert order_prefix(symbol) == _old_prefix(symbol)


def test_the_names_of_sei_usdc() -> None:
    assert slug("SEI/USDC") == "sei-usdc"
    assert host_queue("SEI/USDC") == "flashmm-host-sei-usdc"
    assert file_stem("SEI/USDC") == "SEI_USDC"
    assert order_prefix("SEI/USDC") == "seiusdc"


@pytest.mark.parametrize("symbol", ["SEI/USDC", "ATOM/USDC", "wBTC/USDC.e"])
def test_one_slug_for_the_task_queue_the_schedule_ids_and_the_instrument(symbol: str) -> None:
    market = MarketSettings(symbol=symbol)
    assert market.instrument().slug == slug(symbol)
    assert host_queue(symbol) == f"flashmm-host-{slug(symbol)}"
    base = load_settings(None)
    settings = base.model_copy(update={"markets": [market]})
    ids = set(schedules(settings))
    assert {f"key-rotation-{slug(symbol)}", f"retrain-{slug(symbol)}"} <= ids


async def test_the_journal_file_is_named_by_the_file_stem(tmp_path: Path) -> None:
    base = load_settings(None)
    stores = base.stores.model_copy(
        update={
            "enabled": True,
            "migrate_on_start": False,
            "postgres_dsn": "postgresql://nobody@127.0.0.1:1/none",  # refused at once
            "journal_dir": str(tmp_path),
        }
    )
    sinks, halted = await open_sinks(base.model_copy(update={"stores": stores}), "SEI/USDC")
    try:
        assert halted is None and sinks.pg is not None
        assert sinks.pg.journal == tmp_path / f"{file_stem('SEI/USDC')}.jsonl"
        assert sinks.pg.journal.name == "SEI_USDC.jsonl"
    finally:
        await sinks.close()
