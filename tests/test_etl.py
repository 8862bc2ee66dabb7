"""processed/ and curated/ Delta tables from the ledger's VALID files, on moto server + delta-rs."""

import json

import pytest
from lakehouse_etl import curated, delta, processed
from lakehouse_etl.local_sql import duckdb_connection

from chalicelib.aws import client
from chalicelib.config import dataset_order
from chalicelib.ingest.events import ObjectRef
from chalicelib.ingest.ingestor import Ingestor
from chalicelib.ledger import Status
from lakehouse.generate import generate


def ingest(job, dataset, name, data):
    """Drop a file and validate it (the validator Lambda's work, called directly)."""
    key = f"raw/{dataset}/day=1/{name}"
    version = job.s3.put_object(Bucket=job.stage.bucket, Key=key, Body=data)["VersionId"]
    ingestor = Ingestor(job.settings, job.stage, job.s3, client("sqs"), job.ledger)
    record = ingestor.ingest(ObjectRef(job.stage.bucket, key, version))
    assert record.status == Status.VALID, record
    return record


def run_all(job):
    return {d: processed.run(job, d) for d in dataset_order(job.settings)}


def rows(job, dataset):
    return (
        delta.read(job.lake.processed(dataset), job.lake.storage_options)
        .sort_by([(k, "ascending") for k in job.settings.datasets[dataset].primary_key])
        .to_pylist()
    )


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sample")
    return folder, generate(folder, orders=300, anomaly_rate=0.06, seed=11)


def ingest_sample(job, sample):
    folder, manifest = sample
    for dataset, planted in manifest["datasets"].items():
        ingest(job, dataset, planted["file"], (folder / planted["file"]).read_bytes())


def test_every_planted_anomaly_is_rejected_with_its_reason_and_exact_count(lake_job, sample):
    ingest_sample(lake_job, sample)
    reports = run_all(lake_job)
    for dataset, planted in sample[1]["datasets"].items():
        (report,) = reports[dataset]
        assert report.rows_read == planted["rows_written"]
        assert report.rejected_by_reason == planted["rejected_by_reason"], dataset
        assert report.duplicates_dropped == planted["duplicates"], dataset
        assert report.rows_merged == planted["clean_rows"], dataset
        assert len(rows(lake_job, dataset)) == planted["clean_rows"]
    assert sum(sample[1]["datasets"]["order_items"]["anomalies"].values()) > 0


def test_the_ledger_records_the_delta_version_and_counts_per_file(lake_job):
    h = b"order_id,customer_id,order_ts,status,total_amount,currency,order_date\n"
    a = ingest(
        lake_job,
        "orders",
        "a.csv",
        h + b"O1,C1,2025-03-01T10:00:00Z,placed,1.00,EUR,2025-03-01\n"
        b"O2,,2025-03-01T10:00:00Z,placed,1.00,EUR,2025-03-01\n",
    )
    b = ingest(lake_job, "orders", "b.csv", h + b"O3,C1,2025-03-02T10:00:00Z,placed,1.00,EUR,2025-03-02\n")
    (report,) = processed.run(lake_job, "orders")
    for record, merged, rejected in ((a, 1, 1), (b, 1, 0)):
        done = lake_job.ledger.get(record.file_id)
        assert (done.status, done.rows_merged, done.rows_rejected) == (Status.PROCESSED, merged, rejected)
        assert done.delta_version == report.delta_version and done.batch == 1 and done.pending is None
    assert lake_job.ledger.pending_files("orders") == []
    key = lake_job.lake.rejected_rows("orders", 1)
    import io

    import pyarrow.parquet as pq

    bad = pq.read_table(io.BytesIO(lake_job.s3.get_object(Bucket=lake_job.stage.bucket, Key=key)["Body"].read()))
    assert bad.to_pylist()[0]["_reason"] == "REQUIRED: customer_id is missing" and bad.num_rows == 1


H = b"order_id,customer_id,order_ts,status,total_amount,currency,order_date\n"


def test_cleaning_standardises_timestamps_to_utc_and_amounts(lake_job):
    ingest(
        lake_job,
        "orders",
        "messy.csv",
        H + b'O1, C1 ,2025-03-01T10:00:00Z,placed,"1,234.50",EUR,2025-03-01\n'
        b"O2,C1,2025-03-01 11:00:00+01:00,placed,\xe2\x82\xac12.00,,2025-03-01\n"
        b"O3,C1,2025-03-01 05:00:00-0500,placed,$ 7,EUR,2025-03-01\n"
        b"O4,C1,1740823200,placed,0.005,EUR,2025-03-01\n"
        b"O5,C1,2025-03-01 10:00:00,placed,3,EUR,2025-03-01\n",
    )
    processed.run(lake_job, "orders")
    got = rows(lake_job, "orders")
    assert {r["order_ts"].isoformat() for r in got} == {"2025-03-01T10:00:00+00:00"}
    assert [str(r["total_amount"]) for r in got] == ["1234.50", "12.00", "7.00", "0.01", "3.00"]
    assert got[0]["customer_id"] == "C1" and got[1]["currency"] is None


