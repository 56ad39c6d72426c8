"""Redis: the keys of one logical database exported with DUMP and PTTL into a file of our
own (BGSAVE would write the whole server into the server's directory), restored with
RESTORE ... REPLACE.

The file is JSON lines: a header, one ``{"k", "t", "v"}`` line per key (key and DUMP
payload base64, ``t`` the remaining TTL in ms or -1) and a trailer with the count, so a cut
file is noticed. SCAN is not a point-in-time snapshot: a key written during the export may
or may not be in it. A DUMP payload restores on the same or a newer Redis version.
A key restored gets the TTL it had left when it was exported.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import redis.asyncio as aioredis

from flashmm.backup.store import BackupCorruptError

FORMAT = "flashmm-redis/1"


@dataclass
class Entry:
    key: bytes
    pttl: int  # -1: no expiry
    payload: bytes


@dataclass
class Readback:
    expected: int = 0
    present: int = 0
    ttl_ok: int = 0
    dump_identical: int = 0  # byte-identical DUMP (informational, see read_back)
    expired: list[str] = field(default_factory=list)  # had a TTL that ran out since restore
    missing: list[str] = field(default_factory=list)
    ttl_wrong: list[str] = field(default_factory=list)


def _client(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=10)


async def close(r: aioredis.Redis) -> None:
    """Close the client and empty its pool's lists now: a pool garbage-collected with
    connections listed imports redis modules in ``__del__``, which, when the collection
    happens on a Temporal workflow thread, re-imports redis inside the workflow sandbox."""
    await r.aclose()
    r.connection_pool.reset()  # type: ignore[no-untyped-call]


def _show(key: bytes) -> str:
    return key.decode(errors="backslashreplace")[:200]


async def export(url: str, out: Path, batch: int = 500) -> dict[str, int]:
    """Write every key of the URL's database to ``out``; returns the counts."""
    r = _client(url)
    keys = with_ttl = 0
    try:
        db = int(r.connection_pool.connection_kwargs.get("db", 0))
        with out.open("w") as f:
            header = {"format": FORMAT, "db": db, "taken_at_ms": int(time.time() * 1000)}
            f.write(json.dumps(header) + "\n")
            cursor = 0
            while True:
                cursor, names = await r.scan(cursor=cursor, count=batch)
                if names:
                    pipe = r.pipeline(transaction=False)
                    for k in names:
                        pipe.dump(k)
                        pipe.pttl(k)
                    answers = await pipe.execute()
                    for i, name in enumerate(names):
                        k = name if isinstance(name, bytes) else str(name).encode()
                        payload, pttl = answers[2 * i], int(answers[2 * i + 1])
                        if payload is None or pttl == -2:  # gone between SCAN and DUMP
                            continue
                        line = {
                            "k": base64.b64encode(k).decode(),
                            "t": pttl,
                            "v": base64.b64encode(payload).decode(),
                        }
                        f.write(json.dumps(line) + "\n")
                        keys += 1
                        with_ttl += pttl > 0
                if cursor == 0:
                    break
            f.write(json.dumps({"end": True, "keys": keys}) + "\n")
    finally:
        await close(r)
    return {"keys": keys, "with_ttl": with_ttl, "db": db}


def read(f: IO[bytes]) -> Iterator[Entry]:
    """The entries of an export; BackupCorruptError if the file is not a whole one."""
    header: dict[str, Any] | None = None
    count = 0
    for raw in f:
        try:
            doc = json.loads(raw)
        except ValueError:
            raise BackupCorruptError("redis export has a line that is not JSON") from None
        if header is None:
            if doc.get("format") != FORMAT:
                raise BackupCorruptError(f"not a redis export of format {FORMAT}")
            header = doc
            continue
        if doc.get("end"):
            if int(doc.get("keys", -1)) != count:
                raise BackupCorruptError(f"redis export holds {count} keys, its trailer says {doc}")
            return
        try:
            yield Entry(base64.b64decode(doc["k"]), int(doc["t"]), base64.b64decode(doc["v"]))
        except (KeyError, ValueError) as e:
            raise BackupCorruptError(f"redis export has a bad entry: {e}") from None
        count += 1
    raise BackupCorruptError("redis export is cut short (no trailer)")


async def restore(url: str, f: IO[bytes], batch: int = 500) -> dict[str, int]:
    """RESTORE ... REPLACE every key (a retry writes the same again)."""
    r = _client(url)
    n = 0
    try:
        pipe = r.pipeline(transaction=False)
        for e in read(f):
            pipe.restore(e.key, max(e.pttl, 0), e.payload, replace=True)
            n += 1
            if n % batch == 0:
                await pipe.execute()
                pipe = r.pipeline(transaction=False)
        await pipe.execute()
    finally:
        await close(r)
    return {"keys": n}


async def read_back(url: str, f: IO[bytes], elapsed_ms: int, batch: int = 500) -> Readback:
    """Compare the database with an export: every key present, its TTL set when it had one
    (and no longer than it was), none when it had none. Byte-identical DUMPs are counted but
    not required: a set or hash in hashtable encoding serialises its members in table order,
    which a RESTORE does not keep. A key whose TTL was shorter than ``elapsed_ms`` (time since
    the restore began) may have expired meanwhile and is reported apart."""
    r = _client(url)
    out = Readback()

    async def check(entries: list[Entry]) -> None:
        pipe = r.pipeline(transaction=False)
        for e in entries:
            pipe.pttl(e.key)
            pipe.dump(e.key)
        answers = await pipe.execute()
        for i, e in enumerate(entries):
            pttl, payload = int(answers[2 * i]), answers[2 * i + 1]
            if pttl == -2:
                if 0 < e.pttl <= elapsed_ms:
                    out.expired.append(_show(e.key))
                else:
                    out.missing.append(_show(e.key))
                continue
            out.present += 1
            if (e.pttl > 0 and 0 < pttl <= e.pttl) or (e.pttl <= 0 and pttl == -1):
                out.ttl_ok += 1
            else:
                out.ttl_wrong.append(f"{_show(e.key)}: ttl {pttl} ms, backup {e.pttl} ms")
            out.dump_identical += payload == e.payload

    try:
        chunk: list[Entry] = []
        for e in read(f):
            out.expected += 1
            chunk.append(e)
            if len(chunk) >= batch:
                await check(chunk)
                chunk = []
        if chunk:
            await check(chunk)
    finally:
        await close(r)
    return out
