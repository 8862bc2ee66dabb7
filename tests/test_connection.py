"""`lakehouse.connect()`: the README's notebook example runs against the local stage; bad input is a clear error;
`lakehouse query --output` writes parquet, csv and json. Each check runs in its own process with the stage's
LAKEHOUSE_HOME, as a notebook would."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import pyarrow.parquet as pq
import pytest
from conftest import CONFIG, ROOT
from test_local_stage import lakehouse

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A local stage with a generated set processed (two runs: orders gets a second version)."""
    home = tmp_path_factory.mktemp("lakehouse-home")
    folder = tmp_path_factory.mktemp("generated")
    lakehouse(home, "up")
    lakehouse(home, "generate", str(folder), "--orders", "200")
    for name in ("customers.csv", "products.jsonl", "orders.csv", "order_items.csv"):
        lakehouse(home, "drop", str(folder / name), check=False)  # planted anomalies: exit 2 for a rejected file
    lakehouse(home, "run")
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
        import datetime, lakehouse
        import pandas as pd
        lake = lakehouse.connect("local")
        orders = lake.table("processed_orders")
        assert str(orders.dtypes["total_amount"]) == "decimal128(12, 2)[pyarrow]"
        assert str(orders.dtypes["order_date"]) == "date32[day][pyarrow]"
        assert str(orders.dtypes["order_ts"]) == "timestamp[us, tz=UTC][pyarrow]"
        some = lake.table("processed/orders", columns=["order_id", "status"], where=[("status", "=", "shipped")])
        assert list(some.columns) == ["order_id", "status"] and set(some["status"]) == {"shipped"}
        assert len(some) == (orders["status"] == "shipped").sum() > 0
        day = orders["order_date"].min()
        one_day = lake.table("processed/orders", where=[("order_date", "=", day)])
        assert len(one_day) == (orders["order_date"] == day).sum()
        assert len(lake.table("processed/orders", version=0)) == 0  # the table's creation
        counted = lake.sql("SELECT count(*) AS n, sum(total_amount) AS total FROM processed_orders")
        assert counted["n"][0] == len(orders) and str(counted.dtypes["total"]).startswith("decimal128")
        files = lake.files()
        assert set(files["status"]) <= {"PROCESSED", "REJECTED"} and len(lake.files(dataset="orders")) == 1
        assert set(lake.quality("orders")["run"]) == {"run-000001"}
        """,
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
