"""`lakehouse.connect(stage)`: the lake from Python and notebooks, every answer a pandas DataFrame.

    import lakehouse
    lake = lakehouse.connect("local")          # the running local stage; "dev", "prod" with your AWS credentials
    lake.sql("SELECT ... FROM curated_daily_sales_by_category")
    lake.table("processed/orders", as_of="2026-11-25T10:00:00Z", columns=["order_id"], where=[("status", "=", "x")])
    lake.files(status="REJECTED")
    lake.quality("orders")
    lake.rejected(dataset="reviews")          # rows the ETL rejected, with reason, source file and row
    lake.drop("export.csv", dataset="customers")

SQL runs on DuckDB over the local stage's Delta tables and on Athena (through the AWS SDK for pandas) on a deployed
stage, behind the same read-only guard as `lakehouse query`. Columns keep their types on both (decimals, dates,
timestamps with their time zone): the frames hold pyarrow-backed columns (`pd.ArrowDtype`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from chalicelib.athena import read_only
from chalicelib.config import Settings, Stage
from chalicelib.errors import NotFoundError
from chalicelib.ledger import ledger_for
from lakehouse import localstage


def _frame(table: Any) -> pd.DataFrame:
    """Arrow to pandas with Arrow's types kept (decimal128, date32, timestamp with tz), not NumPy's guesses."""
    return table.to_pandas(types_mapper=pd.ArrowDtype)


class Connection:
    """One stage's lake: SQL, Delta tables, the ledger, quality results, and dropping files."""

    def __init__(self, settings: Settings, stage: Stage) -> None:
        from lakehouse_etl.lake import Lake

        self.settings, self.stage = settings, stage
        self.local = stage.name == localstage.STAGE
        self.lake = Lake.for_stage(settings, stage)
        self.ledger = ledger_for(stage)
        self._duckdb: Any = None

    @classmethod
    def open(cls, stage: str = localstage.STAGE) -> Connection:
        """The stage's lake: the local stage must be running (`lakehouse up`); a deployed one uses your credentials."""
        from lakehouse.ops import connect

        return cls(*connect(stage))

    def __repr__(self) -> str:
        return f"<lakehouse {self.stage.name}: s3://{self.stage.bucket}, {'DuckDB' if self.local else 'Athena'}>"

    # -- SQL -------------------------------------------------------------------------------------
    def sql(self, sql: str, *, timeout: float = 300.0) -> pd.DataFrame:
        """Run one read-only statement; anything that writes is refused before it reaches an engine. Tables have
        the same names on both engines (`processed_orders`, `curated_daily_sales_by_category`)."""
        statement = read_only(sql)
        if self.local:
            from lakehouse.query import sql_engine

            if self._duckdb is None:  # kept: its session and views serve the next statement too
                self._duckdb = sql_engine(self.settings, self.stage, local=True)
            return _frame(self._duckdb.arrow(statement, timeout))
        from lakehouse.query import athena_frames

        return athena_frames(self.stage, statement)

    # -- Delta tables ----------------------------------------------------------------------------
    def tables(self) -> list[str]:
        """The names `table()` takes: `processed/<dataset>` and `curated/<table>` that exist."""
        from lakehouse_etl import delta
        from lakehouse_etl.local_sql import tables

        return [n for n, uri in tables(self.lake).items() if delta.open_table(uri, self.lake.storage_options)]

    def table(
        self,
        name: str,
        *,
        version: int | None = None,
        as_of: str | None = None,
        columns: list[str] | None = None,
        where: list[tuple[str, str, Any]] | None = None,
    ) -> pd.DataFrame:
        """A Delta table (`processed/orders`, or its SQL name `processed_orders`), now or as it was at a `version`
        or at a time (`as_of`, ISO 8601). `columns` and `where` (ANDed `(column, op, value)` triples, e.g.
        `[("order_date", ">=", date(2026, 11, 1))]`) are pushed down to the Delta log: partitions and files that
        cannot match are not read."""
        from lakehouse_etl import delta
        from lakehouse_etl.local_sql import tables

        if version is not None and as_of is not None:
            raise ValueError("give version or as_of, not both")
        known = tables(self.lake)
        key = name if name in known else name.replace("_", "/", 1)
        if key not in known:
            raise NotFoundError(f"no table {name!r}; the lake has: {', '.join(self.tables()) or 'none yet'}")
        return _frame(
            delta.read(
                known[key], self.lake.storage_options, version=version, as_of=as_of, columns=columns, filters=where
            )
        )

    # -- the ledger and the quality gate ---------------------------------------------------------------
    def files(self, *, status: str | None = None, dataset: str | None = None, limit: int | None = 1000) -> pd.DataFrame:
        """The ledger's file records, newest first (`limit=None`: all of them)."""
        records = [r.public() for r in self.ledger.files(limit)]
        frame = pd.DataFrame.from_records(records)
        if status is not None and not frame.empty:
            frame = frame[frame["status"] == status.upper()]
        if dataset is not None and not frame.empty:
            frame = frame[frame["dataset"] == dataset]
        return frame.reset_index(drop=True)

    def quality(self, dataset: str, *, runs: int = 1) -> pd.DataFrame:
        """The quality checks of `dataset`'s latest `runs` results, a row per check (newest run first)."""
        if dataset not in self.settings.datasets:
            raise NotFoundError(f"no dataset {dataset!r}; known: {', '.join(sorted(self.settings.datasets))}")
        rows = [
            {"run": result["run"], "status": result["status"], **check}
            for result in self.ledger.quality_history(dataset, runs)
            for check in result["checks"]
        ]
        return pd.DataFrame.from_records(rows)

    def rejected(
        self, *, dataset: str | None = None, run: str | None = None, batch: int | None = None, limit: int = 1000
    ) -> pd.DataFrame:
        """The rows the ETL rejected, newest batch first, as `lakehouse rejected` lists them: reason code and
        message, source file and row, the row's values as delivered, and whether the quality gate rolled its batch
        back (`rolled_back`). `batch` needs `dataset` (batch numbers count per dataset)."""
        from chalicelib.aws import ClientSettings, client
        from lakehouse.rejected import COLUMNS, rejected_rows

        s3 = client("s3", ClientSettings.for_stage(self.stage))
        rows = rejected_rows(
            s3, self.settings, self.stage, self.ledger, dataset=dataset, run=run, batch=batch, limit=limit
        )
        return pd.DataFrame.from_records(rows, columns=list(COLUMNS))

    def drop(
        self, path: str | Path, *, dataset: str | None = None, wait: bool = True, timeout: float = 120
    ) -> pd.DataFrame:
        """Upload a file to raw/<dataset>/ as `lakehouse drop` does; with `wait`, its ledger record once judged."""
        from lakehouse.ops import drop_files, guess_dataset, wait_for

        file = Path(path)
        try:
            name = dataset or guess_dataset(self.settings, file)
        except Exception as exc:  # the CLI's wording names --dataset
            raise NotFoundError(f"cannot tell the dataset of {file.name}: pass dataset=...") from exc
        if name not in self.settings.datasets:
            raise NotFoundError(f"no dataset {name!r}; known: {', '.join(sorted(self.settings.datasets))}")
        (file_id,) = drop_files(self.settings, self.stage, [(file, name)])
        if not wait:
            return pd.DataFrame.from_records([{"file_id": file_id, "dataset": name, "status": "SENT"}])
        record = wait_for(self.ledger, [file_id], timeout)[file_id]
        return pd.DataFrame.from_records([record.public()])
