"""One contract, two engines: the batch step's SQL, written once for DuckDB, rendered as Spark SQL and run on Sail
(a Spark Connect server), gives the same rows, types, rejects and reasons; a Delta table written by one engine is
merged by the other and read by both."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from lakehouse_etl import delta, spark
from lakehouse_etl.sources import _csv, _jsonl, conform, with_lineage
from lakehouse_etl.transform import clean, table_schema

from lakehouse.generate import generate

ORDER = ("customers", "products", "orders", "order_items", "clickstream", "reviews")  # parents first


@pytest.fixture(scope="module")
def session(sail):
    return sail


def _batch(path, contract) -> pa.Table:
    """A file's rows as the job reads them: strings, the contract's columns, lineage."""
    blocks = _jsonl(path, contract, None) if path.name.endswith(".jsonl") else _csv(path, contract)
    return pa.Table.from_batches([with_lineage(conform(b, contract), 0) for b in blocks])


def _sorted(table: pa.Table, by: list[str]) -> list[dict]:
    return table.sort_by([(c, "ascending") for c in by]).to_pylist()


def test_the_batch_step_gives_the_same_rows_rejects_and_reasons_on_both_engines(session, settings, tmp_path):
    manifest = generate(tmp_path, orders=1500, anomaly_rate=0.03, seed=11)
    kept: dict[str, pa.Table] = {}
    for name in ORDER:
        contract = settings.datasets[name]
        batch = _batch(tmp_path / manifest["datasets"][name]["file"], contract)
        parents = {fk: (kept[parent], column) for fk, (parent, column) in contract.foreign_keys.items()}
        with clean(batch, contract, parents, [f"{name}#1"]) as duck:
            rows, rejected = duck.rows.reader().read_all(), duck.rejected.reader().read_all()
            dropped = duck.duplicates_dropped
        on_spark = spark.clean(
            session,
            session.spark.createDataFrame(batch),
            contract,
            {fk: (session.spark.createDataFrame(t), c) for fk, (t, c) in parents.items()},
            [f"{name}#1"],
        )
        spark_rows, spark_rejected = on_spark.rows.toArrow(), on_spark.rejected.toArrow()
        assert spark_rows.schema.types == rows.schema.types, name
        assert _sorted(spark_rows, list(contract.primary_key)) == _sorted(rows, list(contract.primary_key)), name
        assert _sorted(spark_rejected, ["_row"]) == _sorted(rejected, ["_row"]), name
        assert on_spark.duplicates_dropped == dropped, name
        planted = manifest["datasets"][name]["rejected_by_reason"]
        assert dict(Counter(spark_rejected.column("_reason_code").to_pylist())) == planted, name
        kept[name] = rows


def _orders(ids: list[str], days: list[date], amount: str = "1.00") -> pa.Table:
    from decimal import Decimal

    n = len(ids)
    return pa.table(
        {
            "order_id": ids,
            "customer_id": ["C1"] * n,
            "order_ts": pa.array([datetime(2026, 11, 1, 9, tzinfo=UTC)] * n, pa.timestamp("us", tz="UTC")),
            "status": ["placed"] * n,
            "total_amount": pa.array([Decimal(amount)] * n, pa.decimal128(12, 2)),
            "currency": ["EUR"] * n,
            "order_date": pa.array(days, pa.date32()),
            "_source_file": ["f"] * n,
        }
    )


def test_a_table_written_by_one_engine_is_merged_by_the_other_and_read_by_both(session, settings, tmp_path):
    """delta-rs makes the processed table; Spark merges a batch into it (O2 updated, O3 moved to another day: one
    row for it, not two; O4 new); delta-rs merges the next. A second MERGE of a batch already in the table changes
    nothing. With the change data feed on (as processed/ tables are), Sail cannot write the table and delta-rs
    commits Spark's staged rows; without it, Spark's own MERGE (what Glue runs) writes it and both engines read it.
    (Sail 0.7.2 cannot read the files delta-rs 1.6's MERGE writes: docs/etl.md, "The Spark engine".)"""
    contract = settings.datasets["orders"]
    update = _orders(["O2", "O3", "O4"], [date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 2)], "9.00")
    expected = {
        "O1": (date(2026, 11, 1), "1.00"),
        "O2": (date(2026, 11, 1), "9.00"),
        "O3": (date(2026, 11, 2), "9.00"),
        "O4": (date(2026, 11, 2), "9.00"),
    }
    for name, change_feed in (("orders", True), ("plain", False)):
        uri = str(tmp_path / name)
        first = _orders(["O1", "O2", "O3"], [date(2026, 11, 1)] * 3)
        delta.merge_batch(uri, contract, first, app_id="processed/orders", version=1, storage_options={})
        if not change_feed:
            DeltaTable(uri).alter.set_table_properties({"delta.enableChangeDataFeed": "false"})
        rows = session.spark.createDataFrame(update).select(*table_schema(contract).names)
        merge = dict(app_id="processed/orders", version=2, storage_options={}, scratch=str(tmp_path / f"s-{name}"))
        assert spark.merge(session, uri, contract, rows, **merge)
        version = DeltaTable(uri).version()
        assert not spark.merge(session, uri, contract, rows, **merge)  # the re-run of a committed batch
        assert DeltaTable(uri).version() == version, name
        by_delta_rs = {
            r["order_id"]: (r["order_date"], str(r["total_amount"])) for r in delta.read(uri, {}).to_pylist()
        }
        assert by_delta_rs == expected, name
        if not change_feed:  # Spark's own MERGE wrote it: Spark reads it too, and the batch is named in the log
            read = session.spark.sql(f"SELECT order_id, order_date FROM delta.`{uri}`").collect()
            assert {r["order_id"]: r["order_date"] for r in read} == {k: v[0] for k, v in expected.items()}
            assert spark.committed(DeltaTable(uri), "processed/orders#2", {})
        # and back: delta-rs merges what Spark wrote
        later = _orders(["O4"], [date(2026, 11, 1)], "5.00")
        delta.merge_batch(uri, contract, later, app_id="processed/orders", version=3, storage_options={})
        final = {r["order_id"]: (r["order_date"], str(r["total_amount"])) for r in delta.read(uri, {}).to_pylist()}
        assert final == {**expected, "O4": (date(2026, 11, 1), "5.00")}, name
        batches = {r["order_id"]: r["_batch"] for r in delta.read(uri, {}).to_pylist()}
        assert batches == {"O1": 1, "O2": 2, "O3": 2, "O4": 3}, name  # each engine stamps the batch that wrote a row


