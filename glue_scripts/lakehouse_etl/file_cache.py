"""A local copy of the lake's Parquet files, so DuckDB reads them with its own reader (the local stage's S3 is moto,
which DuckDB cannot reach without its httpfs extension, and the extension cannot be installed offline).

A Delta table never rewrites a data file in place: a file's path names one content for ever (the protocol's add
actions; delta-rs and Spark write a fresh UUID-named file for every change). So a copy is good while its size is the
one the log records, and the log, read fresh for every query, decides which files a query sees: the cache can make a
query faster, never older.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_BYTES = 4 * 2**30  # LAKEHOUSE_CACHE_BYTES overrides
RECENT_SECONDS = 600  # a copy used this recently is kept over the cap: another query may be reading it
THREADS = 8  # downloads at once (S3 serves one object per connection; latency, not bandwidth, bounds small files)


@dataclass(frozen=True)
class FileCache:
    root: Path
    max_bytes: int = DEFAULT_BYTES

    @classmethod
    def at(cls, root: Path) -> FileCache:
        return cls(root, int(os.environ.get("LAKEHOUSE_CACHE_BYTES", DEFAULT_BYTES)))

    def paths(self, files: Iterable[tuple[str, int]], storage_options: dict[str, str]) -> list[str]:
        """Local paths for `(s3 uri, size)` pairs, copying the ones not held yet (or held at another size: a copy
        cut short by a crash), in parallel; then trims the cache to its cap, least recently used first."""
        from lakehouse_etl.delta import arrow_filesystem

        wanted = [(uri, size, self.root / uri.removeprefix("s3://")) for uri, size in files]
        missing = [(uri, local) for uri, size, local in wanted if not _holds(local, size)]
        if missing:
            filesystem, _ = arrow_filesystem(missing[0][0], storage_options)
            with ThreadPoolExecutor(THREADS) as pool:
                list(pool.map(lambda item: _copy(filesystem, *item), missing))
        now = time.time()
        for _, _, local in wanted:
            os.utime(local, (now, now))  # "used": what trimming goes by
        self.trim(keep={str(local) for _, _, local in wanted})
        return [str(local) for _, _, local in wanted]

    def trim(self, keep: Collection[str] = ()) -> int:
        """Delete least recently used copies until the cache is under its cap; returns the bytes freed."""
        held = [(p.stat(), p) for p in self.root.rglob("*") if p.is_file()] if self.root.exists() else []
        total = sum(s.st_size for s, _ in held)
        freed, recent = 0, time.time() - RECENT_SECONDS
        for stat, path in sorted(held, key=lambda item: item[0].st_mtime):
            if total - freed <= self.max_bytes:
                break
            if str(path) in keep or stat.st_mtime > recent:
                continue
            path.unlink(missing_ok=True)
            freed += stat.st_size
        return freed


def _holds(local: Path, size: int) -> bool:
    try:
        return local.stat().st_size == size
    except FileNotFoundError:
        return False


def _copy(filesystem: Any, uri: str, local: Path) -> None:
    """One object to `local`, written beside it and renamed: a reader never sees half a file."""
    import pyarrow.fs as pa_fs

    local.parent.mkdir(parents=True, exist_ok=True)
    partial = local.with_name(f".{local.name}.{os.getpid()}.part")
    try:
        pa_fs.copy_files(uri.removeprefix("s3://"), str(partial), source_filesystem=filesystem)
        partial.replace(local)
    finally:
        partial.unlink(missing_ok=True)
