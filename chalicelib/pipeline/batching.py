"""How accepted files are batched: when the waiting files start a run, and which of them one dataset's batch takes.

The one place to change batching. Its numbers are `[pipeline] window_seconds, start_files, start_bytes` (when) and
`[limits] max_batch_files, max_batch_bytes` (how much) in `lakehouse.toml`. The ledger only stores what this
chooses: a batch is opened, resumed and closed there with one conditional write each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from chalicelib.config.model import Settings
from chalicelib.ledger.records import FileRecord

BATCHER_MINUTES = 1  # how often the batcher schedule looks at the ledger (app.py's `batcher`)


@dataclass(frozen=True)
class BatchPolicy:
    """Glue bills a minimum per job run, so files are batched, not processed one by one."""

    window_seconds: int = 300  # a run starts once the oldest waiting file has waited this long ...
    start_files: int = 1000  # ... or this many files wait ...
    start_bytes: int = 1024**3  # ... or this many bytes
    max_files: int = 1000  # one dataset's batch: at most this many files ...
    max_bytes: int | None = None  # ... and this many bytes together (but always at least one file)

    @classmethod
    def of(cls, settings: Settings) -> BatchPolicy:
        """The policy `lakehouse.toml` declares."""
        when, size = settings.pipeline, settings.limits
        return cls(when.window_seconds, when.start_files, when.start_bytes, size.max_batch_files, size.max_batch_bytes)

    def due(self, files: Sequence[FileRecord], now: datetime) -> str | None:
        """Why a run should start now over the waiting `files`, or None while the window is still open."""
        if not files:
            return None
        size = sum(f.size or 0 for f in files)
        age = (now - datetime.fromisoformat(min(f.received_at for f in files))).total_seconds()
        if len(files) >= self.start_files:
            return f"{len(files)} files waiting (start_files = {self.start_files})"
        if size >= self.start_bytes:
            return f"{size} bytes waiting (start_bytes = {self.start_bytes})"
        if age >= self.window_seconds:
            return f"oldest file waited {age:.0f} s (window_seconds = {self.window_seconds})"
        return None

    def starts_by(self, files: Sequence[FileRecord], now: datetime, every: float) -> tuple[datetime, str]:
        """When a run over the waiting `files` starts at the latest, with why: the first look of a batcher that looks
        every `every` seconds after the run is due (the window closes, or enough files or bytes wait)."""
        if self.due(files, now):
            due, why = now, "due now"
        else:
            due = datetime.fromisoformat(min(f.received_at for f in files)) + timedelta(seconds=self.window_seconds)
            why = f"the {self.window_seconds} s window closes at {due:%H:%M:%S} UTC"
        return due + timedelta(seconds=every), f"{why}; the batcher looks every {every:g} s"

    def take(self, pending: Sequence[FileRecord]) -> tuple[str, ...]:
        """The ids of the files a new batch takes from a dataset's `pending` files (oldest first)."""
        chosen: list[str] = []
        total = 0
        for record in pending[: self.max_files]:
            total += record.size or 0
            if chosen and self.max_bytes is not None and total > self.max_bytes:
                break
            chosen.append(record.file_id)
        return tuple(chosen)
