"""``flashmm data import`` and ``flashmm data info``: recordings in, one event store out.

Only argparse is imported at module level, so ``cli.main`` can add the arguments
without loading numpy."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

FORMATS = ("binance-ws", "databento-mbo", "tardis", "flashmm")


def add_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    d = sub.add_parser("data", help="import recorded market data into an event store")
    dsub = d.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    im = dsub.add_parser(
        "import",
        help="turn recordings into a normalised, memory-mappable event store",
        description="Read FILE... (one continuous stream, in time order) and write "
        "events.npy + manifest.json to --out. Nothing is rounded: a price off the tick grid, "
        "a sequence gap or a crossed snapshot is an error.",
    )
    im.add_argument("--format", required=True, choices=FORMATS)
    im.add_argument("--symbol", required=True, help="instrument as the recording names it")
    im.add_argument("--tick", required=True, help="price increment, e.g. 0.1")
    im.add_argument("--lot", required=True, help="size increment, e.g. 0.001")
    im.add_argument("--out", required=True, metavar="DIR", help="store folder to write")
    im.add_argument(
        "--allow-gaps",
        action="store_true",
        help="keep going past a sequence gap (marked in the store and counted in the manifest)",
    )
    im.add_argument("files", nargs="+", metavar="FILE")
    info = dsub.add_parser("info", help="print a store's manifest")
    info.add_argument("store", metavar="DIR")
    info.add_argument("--verify", action="store_true", help="check the events' sha256")


def run(args: argparse.Namespace) -> int:
    from flashmm.marketdata.importers import ImportOptions, import_files
    from flashmm.marketdata.store import EventStore, StoreError, StoreInstrument, write_store

    try:
        if args.data_command == "info":
            store = EventStore.open(args.store, verify=args.verify)
            print(json.dumps(store.manifest.to_json(), indent=2, sort_keys=True))
            return 0
        inst = StoreInstrument(args.symbol, args.tick, args.lot)
        t0 = time.perf_counter()
        events, manifest = import_files(
            args.format, [Path(f) for f in args.files], inst, ImportOptions(args.allow_gaps)
        )
        out = write_store(Path(args.out), events, manifest)
    except StoreError as e:
        print(f"flashmm data: {e}", file=sys.stderr)
        return 2
    summary = {
        "store": str(out),
        "events": manifest.events,
        "counts": manifest.counts,
        "seconds_of_data": (manifest.last_exch_ns - manifest.first_exch_ns) / 1e9,
        "sequence_gaps": manifest.sequence_gaps,
        "warnings": manifest.warnings,
        "checks": manifest.checks,
        "import_s": round(time.perf_counter() - t0, 3),
    }
    print(json.dumps(summary, sort_keys=True))
    return 0