def test_a_batch_where_every_row_is_bad_merges_nothing_and_rejects_all(lake_job):
    ingest(lake_job, "orders", "bad.csv", H + b"O1,,x,placed,-1,EUR,2025-03-01\nO2,C2,2025-03-01,placed,abc,EUR,nope\n")
    (report,) = processed.run(lake_job, "orders")
    assert report.rows_merged == 0 and report.rows_rejected == 2
    assert report.rejected_by_reason == {"REQUIRED": 1, "TYPE_ERROR": 1}
    assert rows(lake_job, "orders") == []  # the table exists, empty, readable


def test_a_required_column_that_is_all_nulls_rejects_every_row_and_a_nullable_one_is_fine(lake_job):
    ingest(
        lake_job,
        "orders",
        "nulls.csv",
        H + b"O1,C1,2025-03-01T00:00:00Z,,1,,2025-03-01\nO2,C1,2025-03-01T00:00:00Z,,1,,2025-03-01\n",
    )
    (report,) = processed.run(lake_job, "orders")
    assert report.rejected_by_reason == {"REQUIRED": 2}
    ingest(lake_job, "orders", "nulls2.csv", H + b"O3,C1,2025-03-01T00:00:00Z,placed,1,,2025-03-01\n")
    (report,) = processed.run(lake_job, "orders")
    assert report.rows_merged == 1 and rows(lake_job, "orders")[0]["currency"] is None


def test_nothing_pending_is_an_empty_run(lake_job):
    assert processed.run(lake_job, "orders") == []


def test_key_duplicates_keep_the_row_delivered_last(lake_job):
    ingest(
        lake_job,
        "orders",
        "1.csv",
        H + b"O1,C1,2025-03-01T00:00:00Z,placed,1,EUR,2025-03-01\n"
        b"O1,C1,2025-03-01T00:00:00Z,shipped,1,EUR,2025-03-01\n",
    )
    ingest(lake_job, "orders", "2.csv", H + b"O1,C1,2025-03-01T00:00:00Z,delivered,1,EUR,2025-03-01\n")
    (report,) = processed.run(lake_job, "orders")
    assert report.duplicates_dropped == 2 and [r["status"] for r in rows(lake_job, "orders")] == ["delivered"]
    ingest(lake_job, "orders", "3.csv", H + b"O1,C1,2025-03-01T00:00:00Z,returned,1,EUR,2025-03-01\n")
    processed.run(lake_job, "orders")  # a later batch updates the row (MERGE by key)
    assert [r["status"] for r in rows(lake_job, "orders")] == ["returned"]


def test_orphan_items_are_rejected_and_items_of_known_orders_land(lake_job):
    ingest(lake_job, "orders", "o.csv", H + b"O1,C1,2025-03-01T00:00:00Z,placed,1,EUR,2025-03-01\n")
    ingest(
        lake_job,
        "order_items",
        "i.csv",
        b"order_id,product_id,quantity,unit_price,discount,order_date\n"
        b"O1,P1,1,1.00,,2025-03-01\nO9,P1,1,1.00,,2025-03-01\n",
    )
    reports = run_all(lake_job)
    assert reports["order_items"][0].rejected_by_reason == {"ORPHAN": 1}
    assert [r["order_id"] for r in rows(lake_job, "order_items")] == ["O1"]


def test_a_job_killed_before_its_commit_is_finished_by_the_next_run(lake_job, monkeypatch, sample):
    ingest_sample(lake_job, sample)
    real = delta.merge_batch
    monkeypatch.setattr(delta, "merge_batch", lambda *a, **k: (_ for _ in ()).throw(SystemExit("killed")))
    with pytest.raises(SystemExit):
        processed.run(lake_job, "orders")
    assert lake_job.ledger.open_batch("orders").resumed  # the batch is still open, its files still pending
    monkeypatch.setattr(delta, "merge_batch", real)
    (report,) = processed.run(lake_job, "orders")
    assert report.batch == 1 and not report.skipped
    assert report.rows_merged == sample[1]["datasets"]["orders"]["clean_rows"]


