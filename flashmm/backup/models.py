"""Model artifacts: the files of the configured model directory (or the one file it names),
stored one by one under ``models/`` so each has its own checksum, restored the same way."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from flashmm.backup.store import check_name, sha256_file


def artifact_files(source: Path) -> list[tuple[str, Path]]:
    """(name relative to the source, path) of every regular file, sorted; a single file is
    its own name."""
    if source.is_file():
        return [(source.name, source)]
    out = []
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames.sort()
        for fn in sorted(filenames):
            p = Path(dirpath) / fn
            if p.is_file():
                out.append((check_name(p.relative_to(source).as_posix()), p))
    return out


def install(src: Path, dest: Path) -> None:
    """Copy ``src`` to ``dest`` whole or not at all (a temporary name, then a rename)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def checksums(dests: dict[str, Path]) -> dict[str, str | None]:
    """sha256 of each file (by its name in the backup); None for one that is not there."""
    return {name: sha256_file(p)[0] if p.is_file() else None for name, p in dests.items()}
