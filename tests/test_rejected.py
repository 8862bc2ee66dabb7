"""The rows the ETL rejected, readable with their reasons (`lakehouse rejected`, `lake.rejected`), those of a batch
the quality gate rolled back included and marked: on moto server with the real ETL, and the CLI on the local stage."""

from __future__ import annotations

import json

import pytest
from lakehouse_etl import processed
from test_etl import ingest
from test_local_stage import lakehouse

from chalicelib.errors import NotFoundError, UsageError
from chalicelib.names import PROCESS_SCRIPT
from lakehouse.jobs import rejected_rows_by_reason, run_script
from lakehouse.rejected import rejected_rows

HEADER = b"review_id,product_id,customer_id,rating,review_text,review_ts,review_date\n"
GOOD = b"R1,P1,C1,4,fine,2026-11-01T10:00:00Z,2026-11-01\n"
FIVE = b"R2,P1,C2,five,great,2026-11-01T11:00:00Z,2026-11-01\n"
NO_CUSTOMER = b"R3,P1,,3,ok,2026-11-02T10:00:00Z,2026-11-02\n"


def listed(job, **filters):
    return rejected_rows(job.s3, job.settings, job.stage, job.ledger, **filters)


def test_rejected_rows_keep_reason_source_and_row_and_survive_a_rollback_marked(lake_job):
    record = ingest(lake_job, "reviews", "week.csv", HEADER + GOOD + FIVE + NO_CUSTOMER)
    (report,) = processed.run(lake_job, "reviews")
    assert (report.rows_merged, report.rows_rejected) == (1, 2)
    first, second = listed(lake_job)
    assert first == {
        "dataset": "reviews",
        "batch": 1,
        "source_file": record.file_id,
        "row": 2,
        "reason_code": "TYPE_ERROR",
        "message": "rating is not a int32: five",
        "rolled_back": False,
        "rolled_back_at": None,
        "values": {
            "review_id": "R2",
            "product_id": "P1",
            "customer_id": "C2",
            "rating": "five",
            "review_text": "great",
            "review_ts": "2026-11-01T11:00:00Z",
            "review_date": "2026-11-01",
        },
    }
    assert (second["row"], second["reason_code"], second["message"]) == (3, "REQUIRED", "customer_id is missing")

    # the gate rolls the batch back: its rows stay readable, each saying so; counts of what is in the tables skip them
    # as the pipeline's rollback step runs it: a Glue job process (delta-rs's restore holds the GIL, which this
    # process's moto server needs)
    run_script(PROCESS_SCRIPT, lake_job.stage, ["--dataset", "reviews", "--rollback", "1"])
    again = listed(lake_job, dataset="reviews", batch=1)
    assert [(r["row"], r["rolled_back"]) for r in again] == [(2, True), (3, True)]
    assert again[0]["rolled_back_at"] > record.received_at
    assert rejected_rows_by_reason(lake_job.s3, lake_job.settings, lake_job.stage) == {}

    # requeued, the file's rows come again under batch 2: newest batch first, the rolled-back copy still marked
    assert lake_job.ledger.requeue(record.file_id)
    processed.run(lake_job, "reviews")
    assert [(r["batch"], r["rolled_back"]) for r in listed(lake_job)] == [(2, False), (2, False), (1, True), (1, True)]
    assert [r["batch"] for r in listed(lake_job, limit=3)] == [2, 2, 1]
    assert listed(lake_job, dataset="orders") == []
    assert dict(rejected_rows_by_reason(lake_job.s3, lake_job.settings, lake_job.stage)["reviews"]) == {
        "TYPE_ERROR": 1,
        "REQUIRED": 1,
    }


def test_a_run_s_rows_and_bad_filters(lake_job):
    ingest(lake_job, "reviews", "a.csv", HEADER + FIVE)
    processed.run(lake_job, "reviews")
    ingest(lake_job, "reviews", "b.csv", HEADER + NO_CUSTOMER)
    processed.run(lake_job, "reviews")
    run = lake_job.ledger.begin_run()
    lake_job.ledger.save_plan(run, {"levels": [[{"dataset": "reviews", "batch": 2}]]}, 1, 1)
    assert [r["reason_code"] for r in listed(lake_job, run=run.name)] == ["REQUIRED"]
    with pytest.raises(NotFoundError, match="no pipeline run named 'run-999999'"):
        listed(lake_job, run="run-999999")
    with pytest.raises(NotFoundError, match="no dataset 'invoices'; known: clickstream, customers"):
        listed(lake_job, dataset="invoices")
    with pytest.raises(UsageError, match=r"^batch: batch numbers count per dataset: give the dataset too$"):
        listed(lake_job, batch=1)
    with pytest.raises(UsageError, match=r"^limit: 0 is not a number of rows"):
        listed(lake_job, limit=0)


def test_the_python_api_lists_them_as_a_frame(lake_job):
    from lakehouse.connection import Connection

    ingest(lake_job, "reviews", "a.csv", HEADER + GOOD + FIVE)
    processed.run(lake_job, "reviews")
    frame = Connection(lake_job.settings, lake_job.stage).rejected(dataset="reviews")
    assert frame[["row", "reason_code", "message", "rolled_back"]].values.tolist() == [
        [2, "TYPE_ERROR", "rating is not a int32: five", False]
    ]
    empty = Connection(lake_job.settings, lake_job.stage).rejected(dataset="orders")
    assert empty.empty and "reason_code" in empty.columns


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """The local stage with one reviews file processed: one good row, two rejected."""
    home = tmp_path_factory.mktemp("lakehouse-home")
    folder = tmp_path_factory.mktemp("files")
    (folder / "reviews.csv").write_bytes(HEADER + GOOD + FIVE + NO_CUSTOMER)
    lakehouse(home, "up")
    lakehouse(home, "drop", str(folder / "reviews.csv"))
    lakehouse(home, "etl", "--dataset", "reviews", "--no-curated")
    yield home
    lakehouse(home, "down")


def test_the_command_lists_rows_with_reason_file_and_row(home):
    table = lakehouse(home, "rejected", "--dataset", "reviews")
    assert "TYPE_ERROR" in table.stdout and "rating is not a int32: five" in table.stdout
    assert "raw/reviews/" in table.stdout and "reviews.csv" in table.stdout and "#" not in table.stdout
    assert "2 rejected rows" in table.stderr
    (one,) = json.loads(
        lakehouse(home, "rejected", "--dataset", "reviews", "--batch", "1", "--limit", "1", "--json").stdout
    )
    assert (one["row"], one["reason_code"], one["rolled_back"]) == (2, "TYPE_ERROR", False)
    assert one["values"]["rating"] == "five" and one["source_file"].startswith("lakehouse-local-lake/raw/reviews/")
    none = lakehouse(home, "rejected", "--dataset", "orders")
    assert none.stdout == "" and "no rejected rows of dataset orders" in none.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "invoices"], "error: no dataset 'invoices'; known: clickstream,"),
        (["--batch", "1"], "error: batch: batch numbers count per dataset: give the dataset too"),
        (["--run", "run-000042"], "error: no pipeline run named 'run-000042' in the ledger"),
    ],
)
def test_the_command_refuses_bad_filters_in_one_line(home, args, message):
    refused = lakehouse(home, "rejected", *args, check=False)
    assert refused.returncode == 1 and refused.stderr.startswith(message) and len(refused.stderr.splitlines()) == 1
    # --limit 0 is a bad argument (exit 2, naming --help), as `ledger --limit -1` is: tests/test_errors.py