def test_a_job_killed_after_its_commit_does_not_merge_twice(lake_job, monkeypatch):
    ingest(lake_job, "orders", "a.csv", H + b"O1,C1,2025-03-01T00:00:00Z,placed,1,EUR,2025-03-01\n")
    real = lake_job.ledger.close_batch
    monkeypatch.setattr(lake_job.ledger, "close_batch", lambda *a, **k: (_ for _ in ()).throw(SystemExit("killed")))
    with pytest.raises(SystemExit):
        processed.run(lake_job, "orders")
    version = delta.open_table(lake_job.lake.processed("orders"), lake_job.lake.storage_options).version()
    monkeypatch.setattr(lake_job.ledger, "close_batch", real)
    (report,) = processed.run(lake_job, "orders")
    assert report.skipped and report.delta_version == version  # the table already had batch 1
    assert len(rows(lake_job, "orders")) == 1
    assert lake_job.ledger.pending_files("orders") == []


def test_rerunning_every_job_leaves_every_table_with_the_same_rows(lake_job, sample):
    ingest_sample(lake_job, sample)
    run_all(lake_job)
    curated.run(lake_job)
    con = duckdb_connection(lake_job.lake)
    names = [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() UNION SELECT view_name FROM duckdb_views() WHERE NOT internal"
        ).fetchall()
    ]
    before = {n: sorted(con.execute(f"SELECT * FROM {n}").fetchall(), key=repr) for n in names}
    # Re-run the same input: reopen every file as if the batches had never closed.
    for dataset in sample[1]["datasets"]:
        ledger = lake_job.ledger
        item = ledger._get(f"batch#{dataset}")
        ledger._update_if(f"batch#{dataset}", {"state": "OPEN"}, {"number": item["number"]})
        reports = processed.run(lake_job, dataset)
        assert all(r.skipped for r in reports)
    curated.run(lake_job)
    con = duckdb_connection(lake_job.lake)
    after = {n: sorted(con.execute(f"SELECT * FROM {n}").fetchall(), key=repr) for n in names}
    assert len(names) == 10 and after == before


def test_curated_tables_aggregate_processed_ones(lake_job):
    ingest(
        lake_job,
        "orders",
        "o.csv",
        H + b"O1,C1,2025-03-01T10:00:00Z,placed,10,EUR,2025-03-01\n"
        b"O2,C1,2025-03-03T10:00:00Z,placed,5,EUR,2025-03-03\n",
    )
    ingest(
        lake_job,
        "order_items",
        "i.csv",
        b"order_id,product_id,quantity,unit_price,discount,order_date\n"
        b"O1,P1,2,4.00,,2025-03-01\nO1,P2,1,2.00,,2025-03-01\nO2,P1,1,5.00,,2025-03-03\n",
    )
    ingest(
        lake_job,
        "products",
        "p.jsonl",
        b'{"product_id":"P1","name":"A","department_id":1,"category":"books",'
        b'"price":4}\n{"product_id":"P2","name":"B","department_id":2,"category":"toys","price":2}\n',
    )
    events = [
        ("E1", "P1", "view", "10:00"),
        ("E2", "P1", "view", "10:10"),
        ("E3", "P1", "add_to_cart", "10:39"),
        ("E4", "P1", "purchase", "11:10"),
        ("E5", "P2", "view", "11:41"),
    ]
    ingest(
        lake_job,
        "clickstream",
        "c.jsonl",
        "".join(
            json.dumps(
                {
                    "event_id": e,
                    "customer_id": "C1",
                    "event_type": t,
                    "product_id": p,
                    "event_ts": f"2025-03-01T{at}:00Z",
                    "event_date": "2025-03-01",
                }
            )
            + "\n"
            for e, p, t, at in events
        ).encode(),
    )
    ingest(
        lake_job,
        "reviews",
        "r.csv",
        b"review_id,product_id,customer_id,rating,review_ts,review_date\n"
        b"R1,P1,C1,4,2025-03-02T00:00:00Z,2025-03-02\nR2,P1,C2,5,2025-03-02T00:00:00Z,2025-03-02\n",
    )
    run_all(lake_job)
    report = {r.table: r.rows for r in curated.run(lake_job)}
    assert report == {
        "daily_sales_by_category": 3,
        "product_performance": 2,
        "customer_summary": 1,
        "clickstream_sessions": 3,
    }
    con = duckdb_connection(lake_job.lake)
    sales = con.execute(
        "SELECT order_date::VARCHAR, category, orders, units, revenue::VARCHAR "
        "FROM curated_daily_sales_by_category ORDER BY 1, 2"
    ).fetchall()
    assert sales == [
        ("2025-03-01", "books", 1, 2, "8.00"),
        ("2025-03-01", "toys", 1, 1, "2.00"),
        ("2025-03-03", "books", 1, 1, "5.00"),
    ]
    p1 = con.execute(
        "SELECT views, add_to_carts, purchases, conversion_rate, average_rating, revenue::VARCHAR "
        "FROM curated_product_performance WHERE product_id = 'P1'"
    ).fetchone()
    assert p1 == (2, 1, 1, 0.5, 4.5, "13.00")
    customer = con.execute("SELECT orders, lifetime_value::VARCHAR FROM curated_customer_summary").fetchone()
    assert customer == (2, "15.00")
    # 10:00, 10:10, 10:39 (29 min gap), 11:10 (31 min gap: new session), 11:41 (31 min: another)
    sessions = con.execute("SELECT session_number, events FROM curated_clickstream_sessions ORDER BY 1").fetchall()
    assert sessions == [(1, 3), (2, 1), (3, 1)]