def test_the_spark_engine_processes_the_sample_set_on_the_local_stage(lake_job, session, tmp_path):
    """The whole dataset job on Spark (Sail) against the local stage: every planted anomaly rejected with its
    reason and count, the rejected rows where the single-node engine puts them (same columns), the clean rows in
    processed/, the ledger's files PROCESSED; a re-run of the batch merges nothing."""
    from lakehouse_etl import processed
    from test_etl import ingest

    from chalicelib.config import dataset_order

    manifest = generate(tmp_path, orders=300, anomaly_rate=0.06, seed=11)
    for dataset, planted in manifest["datasets"].items():
        ingest(lake_job, dataset, planted["file"], (tmp_path / planted["file"]).read_bytes())
    for dataset in dataset_order(lake_job.settings):
        planted = manifest["datasets"][dataset]
        (report,) = processed.run(lake_job, dataset, engine=session)
        assert report.rejected_by_reason == planted["rejected_by_reason"], dataset
        assert (report.rows_read, report.rows_merged) == (planted["rows_written"], planted["clean_rows"]), dataset
        assert report.duplicates_dropped == planted["duplicates"], dataset
        table = delta.read(lake_job.lake.processed(dataset), lake_job.lake.storage_options)
        assert table.num_rows == planted["clean_rows"], dataset
        assert table.schema.names[-2:] == ["_source_file", "_batch"], dataset
        assert set(table.column("_batch").to_pylist()) == {report.batch}, dataset  # stamped as the other engine does
        if planted["rejected_by_reason"]:
            key = lake_job.lake.rejected_rows(dataset, report.batch)
            body = lake_job.s3.get_object(Bucket=lake_job.stage.bucket, Key=key)["Body"].read()
            import io

            import pyarrow.parquet as pq

            columns = pq.read_schema(io.BytesIO(body)).names
            assert columns == [
                *lake_job.settings.datasets[dataset].column_names,
                "_reason_code",
                "_reason",
                "_source_file",
                "_row",
            ], dataset
        assert processed.run_batch(lake_job, dataset, report.batch, engine=session) == []  # closed: nothing to do
    statuses = {r.status for r in lake_job.ledger.files()}
    assert statuses == {"PROCESSED"}


