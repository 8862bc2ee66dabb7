"""Take rows back out of processed/: those whose key starts with a prefix (`lakehouse smoke` tags every id of its set
with one), in one Delta delete per table, children before parents. Run by the master merge job (`--forget PREFIX`),
so on a deployed stage it is a Glue job run under the pipeline's run lock, never a commit from a laptop."""

from __future__ import annotations

import re
from typing import Any

from chalicelib.config import dataset_order
from chalicelib.errors import UsageError
from lakehouse_etl import delta
from lakehouse_etl.processed import Job

PREFIX = re.compile(r"[A-Za-z0-9_-]{4,64}")  # goes into a SQL predicate: letters, digits, _ and - only


def forget(job: Job, prefix: str) -> list[dict[str, Any]]:
    """Delete the rows whose primary key starts with `prefix` from every processed/ table; a report per table."""
    if not PREFIX.fullmatch(prefix):
        raise UsageError("--forget", f"{prefix!r} is not a key prefix (4-64 letters, digits, _ or -)")
    reports = []
    for dataset in reversed(dataset_order(job.settings)):  # children first
        table = delta.open_table(job.lake.processed(dataset), job.lake.storage_options)
        if table is None:
            continue
        key = job.settings.datasets[dataset].primary_key[0]
        metrics = table.delete(f"{key} LIKE '{prefix}%'")
        reports.append({"table": f"processed/{dataset}", "forgotten": int(metrics.get("num_deleted_rows", 0))})
    return reports
