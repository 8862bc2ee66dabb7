"""What the quality gate keeps: one result per rule, and the quality of a dataset's batch in one run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Level = Literal["PASSED", "WARN", "ERROR"]
PASSED: Level = "PASSED"
WARN: Level = "WARN"
ERROR: Level = "ERROR"


@dataclass
class CheckResult:
    """One rule's outcome on one table."""

    rule: str
    check: str
    severity: str  # a rule's Severity, or "error" for the gate's own checks (scan, rejected_rows)
    passed: bool
    observed: Any  # failing rows, rows, age in hours, change in percent ...
    threshold: str  # what it was held against, for people
    sample: list[str] = field(default_factory=list)  # primary keys of failing rows
    detail: str = ""

    @property
    def level(self) -> Level:
        """PASSED, or the rule's severity as WARN or ERROR when it failed."""
        return PASSED if self.passed else (ERROR if self.severity == "error" else WARN)


@dataclass
class TableQuality:
    """The quality of one dataset's batch and table in one run: what is kept as history."""

    dataset: str
    run: str
    batch: int | None
    rows: int  # rows in the table
    rows_loaded: int  # rows this run merged (the volume rule's history)
    checks: list[CheckResult]
    etl: dict[str, Any] = field(default_factory=dict)  # rows rejected by reason, duplicates dropped

    @property
    def status(self) -> Level:
        """The worst level of its checks."""
        levels = {c.level for c in self.checks}
        return ERROR if ERROR in levels else WARN if WARN in levels else PASSED

    def as_dict(self) -> dict[str, Any]:
        """The result as kept in the ledger's history, with its status."""
        return {**asdict(self), "status": self.status}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TableQuality:
        fields_ = {k: v for k, v in data.items() if k != "status"}
        return cls(**{**fields_, "checks": [CheckResult(**c) for c in data["checks"]]})
