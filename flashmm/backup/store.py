"""Backup stores: a local directory (the default) or an S3-compatible bucket.

A backup is a folder ``<backup id>/`` of files; it is complete once its ``manifest.json`` is
there, written last. Every file is written whole or not at all (a temporary name, then a
rename; an S3 object appears whole), so a retried step simply writes its file again.
Store methods are blocking: call them from a thread in async code.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import re
import shutil
import tempfile
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any

from flashmm.backup.config import BackupSettings

MANIFEST = "manifest.json"
CHUNK = 1 << 20
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class BackupError(Exception):
    """Base of the backup errors; ``kind`` names it for a Temporal ApplicationError type."""

    kind = "BackupError"
    retryable = True


class BackupNotFoundError(BackupError):
    kind = "BackupNotFound"
    retryable = False


class BackupCorruptError(BackupError):
    """A file is missing, or its size or checksum differs from the manifest."""

    kind = "BackupCorrupt"
    retryable = False


class InvalidBackupIdError(BackupError):
    kind = "InvalidBackupId"
    retryable = False


class StoreUnavailableError(BackupError):
    """The configured store cannot be used here (e.g. S3 without boto3)."""

    kind = "StoreUnavailable"
    retryable = False


def check_id(backup_id: str) -> str:
    if not _ID.match(backup_id):
        raise InvalidBackupIdError(
            f"backup id must be 1-128 of A-Z a-z 0-9 . _ - (not starting with . _ -): {backup_id!r}"
        )
    return backup_id


def check_name(name: str) -> str:
    """A file name inside a backup: relative, forward slashes, no ``..`` (a manifest read
    back from a store must not be able to point a restore outside its target)."""
    p = PurePosixPath(name)
    if not name or p.is_absolute() or ".." in p.parts or "\\" in name or str(p) != name:
        raise BackupCorruptError(f"bad file name in backup: {name!r}")
    return name


def sha256_stream(f: IO[bytes]) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    while chunk := f.read(CHUNK):
        h.update(chunk)
        size += len(chunk)
    return h.hexdigest(), size


def sha256_file(path: Path) -> tuple[str, int]:
    with path.open("rb") as f:
        return sha256_stream(f)


class BackupStore(ABC):
    """Where backups are kept. Names are ``/``-separated paths inside one backup."""

    @abstractmethod
    def location(self, backup_id: str) -> str:
        """A URL naming the backup (for records and messages)."""

    @abstractmethod
    def put(self, backup_id: str, name: str, src: Path, move: bool = False) -> None:
        """Store a copy of ``src`` as ``name`` (replacing it); with ``move`` the file may be
        moved instead (a staged file, never a live one)."""

    @abstractmethod
    def put_bytes(self, backup_id: str, name: str, data: bytes) -> None: ...

    @abstractmethod
    def get(self, backup_id: str, name: str, dest: Path) -> None:
        """Copy ``name`` to the local file ``dest``."""

    @abstractmethod
    @contextlib.contextmanager
    def open(self, backup_id: str, name: str) -> Iterator[IO[bytes]]:
        """Read ``name`` as a stream; BackupCorruptError if it is not there."""

    @abstractmethod
    def exists(self, backup_id: str, name: str) -> bool: ...

    @abstractmethod
    def backup_ids(self) -> list[str]:
        """Every backup folder, complete or not."""

    @abstractmethod
    def modified(self, backup_id: str) -> datetime:
        """When anything in the backup was last written."""

    @abstractmethod
    def delete(self, backup_id: str) -> None:
        """Remove the backup and everything in it (no error when it is gone)."""

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """A private local directory for building files before ``put``; removed after."""
        d = Path(tempfile.mkdtemp(prefix="flashmm-backup-"))
        try:
            yield d
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def read_bytes(self, backup_id: str, name: str) -> bytes:
        with self.open(backup_id, name) as f:
            return f.read()

    def checksum(self, backup_id: str, name: str) -> tuple[str, int]:
        """The sha256 and size of the stored file, read back from the store."""
        with self.open(backup_id, name) as f:
            return sha256_stream(f)

    def complete(self, backup_id: str) -> bool:
        return self.exists(backup_id, MANIFEST)


class LocalStore(BackupStore):
    """Backups as directories under ``root``; files fsynced before they are renamed in."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    def _path(self, backup_id: str, name: str = "") -> Path:
        base = self.root / check_id(backup_id)
        return base / check_name(name) if name else base

    def location(self, backup_id: str) -> str:
        return self._path(backup_id).as_uri()

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        # on the store's own file system, so that ``put`` is a rename
        (self.root / ".staging").mkdir(parents=True, exist_ok=True)
        d = Path(tempfile.mkdtemp(prefix="s-", dir=self.root / ".staging"))
        try:
            yield d
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def _install(self, dest: Path, write: Any) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            write(tmp)
            with tmp.open("rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    def put(self, backup_id: str, name: str, src: Path, move: bool = False) -> None:
        def write(tmp: Path) -> None:
            if move:
                try:
                    os.replace(src, tmp)
                    return
                except OSError:  # another file system
                    pass
            shutil.copyfile(src, tmp)

        self._install(self._path(backup_id, name), write)

    def put_bytes(self, backup_id: str, name: str, data: bytes) -> None:
        self._install(self._path(backup_id, name), lambda tmp: tmp.write_bytes(data))

    def get(self, backup_id: str, name: str, dest: Path) -> None:
        src = self._path(backup_id, name)
        if not src.is_file():
            raise BackupCorruptError(f"{self.location(backup_id)}: {name} is missing")
        shutil.copyfile(src, dest)

    @contextlib.contextmanager
    def open(self, backup_id: str, name: str) -> Iterator[IO[bytes]]:
        try:
            f = self._path(backup_id, name).open("rb")
        except FileNotFoundError:
            raise BackupCorruptError(f"{self.location(backup_id)}: {name} is missing") from None
        with f:
            yield f

    def exists(self, backup_id: str, name: str) -> bool:
        return self._path(backup_id, name).is_file()

    def backup_ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _ID.match(p.name))

    def modified(self, backup_id: str) -> datetime:
        base = self._path(backup_id)
        times = [base.stat().st_mtime] + [p.stat().st_mtime for p in base.rglob("*")]
        return datetime.fromtimestamp(max(times), UTC)

    def delete(self, backup_id: str) -> None:
        base = self._path(backup_id)
        if not base.exists():
            return
        # rename first: a half-deleted folder must not look like a backup
        doomed = self.root / ".staging" / f"deleting-{backup_id}-{uuid.uuid4().hex[:8]}"
        doomed.parent.mkdir(parents=True, exist_ok=True)
        os.replace(base, doomed)
        shutil.rmtree(doomed, ignore_errors=True)


