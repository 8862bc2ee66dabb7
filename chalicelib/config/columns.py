"""A contract's column: below both the contract (config/model.py) and its rules (config/rules.py), which read it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool = True
    min: float | None = None  # numeric columns: rows outside [min, max] are rejected by the ETL
    max: float | None = None

    @property
    def numeric(self) -> bool:
        """An integer, double or decimal column."""
        return self.type in ("int32", "int64", "double") or self.type.startswith("decimal")