@pytest.mark.e2e
def test_lakehouse_run_engine_spark_runs_the_batch_on_spark_on_the_local_stage(tmp_path):
    """`lakehouse run --engine spark`: the plan names each dataset's Spark job, the local stage runs it on Sail,
    and the rows are in processed/ for SQL, as after a single-node run."""
    from test_local_stage import H, R, lakehouse

    home = tmp_path / "home"
    lakehouse(home, "up")
    try:
        for name, row in (("a.csv", R), ("b.csv", R.replace(b"O1", b"O2"))):
            (tmp_path / name).write_bytes(H + row)
            lakehouse(home, "drop", str(tmp_path / name), "--dataset", "orders")
        ran = lakehouse(home, "run", "--engine", "spark")
        assert "engine orders: spark (lakehouse run --engine)" in ran.stdout and "SUCCEEDED" in ran.stdout, ran.stdout
        (execution,) = json.loads(lakehouse(home, "executions", "run-000001", "--json").stdout)
        jobs = [r["JobName"] for r in execution["glue_runs"]]
        assert jobs == ["lakehouse-local-spark-orders", "lakehouse-local-master-merge"], jobs
        assert (execution["glue_runs"][0]["WorkerType"], execution["glue_runs"][0]["NumberOfWorkers"]) == ("G.1X", 2)
        counted = lakehouse(home, "query", "SELECT count(*) AS n FROM processed_orders", "--format", "json")
        assert json.loads(counted.stdout) == [{"n": 2}]
    finally:
        lakehouse(home, "down", "--discard")


class Killed(BaseException):
    """The job's process dying: nothing after it runs, not even `except Exception`."""


@pytest.mark.parametrize("kill", ["before the commit", "after the commit, before the ledger"])
def test_a_spark_job_killed_half_way_and_run_again_ends_with_the_same_rows(lake_job, session, monkeypatch, kill):
    """A Spark batch job dies at either side of its Delta commit; Glue's retry (the batch is still OPEN in the
    ledger) finishes it: the same rows as one clean run, the commit made once, the files PROCESSED with their
    counts."""
    from lakehouse_etl import processed
    from test_etl import ingest

    from chalicelib.ledger import Status

    body = b"order_id,customer_id,order_ts,status,total_amount,currency,order_date\n" + b"".join(
        f"O{i},C1,2026-11-0{1 + i % 3}T09:00:00Z,placed,{i}.50,EUR,2026-11-0{1 + i % 3}\n".encode() for i in range(30)
    )
    ingest(lake_job, "orders", "o.csv", body)
    uri, options = lake_job.lake.processed("orders"), lake_job.lake.storage_options
    where = (spark, "merge") if kill == "before the commit" else (processed, "close")
    real = getattr(*where)

    def dies(*args, **kwargs):  # after the commit: merge has run, the ledger is never told
        raise Killed(kill)

    monkeypatch.setattr(*where, dies)
    with pytest.raises(Killed):
        processed.run(lake_job, "orders", engine=session)
    committed = None
    if kill != "before the commit":  # the rows are in the table; the ledger's batch is still OPEN
        committed = DeltaTable(uri, storage_options=options).version()
        assert delta.read(uri, options).num_rows == 30
    assert lake_job.ledger.batch_state("orders")["state"] == "OPEN"
    monkeypatch.setattr(*where, real)
    (report,) = processed.run(lake_job, "orders", engine=session)  # the retry resumes the OPEN batch
    assert report.batch == 1 and report.rows_merged == 30
    table = delta.read(uri, options)
    assert sorted(table.column("order_id").to_pylist()) == sorted(f"O{i}" for i in range(30))
    if committed is not None:  # the batch was in the table: the retry found it and did not merge it again
        assert DeltaTable(uri, storage_options=options).version() == committed
    (record,) = lake_job.ledger.files()
    assert (record.status, record.rows_merged) == (Status.PROCESSED, 30)