class S3Store(BackupStore):
    """Backups as objects ``<prefix>/<backup id>/<name>`` in an S3-compatible bucket.

    Needs boto3 (not a dependency of FlashMM: install it where this store is used).
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
    ) -> None:
        try:
            boto3 = importlib.import_module("boto3")
        except ImportError:
            raise StoreUnavailableError(
                "the S3 backup store needs boto3, which is not installed here "
                "(pip install boto3), or set backup.store to local"
            ) from None
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.s3: Any = boto3.client("s3", endpoint_url=endpoint_url, region_name=region)

    def _key(self, backup_id: str, name: str = "") -> str:
        parts = [self.prefix, check_id(backup_id)] + ([check_name(name)] if name else [])
        return "/".join(p for p in parts if p)

    def location(self, backup_id: str) -> str:
        return f"s3://{self.bucket}/{self._key(backup_id)}"

    def put(self, backup_id: str, name: str, src: Path, move: bool = False) -> None:
        self.s3.upload_file(str(src), self.bucket, self._key(backup_id, name))

    def put_bytes(self, backup_id: str, name: str, data: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=self._key(backup_id, name), Body=data)

    def _missing(self, e: Exception) -> bool:
        code = str(getattr(e, "response", {}).get("Error", {}).get("Code", ""))
        return code in ("404", "NoSuchKey", "NotFound")

    def get(self, backup_id: str, name: str, dest: Path) -> None:
        try:
            self.s3.download_file(self.bucket, self._key(backup_id, name), str(dest))
        except Exception as e:
            if self._missing(e):
                raise BackupCorruptError(f"{self.location(backup_id)}: {name} is missing") from None
            raise

    @contextlib.contextmanager
    def open(self, backup_id: str, name: str) -> Iterator[IO[bytes]]:
        try:
            obj = self.s3.get_object(Bucket=self.bucket, Key=self._key(backup_id, name))
        except Exception as e:
            if self._missing(e):
                raise BackupCorruptError(f"{self.location(backup_id)}: {name} is missing") from None
            raise
        body = obj["Body"]
        try:
            yield body
        finally:
            body.close()

    def exists(self, backup_id: str, name: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=self._key(backup_id, name))
        except Exception as e:
            if self._missing(e):
                return False
            raise
        return True

    def _objects(self, prefix: str) -> Iterator[dict[str, Any]]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        for page in pages:
            yield from page.get("Contents", [])

    def backup_ids(self) -> list[str]:
        base = f"{self.prefix}/" if self.prefix else ""
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=base, Delimiter="/"
        )
        ids = set()
        for page in pages:
            for cp in page.get("CommonPrefixes", []):
                name = str(cp["Prefix"])[len(base) :].rstrip("/")
                if _ID.match(name):
                    ids.add(name)
        return sorted(ids)

    def modified(self, backup_id: str) -> datetime:
        times = [o["LastModified"] for o in self._objects(self._key(backup_id) + "/")]
        if not times:
            raise BackupNotFoundError(f"{self.location(backup_id)} does not exist")
        newest: datetime = max(times)
        return newest

    def delete(self, backup_id: str) -> None:
        # the manifest first: a half-deleted backup must not look complete
        keys = [str(o["Key"]) for o in self._objects(self._key(backup_id) + "/")]
        keys.sort(key=lambda k: not k.endswith("/" + MANIFEST))
        for i in range(0, len(keys), 1000):
            self.s3.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]], "Quiet": True},
            )


def open_store(cfg: BackupSettings) -> BackupStore:
    """The store the settings name."""
    if cfg.store == "s3":
        return S3Store(cfg.s3_bucket, cfg.s3_prefix, cfg.s3_endpoint_url, cfg.s3_region)
    return LocalStore(cfg.dir)
