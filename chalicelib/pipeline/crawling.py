"""When a run crawls a dataset's raw files: only when they bring a layout no crawl has seen.

Every table the lakehouse publishes is registered directly (Delta tables, raw tables with partition projection:
`chalicelib.stage.catalog`), so a crawler adds nothing for files shaped like the ones it crawled before, yet Glue
bills each crawler run at least 10 minutes of 2 DPUs. A dataset whose raw table is written from its contract is
never crawled. Any other (a dataset of two formats) is crawled when its batch has a file of a new
layout (`chalicelib.ingest.layout`: another format, column set or folder layout), when it was never crawled, or
when a run is told to (`lakehouse run --crawl`). The decision and its reason are part of the run's plan, so the
execution's history shows why each crawler ran or was skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chalicelib.ledger.records import FileRecord

UNKNOWN = "unknown (validated before layouts were recorded)"


@dataclass(frozen=True)
class CrawlDecision:
    """Whether a dataset of a run is crawled, why, and the layouts of its batch (kept once the run succeeds)."""

    dataset: str
    crawl: bool
    reason: str
    layouts: tuple[str, ...]


def decide(
    dataset: str,
    files: Sequence[FileRecord],
    crawled: set[str] | None,
    *,
    force: bool = False,
    from_contract: bool = False,
) -> CrawlDecision:
    """The crawl decision for `dataset`'s batch `files`, given the layouts its earlier crawls saw (None: never).
    A dataset whose raw table is written `from_contract` is never crawled, forced or not: the table already has every
    column the validator accepts, and a crawler updating it would replace the contract's table with its guess."""
    layouts = tuple(sorted({f.layout or UNKNOWN for f in files}))
    if from_contract:
        return CrawlDecision(dataset, False, f"skipped: raw_{dataset} is written from its contract", layouts)
    if force:
        return CrawlDecision(dataset, True, "crawl asked for (lakehouse run --crawl)", layouts)
    if crawled is None:
        return CrawlDecision(dataset, True, "never crawled", layouts)
    new = [layout for layout in layouts if layout == UNKNOWN or layout not in crawled]
    if new:
        more = f" (and {len(new) - 1} more)" if len(new) > 1 else ""
        return CrawlDecision(dataset, True, f"new raw layout: {new[0]}{more}", layouts)
    return CrawlDecision(dataset, False, f"skipped: the {len(files)} files have layouts crawled before", layouts)
