"""The normalised event store: one columnar, memory-mappable array of market events plus a
manifest, what every importer writes and every replay reads.

A store is a folder holding ``events.npy`` (a numpy structured array, ``EVENT_DTYPE``, loaded
with ``mmap_mode="r"``) and ``manifest.json`` (instrument, source files with their sha256,
time range, counts per kind, sequence gaps and warnings). Prices are integer ticks and
quantities integer lots of the store's instrument; timestamps are ns.

Event kinds (``kind`` column):

* ``DEPTH`` — the absolute size of one level (``qty == 0`` removes it); ``side`` +1 bid, −1 ask.
* ``SNAPSHOT`` — a level of a full snapshot; applied like ``DEPTH``.
* ``CLEAR`` — empty one side (``side`` ±1) or both (``side == 0``) before a snapshot.
* ``TRADE`` — a print; ``side`` is the aggressor (+1 buyer, −1 seller).
* ``BBO`` — the venue's own best bid (``side`` +1) or ask (−1) feed, for checks only.
* ``GAP`` — the source lost messages here: the book is unreliable until the next ``CLEAR``.

Rows are ordered by exchange time; ties keep the source's order.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

FORMAT_VERSION = 1
EVENTS_FILE = "events.npy"
MANIFEST_FILE = "manifest.json"

DEPTH, SNAPSHOT, CLEAR, TRADE, BBO, GAP = 1, 2, 3, 4, 5, 6
KIND_NAMES = {
    DEPTH: "depth",
    SNAPSHOT: "snapshot",
    CLEAR: "clear",
    TRADE: "trade",
    BBO: "bbo",
    GAP: "gap",
}

EVENT_DTYPE = np.dtype(
    [
        ("exch_ts", "<i8"),
        ("local_ts", "<i8"),
        ("kind", "u1"),
        ("side", "i1"),
        ("price", "<i8"),
        ("qty", "<i8"),
    ]
)

Events = npt.NDArray[np.void]


class StoreError(ValueError):
    """A store or a recording that cannot be used as it is; the message says why."""


@dataclass(frozen=True, slots=True)
class StoreInstrument:
    """What the integers mean: price = ticks × tick, size = lots × lot."""

    symbol: str
    tick: str
    lot: str

    def __post_init__(self) -> None:
        for name in ("tick", "lot"):
            v = getattr(self, name)
            try:
                ok = Decimal(v) > 0
            except ArithmeticError:
                ok = False
            if not ok:
                raise StoreError(f"{name} must be a positive decimal, got {v!r}")
        if not self.symbol.strip():
            raise StoreError("symbol must not be empty")


@dataclass(frozen=True, slots=True)
class SourceFile:
    name: str
    sha256: str
    bytes: int
    lines: int = 0


@dataclass(slots=True)
class Manifest:
    """Everything needed to trust (or distrust) a store without reading its events."""

    source_format: str
    instrument: StoreInstrument
    files: list[SourceFile]
    first_exch_ns: int = 0
    last_exch_ns: int = 0
    events: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    sequence_gaps: int = 0
    gap_examples: list[str] = field(default_factory=list)
    warnings: dict[str, int] = field(default_factory=dict)
    checks: dict[str, float] = field(default_factory=dict)
    events_sha256: str = ""
    format_version: int = FORMAT_VERSION
    created_at: str = ""

    def warn(self, name: str, n: int = 1) -> None:
        """Count a problem the import survived (it is reported, never hidden)."""
        self.warnings[name] = self.warnings.get(name, 0) + n

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["time_range"] = {
            "first_exch_ns": self.first_exch_ns,
            "last_exch_ns": self.last_exch_ns,
            "first_utc": _iso(self.first_exch_ns),
            "last_utc": _iso(self.last_exch_ns),
            "seconds": (self.last_exch_ns - self.first_exch_ns) / 1e9,
        }
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Manifest:
        try:
            version = int(d.get("format_version", 0))
            if version != FORMAT_VERSION:
                raise StoreError(f"store format {version}, this build reads {FORMAT_VERSION}")
            return cls(
                source_format=str(d["source_format"]),
                instrument=StoreInstrument(**d["instrument"]),
                files=[SourceFile(**f) for f in d["files"]],
                first_exch_ns=int(d["first_exch_ns"]),
                last_exch_ns=int(d["last_exch_ns"]),
                events=int(d["events"]),
                counts={str(k): int(v) for k, v in d["counts"].items()},
                sequence_gaps=int(d["sequence_gaps"]),
                gap_examples=[str(x) for x in d["gap_examples"]],
                warnings={str(k): int(v) for k, v in d["warnings"].items()},
                checks={str(k): float(v) for k, v in d["checks"].items()},
                events_sha256=str(d["events_sha256"]),
                format_version=version,
                created_at=str(d.get("created_at", "")),
            )
        except (KeyError, TypeError) as e:
            raise StoreError(f"manifest is missing or has a bad field: {e}") from e


def _iso(ns: int) -> str:
    if not ns:
        return ""
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="milliseconds")


def file_source(path: Path, lines: int = 0) -> SourceFile:
    """Name, size and sha256 of a source file (the manifest's proof of what was read)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return SourceFile(path.name, h.hexdigest(), path.stat().st_size, lines)


def make_events(columns: dict[str, list[int]] | None = None, n: int = 0) -> Events:
    """An event array from column lists (all the same length), or ``n`` zeroed rows."""
    if columns is None:
        return np.zeros(n, EVENT_DTYPE)
    sizes = {len(v) for v in columns.values()}
    if len(sizes) > 1:
        raise StoreError(f"columns differ in length: {sorted(sizes)}")
    size = sizes.pop() if sizes else 0
    out = np.zeros(size, EVENT_DTYPE)
    for name, values in columns.items():
        out[name] = values
    return out


def order_by_exchange_time(events: Events) -> Events:
    """Stable sort by exchange time: ties keep the source's order."""
    idx = np.argsort(events["exch_ts"], kind="stable")
    out: Events = events[idx]
    return out


def write_store(out_dir: Path, events: Events, manifest: Manifest) -> Path:
    """Write ``events.npy`` and ``manifest.json`` (counts, range and hash filled in here).

    Written to temporary names and renamed, so a crash never leaves a store that looks whole.
    """
    if events.dtype != EVENT_DTYPE:
        raise StoreError(f"events have dtype {events.dtype}, expected {EVENT_DTYPE}")
    ts = events["exch_ts"]
    if len(ts) > 1 and bool(np.any(ts[1:] < ts[:-1])):
        raise StoreError("events are not ordered by exchange time")
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest.events = len(events)
    manifest.first_exch_ns = int(ts[0]) if len(ts) else 0
    manifest.last_exch_ns = int(ts[-1]) if len(ts) else 0
    kinds, n = np.unique(events["kind"], return_counts=True)
    manifest.counts = {
        KIND_NAMES.get(int(k), str(int(k))): int(c) for k, c in zip(kinds, n, strict=True)
    }
    manifest.events_sha256 = hashlib.sha256(events.tobytes()).hexdigest()
    manifest.created_at = datetime.now(UTC).isoformat(timespec="seconds")
    ev_tmp = out_dir / (EVENTS_FILE + ".tmp")
    with ev_tmp.open("wb") as f:
        np.save(f, events, allow_pickle=False)
    mf_tmp = out_dir / (MANIFEST_FILE + ".tmp")
    mf_tmp.write_text(json.dumps(manifest.to_json(), indent=2, sort_keys=True) + "\n")
    os.replace(ev_tmp, out_dir / EVENTS_FILE)
    os.replace(mf_tmp, out_dir / MANIFEST_FILE)
    return out_dir


@dataclass(frozen=True, slots=True)
class EventStore:
    """An opened store: the events memory-mapped read-only, and its manifest."""

    path: Path
    events: Events
    manifest: Manifest

    @property
    def instrument(self) -> StoreInstrument:
        return self.manifest.instrument

    @classmethod
    def open(cls, path: Path | str, verify: bool = False) -> EventStore:
        """Open a store folder; ``verify`` also checks the events against the manifest hash."""
        p = Path(path)
        mf = p / MANIFEST_FILE
        ev = p / EVENTS_FILE
        if not mf.is_file() or not ev.is_file():
            raise StoreError(f"{p} is not an event store (needs {MANIFEST_FILE} and {EVENTS_FILE})")
        try:
            manifest = Manifest.from_json(json.loads(mf.read_text()))
        except json.JSONDecodeError as e:
            raise StoreError(f"{mf}: not JSON ({e})") from e
        try:
            events = np.load(ev, mmap_mode="r", allow_pickle=False)
        except ValueError as e:
            raise StoreError(f"{ev}: unreadable ({e})") from e
        if events.dtype != EVENT_DTYPE:
            raise StoreError(f"{ev}: dtype {events.dtype}, expected {EVENT_DTYPE}")
        if len(events) != manifest.events:
            raise StoreError(
                f"{ev}: {len(events)} events but the manifest says {manifest.events} (truncated?)"
            )
        if verify and hashlib.sha256(events.tobytes()).hexdigest() != manifest.events_sha256:
            raise StoreError(f"{ev}: contents differ from the manifest's sha256")
        return cls(p, events, manifest)
