"""`lakehouse.connect()`: the README's notebook example runs against the local stage as `make demo` leaves it; bad
input is a clear error; `lakehouse query --output` writes parquet, csv and json. Each check runs in its own process
with the stage's LAKEHOUSE_HOME, as a notebook would."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import pyarrow.parquet as pq
import pytest
from conftest import CONFIG, ROOT
from test_local_stage import H, lakehouse

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """The local stage as `make demo` leaves it (its update batch MERGEd into processed/ and curated/: files with
    `string_view` columns), then compacted and vacuumed by `lakehouse table housekeeping`."""
    home = tmp_path_factory.mktemp("lakehouse-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | {"LAKEHOUSE_HOME": str(home)}
    demo = subprocess.run(
        [sys.executable, "-m", "lakehouse.cli", "demo", "--keep-running"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert demo.returncode == 0 and "demo passed" in demo.stderr, demo.stdout + demo.stderr
    lakehouse(home, "table", "housekeeping")
    yield home
    lakehouse(home, "down")


def python(home, code: str) -> subprocess.CompletedProcess:
    env = {"LAKEHOUSE_HOME": str(home), "LAKEHOUSE_CONFIG": str(CONFIG), "PATH": "/usr/bin:/bin", "HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_the_readmes_notebook_example_runs_against_the_local_stage(home):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### From Python and notebooks") :]
    example = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    printed = python(home, example).stdout
    assert "decimal128(38, 2)[pyarrow]" in printed and "unique(order_id)" in printed


def test_answers_keep_their_types_and_pushdowns_and_time_travel_read_what_they_say(home):
    python(
        home,
        """
        import datetime, os, pathlib, lakehouse
        import pandas as pd
        lake = lakehouse.connect("local")
        orders = lake.table("processed_orders")
        assert str(orders.dtypes["total_amount"]) == "decimal128(12, 2)[pyarrow]"
        assert str(orders.dtypes["order_date"]) == "date32[day][pyarrow]"
        assert str(orders.dtypes["order_ts"]) == "timestamp[us, tz=UTC][pyarrow]"
        assert lake.table("processed/orders", version=2)["order_id"].is_unique  # the update batch's MERGE
        some = lake.table("processed/orders", columns=["order_id", "status"], where=[("status", "=", "shipped")])
        assert list(some.columns) == ["order_id", "status"] and set(some["status"]) == {"shipped"}
        assert str(some.dtypes["status"]) == "string[pyarrow]"  # plain strings, whatever the files hold
        assert len(some) == (orders["status"] == "shipped").sum() > 0
        # `where` on every type the contracts use: string, timestamp, decimal, date, int64, int32
        def same(name, frame, column, op, value):
            got = lake.table(name, where=[(column, op, value)])
            expected = {"=": frame[column] == value, ">": frame[column] > value, "<=": frame[column] <= value}[op]
            assert len(got) == expected.sum() > 0, (name, column)
        day, ts = orders["order_date"].min(), orders["order_ts"].max()
        same("processed/orders", orders, "order_date", "=", day)
        same("processed/orders", orders, "order_ts", "<=", ts.to_pydatetime())
        same("processed/orders", orders, "total_amount", ">", orders["total_amount"].min())
        items = lake.table("processed/order_items")
        same("processed/order_items", items, "quantity", ">", 1)
        reviews = lake.table("processed/reviews")
        same("processed/reviews", reviews, "rating", "<=", 3)
        assert len(lake.table("processed/orders", version=0)) == 0  # the table's creation
        counted = lake.sql("SELECT count(*) AS n, sum(total_amount) AS total FROM processed_orders")
        assert counted["n"][0] == len(orders) and str(counted.dtypes["total"]).startswith("decimal128")
        files = lake.files()
        assert set(files["status"]) <= {"PROCESSED", "REJECTED", "DUPLICATE"} and len(lake.files(dataset="orders")) >= 2
        assert set(lake.quality("orders")["run"]) == {"run-000002"}  # the update batch's run
        assert set(lake.quality("orders", runs=2)["run"]) == {"run-000001", "run-000002"}
        new = pathlib.Path(os.environ["HOME"]) / "late.csv"
        new.write_text(HEADER + "O9999999,C1,2026-11-30T10:00:00Z,shipped,10.00,EUR,2026-11-30\\n")
        (dropped,) = lake.drop(new, dataset="orders").to_dict("records")
        assert dropped["status"] == "VALID" and dropped["dataset"] == "orders", dropped
        """.replace("HEADER", repr(H.decode())),
    )


def test_bad_input_is_a_clear_error_naming_what_exists(home):
    python(
        home,
        """
        import lakehouse
        from chalicelib.errors import LakehouseError
        lake = lakehouse.connect("local")
        def refused(call, words):
            try:
                call()
            except LakehouseError as exc:
                assert words in str(exc), str(exc)
            else:
                raise AssertionError(f"not refused: {words}")
        refused(lambda: lake.sql("INSERT INTO processed_orders VALUES (1)"), "queries are read-only")
        refused(lambda: lake.sql("COPY processed_orders TO '/tmp/x.csv'"), "queries are read-only")
        refused(lambda: lake.sql("ATTACH '/tmp/x.db'"), "queries are read-only")
        refused(lambda: lake.sql("PRAGMA version"), "queries are read-only")
        refused(lambda: lake.table("processed/nothing"), "no table 'processed/nothing'; the lake has: processed/")
        refused(lambda: lake.table("processed/orders", version=99), "no version 99; the table has versions 0 to")
        refused(lambda: lake.table("processed/orders", as_of="2001-01-01T00:00:00Z"), "the table's first commit")
        refused(lambda: lake.quality("nothing"), "no dataset 'nothing'; known: ")
        """,
    )


def test_query_output_writes_parquet_csv_and_json_files(home, tmp_path):
    sql = "SELECT order_id, total_amount, order_date FROM processed_orders"
    counts = {}
    for fmt in ("parquet", "csv", "json"):
        out = tmp_path / f"orders.{fmt}"
        done = lakehouse(home, "query", "--format", fmt, "--output", str(out), sql)
        counts[fmt] = int(re.search(r"(\d+) rows written", done.stderr + done.stdout).group(1))
    table = pq.read_table(tmp_path / "orders.parquet")
    assert (
        table.num_rows == counts["parquet"] > 0 and str(table.schema.field("total_amount").type) == "decimal128(12, 2)"
    )
    assert len((tmp_path / "orders.csv").read_text().splitlines()) == counts["csv"] + 1  # the header
    assert len(json.loads((tmp_path / "orders.json").read_text())) == counts["json"]
    assert len(set(counts.values())) == 1
    refused = lakehouse(home, "query", "--format", "parquet", sql, check=False)
    assert refused.returncode == 2 and "give --output FILE" in refused.stderr
