"""No crash at exit: every command that loads DuckDB, Arrow or delta-rs, in the CLI's process or in the Glue job
processes it starts, exits 0 without `terminate called` (a native thread that outlived the interpreter), 20 times
over. The crash was a race at exit, so one run proves nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import ROOT
from test_local_stage import lakehouse
from test_rejected import FIVE, GOOD, HEADER

pytestmark = pytest.mark.e2e

RUNS = 20


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A local stage with a small generated set processed, for the commands that read the lake."""
    home = tmp_path_factory.mktemp("lakehouse-home")
    folder = tmp_path_factory.mktemp("generated")
    lakehouse(home, "up")
    lakehouse(home, "generate", str(folder), "--orders", "20", "--anomaly-rate", "0")
    for name in ("customers.csv", "products.jsonl", "orders.csv"):
        lakehouse(home, "drop", str(folder / name))
    lakehouse(home, "run")
    (folder / "reviews.csv").write_bytes(HEADER + GOOD + FIVE)  # a rejected row, for `lakehouse rejected`
    lakehouse(home, "drop", str(folder / "reviews.csv"))
    lakehouse(home, "etl", "--dataset", "reviews", "--no-curated")
    yield home
    lakehouse(home, "down", "--discard")


def exits(home: Path, args: tuple[str, ...]) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["LAKEHOUSE_HOME"] = str(home)
    done = subprocess.run(
        [sys.executable, "-m", "lakehouse.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    return done.returncode, done.stderr


def assert_clean_exits(home: Path, args: tuple[str, ...], parallel: int) -> None:
    """RUNS runs of `lakehouse ARGS` ("{run}" in an argument: the run's number), `parallel` at a time."""
    with ThreadPoolExecutor(parallel) as pool:
        results = list(pool.map(lambda run: exits(home, tuple(a.format(run=run) for a in args)), range(RUNS)))
    failed = [(code, err) for code, err in results if code != 0 or "terminate called" in err]
    assert not failed, f"lakehouse {' '.join(args)}: {len(failed)} of {RUNS} runs failed, first: {failed[0]}"


def test_check_exits_cleanly(tmp_path: Path) -> None:
    """`lakehouse check` needs no stage: its Arrow CSV reader's IO threads used to outlive the interpreter."""
    path = tmp_path / "orders_1.csv"
    path.write_bytes(
        b"order_id,customer_id,order_ts,status,total_amount,currency,order_date\n"
        b"O1,C1,2025-03-01T10:00:00Z,shipped,10.00,EUR,2025-03-01\n"
    )
    assert_clean_exits(tmp_path, ("check", str(path)), parallel=2)


# In the CLI's own process: delta-rs (table), DuckDB (query), all three (quality check), Arrow's Parquet reader
# (rejected: it aborted so after the reader was handed Python bytes).
READERS = [
    ("table", "list"),
    ("table", "history", "processed/orders"),
    ("table", "show", "processed/orders", "--limit", "5"),
    ("query", "SELECT count(*) FROM processed_orders"),
    ("query", "--format", "parquet", "--output", "{out}/{run}.parquet", "SELECT * FROM processed_orders"),
    ("quality", "check", "orders"),
    ("rejected", "--dataset", "reviews", "--json"),
]


@pytest.mark.parametrize("args", READERS, ids=" ".join)
def test_commands_that_read_the_lake_exit_cleanly(home: Path, tmp_path: Path, args: tuple[str, ...]) -> None:
    assert_clean_exits(home, tuple(a.replace("{out}", str(tmp_path)) for a in args), parallel=2)


def test_commands_that_run_glue_jobs_exit_cleanly(home: Path) -> None:
    """The Glue job processes (delta-rs, DuckDB, Arrow) they start: a job that aborts at exit fails the command.
    One after the other: they write the same tables."""
    assert_clean_exits(home, ("etl", "--dataset", "orders", "--no-curated"), parallel=1)