def test_two_jobs_for_one_dataset_at_once_merge_each_file_once(lake_job, settings):
    import threading

    from lakehouse_etl.processed import Job

    for i in range(4):
        ingest(
            lake_job,
            "orders",
            f"{i}.csv",
            H + f"O{i},C1,2025-03-0{i + 1}T00:00:00Z,placed,1,EUR,2025-03-0{i + 1}\n".encode(),
        )
    errors, reports = [], []

    def job_run():
        try:  # each thread is its own job run, with its own clients
            reports.extend(processed.run(Job.for_stage(settings, "local"), "orders", max_files=2))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=job_run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(r["order_id"] for r in rows(lake_job, "orders")) == ["O0", "O1", "O2", "O3"]
    done = [lake_job.ledger.get(r.file_id) for r in lake_job.ledger.files()]
    assert all(r.status == Status.PROCESSED and r.rows_merged == 1 for r in done)
    assert sorted({r.batch for r in done}) == [1, 2]  # two batches of two files, whoever ran them


def test_a_file_deleted_before_its_etl_is_marked_gone_and_does_not_stall_the_batch(lake_job):
    gone = ingest(lake_job, "orders", "a.csv", H + b"O1,C1,2025-03-01T00:00:00Z,placed,1,EUR,2025-03-01\n")
    kept = ingest(lake_job, "orders", "b.csv", H + b"O2,C1,2025-03-01T00:00:00Z,placed,1,EUR,2025-03-01\n")
    lake_job.s3.delete_object(Bucket=gone.bucket, Key=gone.key, VersionId=gone.version_id)
    (report,) = processed.run(lake_job, "orders")
    assert report.files == 1 and [r["order_id"] for r in rows(lake_job, "orders")] == ["O2"]
    assert lake_job.ledger.get(gone.file_id).status == Status.GONE
    assert lake_job.ledger.get(kept.file_id).status == Status.PROCESSED


def test_merge_works_for_integer_partitions_and_for_unpartitioned_tables(lake_job):
    def product(pid, dept, price):
        return json.dumps({"product_id": pid, "name": "n", "department_id": dept, "category": "c", "price": price})

    ingest(lake_job, "products", "1.jsonl", (product("P1", 1, 2) + "\n" + product("P2", 2, 3) + "\n").encode())
    processed.run(lake_job, "products")
    ingest(lake_job, "products", "2.jsonl", (product("P1", 1, 5) + "\n" + product("P3", 3, 1) + "\n").encode())
    (report,) = processed.run(lake_job, "products")
    assert report.metrics["num_target_files_skipped_during_scan"] + report.metrics["num_target_files_scanned"] >= 1
    assert {r["product_id"]: str(r["price"]) for r in rows(lake_job, "products")} == {
        "P1": "5.00",
        "P2": "3.00",
        "P3": "1.00",
    }
    header = b"customer_id,email,full_name,country,signup_date\n"
    ingest(lake_job, "customers", "1.csv", header + b"C1,a@x,A,DE,2024-01-01\nC2,b@x,B,FR,2024-01-02\n")
    processed.run(lake_job, "customers")
    ingest(lake_job, "customers", "2.csv", header + b"C1,new@x,A,DE,2024-01-01\n")
    processed.run(lake_job, "customers")
    assert {r["customer_id"]: r["email"] for r in rows(lake_job, "customers")} == {"C1": "new@x", "C2": "b@x"}
