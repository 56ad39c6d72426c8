"""``flashmm data import``: one entry point over the per-format importers.

Each format's module has ``import_files(files, instrument, options) -> (events, manifest)``;
the events come back ordered by exchange time and ready for ``write_store``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from flashmm.marketdata.store import Events, Manifest, StoreError, StoreInstrument

FORMATS = {
    "binance-ws": "flashmm.marketdata.binance",
    "databento-mbo": "flashmm.marketdata.databento",
    "tardis": "flashmm.marketdata.tardis",
    "flashmm": "flashmm.marketdata.recorded",
}


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """``allow_gaps``: import across a sequence gap (marked with a ``GAP`` event and counted in
    the manifest) instead of refusing the recording."""

    allow_gaps: bool = False


class _Importer(Protocol):
    def import_files(
        self, files: list[Path], instrument: StoreInstrument, options: ImportOptions
    ) -> tuple[Events, Manifest]: ...


def import_files(
    fmt: str, files: list[Path], instrument: StoreInstrument, options: ImportOptions
) -> tuple[Events, Manifest]:
    """Read ``files`` (one continuous stream, in order) of format ``fmt``."""
    if fmt not in FORMATS:
        raise StoreError(f"unknown format {fmt!r}; known: {', '.join(sorted(FORMATS))}")
    if not files:
        raise StoreError("no input files")
    for f in files:
        if not f.is_file():
            raise StoreError(f"{f}: no such file")
    module: _Importer = importlib.import_module(FORMATS[fmt])
    return module.import_files(files, instrument, options)
