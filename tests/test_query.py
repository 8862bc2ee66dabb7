"""SQL over the lake: the read-only guard, Athena's run loop, DuckDB over the local stage's tables."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from chalicelib.athena import Athena, QueryError, read_only
from lakehouse.cli import main
from lakehouse.query import examples, on_duckdb


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "  with t AS (SELECT 1 AS a) SELECT a FROM t;  ",
        "-- a comment that says DROP TABLE\nSELECT 'delete me; now' AS s /* UPDATE */",
        "EXPLAIN SELECT * FROM processed_orders",
        "SHOW TABLES",
    ],
)
def test_read_only_accepts_one_reading_statement(sql):
    assert read_only(sql).upper().lstrip("- ").startswith(("SELECT", "WITH", "A COMMENT", "EXPLAIN", "SHOW"))


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("", "the query is empty"),
        ("-- only a comment", "the query is empty"),
        ("DROP TABLE processed_orders", "a DROP statement is refused"),
        ("SELECT 1; DELETE FROM processed_orders", "one statement at a time"),
        ("WITH t AS (SELECT 1) INSERT INTO x SELECT * FROM t", "INSERT is refused"),
        ("CREATE TABLE x AS SELECT 1", "a CREATE statement is refused"),
        ("SELECT * FROM t; ATTACH 'x.db'", "one statement at a time"),
    ],
)
def test_read_only_refuses_writes_and_several_statements(sql, message):
    with pytest.raises(QueryError, match=message):
        read_only(sql)


class FakeAthena:
    """Answers like Athena: states in order, then pages of results (the first row repeats the header)."""

    def __init__(self, states, pages=None, reason="boom"):
        self.states, self.pages, self.reason = list(states), pages or [], reason
        self.started, self.stopped = [], []

    def start_query_execution(self, **kwargs):
        self.started.append(kwargs)
        return {"QueryExecutionId": "q1"}

    def get_query_execution(self, QueryExecutionId):
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return {
            "QueryExecution": {
                "Status": {"State": state, "StateChangeReason": self.reason},
                "Statistics": {"DataScannedInBytes": 1234},
            }
        }

    def stop_query_execution(self, QueryExecutionId):
        self.stopped.append(QueryExecutionId)

    def get_paginator(self, name):
        pages = self.pages

        class Paginator:
            def paginate(self, QueryExecutionId):
                return pages

        return Paginator()


def page(rows, header=None):
    cells = [{"Data": [{"VarCharValue": v} if v is not None else {} for v in row]} for row in rows]
    meta = {"ColumnInfo": [{"Name": n} for n in header or []]}
    return {"ResultSet": {"ResultSetMetadata": meta, "Rows": cells}}


def athena(fake, clock=None):
    ticks = iter(range(0, 10_000, 10))
    return Athena(
        fake,
        "lakehouse_prod",
        "lakehouse-prod-analytics",
        "s3://lake/athena-results/",
        sleep=lambda s: None,
        clock=clock or (lambda: next(ticks)),
    )


def test_athena_waits_then_reads_every_page_without_the_header_row():
    fake = FakeAthena(
        ["QUEUED", "RUNNING", "SUCCEEDED"],
        [page([("day", "revenue"), ("2025-03-01", "10.50")], ["day", "revenue"]), page([("2025-03-02", None)])],
    )
    result = athena(fake).run("SELECT day, revenue FROM curated_daily_sales_by_category")
    assert result.columns == ["day", "revenue"]
    assert result.rows == [("2025-03-01", "10.50"), ("2025-03-02", None)]
    assert (result.engine, result.bytes_scanned) == ("athena", 1234)
    (started,) = fake.started
    assert started["QueryExecutionContext"] == {"Database": "lakehouse_prod"}
    assert started["WorkGroup"] == "lakehouse-prod-analytics"


def test_athena_failure_and_timeout_are_clear_errors_and_nothing_keeps_running():
    with pytest.raises(QueryError, match="Athena query q1 FAILED: TABLE_NOT_FOUND"):
        athena(FakeAthena(["RUNNING", "FAILED"], reason="TABLE_NOT_FOUND")).run("SELECT * FROM nope")
    stuck = FakeAthena(["RUNNING"])
    with pytest.raises(QueryError, match="did not finish in 60 s; it was stopped"):
        athena(stuck).run("SELECT 1", timeout=60)
    assert stuck.stopped == ["q1"]
    refused = FakeAthena(["SUCCEEDED"])
    with pytest.raises(QueryError, match="read-only"):
        athena(refused).run("DELETE FROM processed_orders")
    assert refused.started == []  # refused before it reached Athena


@pytest.mark.e2e
def test_the_example_queries_run_on_duckdb_over_the_stage_tables(lake_job, tmp_path):
    from test_etl import ingest_sample, run_all

    from lakehouse.generate import generate

    sample = (tmp_path, generate(tmp_path, orders=200, anomaly_rate=0.0, seed=4))
    ingest_sample(lake_job, sample)
    run_all(lake_job)
    results = {
        name: on_duckdb(lake_job.settings, lake_job.stage, path.read_text()) for name, path in examples().items()
    }
    assert set(results) == {"revenue_by_day_and_category", "top_products", "conversion_funnel"}
    top = results["top_products"]
    assert len(top.rows) == 10 and top.columns[-1] == "revenue"
    assert [r[-1] for r in top.rows] == sorted((r[-1] for r in top.rows), reverse=True)
    ((viewed, carted, purchased, _),) = results["conversion_funnel"].rows
    assert viewed >= carted >= purchased > 0
    assert results["revenue_by_day_and_category"].rows and results["top_products"].bytes_scanned > 0
    assert results["top_products"].details["tables"] == ["processed_order_items", "processed_products"]
    with pytest.raises(QueryError, match=r"^no table no_such_table; the lake has: (curated_\w+, )*processed_\w+"):
        on_duckdb(lake_job.settings, lake_job.stage, "SELECT * FROM no_such_table")
    # a clean generated set fails no quality rule of the shipped contracts, on the same tables
    from datetime import UTC, datetime

    from chalicelib.quality import gate as quality
    from lakehouse.query import sql_engine

    engine = sql_engine(lake_job.settings, lake_job.stage, local=True)
    tables = engine.tables()
    for contract in lake_job.settings.datasets.values():
        rows, checks = quality.scan(engine, contract, tables, datetime.now(UTC), 60)
        assert rows > 0 and [c for c in checks if not c.passed] == [], contract.name


def test_query_command_checks_its_arguments_before_touching_a_stage():
    runner = CliRunner()
    both = runner.invoke(main, ["query", "SELECT 1", "--example", "top_products"])
    assert both.exit_code == 2 and "exactly one of SQL, --example NAME or --file PATH" in both.output
    unknown = runner.invoke(main, ["query", "--example", "nope"])
    assert unknown.exit_code == 2 and "no example 'nope'" in unknown.output
    listed = runner.invoke(main, ["query", "--list"])
    assert listed.exit_code == 0 and "conversion_funnel: Conversion funnel" in listed.output


def test_a_local_query_is_stopped_at_athena_s_timeout(settings, tmp_path):
    """Athena stops a query past its timeout; DuckDB on the local stage must not run on for ever instead."""
    from lakehouse_etl.lake import Lake
    from lakehouse_etl.local_sql import DuckDBEngine

    engine = DuckDBEngine(Lake(str(tmp_path), settings))
    with pytest.raises(QueryError, match=r"ran past its 0\.5 s timeout"):
        engine.run("SELECT count(*) FROM range(1000000000000) a", timeout=0.5)
    assert engine.run("SELECT 42 AS answer", timeout=5).rows == [(42,)]
