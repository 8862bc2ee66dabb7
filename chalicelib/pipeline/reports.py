"""What the state machine's Lambda steps answer. Step Functions passes them on as JSON, so they are TypedDicts:
plain dicts at run time, checked keys for mypy."""

from __future__ import annotations

from typing import Any, TypedDict

from chalicelib.ledger.records import PlannedBatch
from chalicelib.quality.results import Level


class QualityReport(TypedDict):
    """The quality gate's answer (`RunSteps.quality`); the state machine's QualityGate reads `status` and
    `rollback` (the batches to take back out)."""

    status: Level
    summary: str  # readable, failures first: the alert's text and a failed run's cause
    rollback: list[PlannedBatch]
    datasets: dict[str, Level]
    results: list[dict[str, Any]]  # each dataset's `TableQuality.as_dict()`


class DatasetFinished(TypedDict):
    """One dataset's batch in a finished run."""

    batch: int
    files: int
    rows_merged: int
    rows_rejected: int


class RunFinished(TypedDict):
    """The success step's answer (`RunSteps.finish`)."""

    run: str
    datasets: dict[str, DatasetFinished]
    files: int
    archived: int


class RunFailed(TypedDict):
    """The failure step's answer (`RunSteps.fail`)."""

    run: str
    files_failed: int
    archived: int


class TablesRefreshed(TypedDict):
    """The catalog refresh's answer (`RunSteps.refresh_tables`)."""

    tables: list[str]
