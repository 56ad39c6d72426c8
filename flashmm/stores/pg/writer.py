"""The hot path's durable background writer for PostgreSQL.

``submit`` never blocks and never raises: records queue in memory up to a bound and spill
to an append-only local journal (JSON lines) past it. A background task writes batches in
transactions; while PostgreSQL is down or slow it retries with backoff and the hot path
keeps trading. Once the database answers, the journal is replayed first (oldest records),
then memory. Every statement is idempotent (fills are unique on the venue's fill id), so a
record replayed after a crash or a retried batch is stored once. On ``close`` whatever is
still in memory goes to the journal, to be written by the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections import deque
from pathlib import Path

import asyncpg

from flashmm import telemetry
from flashmm.stores.pg.records import Record, args

log = logging.getLogger(__name__)


class DurableWriter:
    def __init__(
        self,
        dsn: str,
        journal: Path,
        memory_limit: int = 10_000,
        batch_size: int = 500,
        flush_interval_s: float = 0.1,
        retry_max_s: float = 2.0,
        name: str = "postgres",
    ) -> None:
        self.dsn = dsn
        self.journal = journal
        self.replaying = journal.with_suffix(journal.suffix + ".replaying")
        self.memory_limit = memory_limit
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.retry_max_s = retry_max_s
        self.name = name
        self._mem: deque[Record] = deque()
        self._journal_lines = _count_lines(journal) + _count_lines(self.replaying)
        self._wake = asyncio.Event()
        self._pool: asyncpg.Pool | None = None
        self._task: asyncio.Task[None] | None = None
        self.written = 0
        self.spilled = 0
        self.failures = 0
        self.rejected = 0
        self.up = False
        telemetry.WRITER_BACKLOG.labels(name).set_function(lambda: self.backlog)

    @property
    def backlog(self) -> int:
        return len(self._mem) + self._journal_lines

    # --- the hot path's side ------------------------------------------------------------
    def submit(self, rec: Record) -> None:
        """Queue one record (O(1); a file append past the memory bound)."""
        if len(self._mem) < self.memory_limit:
            self._mem.append(rec)
        else:
            self._spill([rec])
        self._wake.set()

    def _spill(self, recs: list[Record]) -> None:
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in recs)
        fd = os.open(self.journal, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            end = os.lseek(fd, 0, os.SEEK_END)
            if end and os.pread(fd, 1, end - 1) != b"\n":
                data = "\n" + data  # a torn last line (crash mid-write) stays on its own
            os.write(fd, data.encode())
        finally:
            os.close(fd)
        self._journal_lines += len(recs)
        self.spilled += len(recs)

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"{self.name}-writer")

    async def close(self, timeout_s: float = 5.0) -> None:
        """Flush what can be flushed in ``timeout_s``, journal the rest, stop."""
        await self.flush(timeout_s)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._mem:
            self._spill(list(self._mem))
            self._mem.clear()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until nothing is waiting (True) or the timeout passes (False)."""
        end = time.monotonic() + timeout_s
        while self.backlog and time.monotonic() < end:
            self._wake.set()
            await asyncio.sleep(0.02)
        return self.backlog == 0

    # --- the writer task ----------------------------------------------------------------
    async def _run(self) -> None:
        delay = 0.05
        while True:
            if not self.backlog:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.flush_interval_s)
                continue
            before = (self.backlog, self.written)
            try:
                await self._drain()
                delay = 0.05
                self._set_up(True)
                if (self.backlog, self.written) == before:  # nothing moved: never spin
                    self._journal_lines = _count_lines(self.journal) + _count_lines(self.replaying)
                    await asyncio.sleep(self.flush_interval_s)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as e:
                self.failures += 1
                telemetry.ERRORS.labels(self.name, type(e).__name__).inc()
                if self.up or self.failures == 1:
                    log.warning(
                        "%s writer: database unavailable (%s); %d records waiting",
                        self.name,
                        e,
                        self.backlog,
                    )
                self._set_up(False)
                await self._drop_pool()
                await asyncio.sleep(delay)
                delay = min(self.retry_max_s, delay * 2)

    def _set_up(self, up: bool) -> None:
        self.up = up
        telemetry.STORE_UP.labels(self.name).set(1 if up else 0)

    async def _drop_pool(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.terminate()

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(
                self.dsn, min_size=1, max_size=2, timeout=2.0, command_timeout=5.0
            )
        return self._pool

    async def _drain(self) -> None:
        pool = await self._get_pool()
        # journaled records are older than anything in memory: replay them first
        if self.journal.exists() and not self.replaying.exists():
            os.replace(self.journal, self.replaying)
        if self.replaying.exists():
            lines = self.replaying.read_text().splitlines()
            recs = [_parse(line) for line in lines if line.strip()]
            for i in range(0, len(recs), self.batch_size):
                await self._write(pool, [r for r in recs[i : i + self.batch_size] if r])
            self.replaying.unlink()
            self._journal_lines = _count_lines(self.journal)
        while self._mem:
            batch = [self._mem[i] for i in range(min(self.batch_size, len(self._mem)))]
            await self._write(pool, batch)
            for _ in batch:
                self._mem.popleft()

    async def _write_rows(
        self, pool: asyncpg.Pool, groups: dict[str, list[tuple[object, ...]]], sqls: dict[str, str]
    ) -> None:
        async with pool.acquire() as conn:
            for kind, rows in groups.items():
                for row in rows:
                    try:
                        await conn.execute(sqls[kind], *row)
                    except (asyncpg.PostgresError, asyncpg.DataError) as e:
                        if not _is_data_error(e):
                            raise
                        telemetry.ERRORS.labels(self.name, "rejected_record").inc()
                        self.rejected += 1
                        log.error(
                            "%s writer: database rejected a %s record (%s); dropped",
                            self.name,
                            kind,
                            e,
                        )

    async def _write(self, pool: asyncpg.Pool, batch: list[Record]) -> None:
        groups: dict[str, list[tuple[object, ...]]] = {}
        sqls: dict[str, str] = {}
        for rec in batch:
            try:
                sql, a = args(rec)
            except (KeyError, ValueError, TypeError):
                telemetry.ERRORS.labels(self.name, "malformed_record").inc()
                log.error("%s writer: dropping malformed record %r", self.name, rec)
                continue
            groups.setdefault(rec["kind"], []).append(a)
            sqls[rec["kind"]] = sql
        t0 = time.perf_counter()
        try:
            async with pool.acquire() as conn, conn.transaction():
                for kind, rows in groups.items():
                    await conn.executemany(sqls[kind], rows)
        except (
            asyncpg.DataError,
            asyncpg.IntegrityConstraintViolationError,
            asyncpg.exceptions.DataError,
        ):
            # a record the database refuses must not block the ones behind it: row by row,
            # dropping (and counting) only the rejected ones
            await self._write_rows(pool, groups, sqls)
        telemetry.OPERATION_LATENCY.labels(f"{self.name}_write").observe(time.perf_counter() - t0)
        self.written += len(batch)


def _is_data_error(e: BaseException) -> bool:
    state = getattr(e, "sqlstate", "") or ""
    return isinstance(e, asyncpg.DataError) or state[:2] in ("22", "23")


def _parse(line: str) -> Record | None:
    try:
        rec = json.loads(line)
    except ValueError:
        log.error("journal: skipping a line that is not JSON: %r", line[:200])
        return None
    return rec if isinstance(rec, dict) else None


def _count_lines(p: Path) -> int:
    if not p.exists():
        return 0
    with p.open("rb") as f:
        return sum(1 for _ in f)
