import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.errors import FileInProgressError, LedgerError
from chalicelib.ledger import DynamoDBLedger, FileRecord, InMemoryLedger, Status
from chalicelib.pipeline.batching import BatchPolicy


@pytest.fixture(params=["memory", "dynamodb"])
def ledger(request):
    if request.param == "memory":
        return InMemoryLedger(lease_seconds=60)
    provisioned = request.getfixturevalue("provisioned")
    stage = request.getfixturevalue("stage")
    return DynamoDBLedger(provisioned.dynamodb, stage.ledger_table, lease_seconds=60)


def rec(key="raw/orders/a.csv", version="v1"):
    return FileRecord(file_id=f"lake/{key}#{version}", bucket="lake", key=key, version_id=version, dataset="orders")


def test_first_claim_creates_a_received_record_with_a_lease(ledger):
    claim = ledger.claim(rec())
    assert claim.claimed and claim.record.status == Status.RECEIVED and claim.record.lease_token
    stored = ledger.get(rec().file_id)
    assert stored.status == Status.RECEIVED and stored.lease_token == claim.record.lease_token


def test_a_live_lease_makes_a_second_worker_wait(ledger):
    ledger.claim(rec())
    with pytest.raises(FileInProgressError, match="being validated by another worker"):
        ledger.claim(rec())


def test_an_expired_lease_is_taken_over_and_the_old_worker_cannot_finish(ledger):
    first = ledger.claim(rec()).record
    later = datetime.now(UTC) + timedelta(seconds=61)
    second = ledger.claim(rec(), now=later)
    assert second.claimed and second.record.lease_token != first.lease_token
    with pytest.raises(FileInProgressError, match="lease lost"):
        ledger.finish(first, Status.VALID, md5="x")
    done = ledger.finish(second.record, Status.VALID, md5="abc", rows=3)
    assert ledger.get(rec().file_id) == done and done.lease_token is None


def test_a_finished_record_is_reported_as_a_redelivery(ledger):
    record = ledger.claim(rec()).record
    ledger.finish(record, Status.REJECTED, reason_code="EMPTY_FILE", reason="the file is empty")
    claim = ledger.claim(rec())
    assert not claim.claimed and claim.record.status == Status.REJECTED and claim.record.reason_code == "EMPTY_FILE"


def test_content_belongs_to_the_first_claimer_and_is_idempotent_for_it(ledger):
    a, b = rec("raw/orders/a.csv"), rec("raw/orders/b.csv")
    assert ledger.owner_of_content("m") is None
    assert ledger.claim_content("m", a) is None
    assert ledger.claim_content("m", a) is None  # a crashed attempt of the same file retries
    assert ledger.claim_content("m", b) == a.file_id
    assert ledger.owner_of_content("m") == a.file_id


def test_files_are_listed_newest_first_without_content_claims(ledger):
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(5):
        ledger.claim(rec(f"raw/orders/{i}.csv"), now=base + timedelta(minutes=i))
    ledger.claim_content("m", rec("raw/orders/0.csv"))
    keys = [r.key for r in ledger.files()]
    assert keys == [f"raw/orders/{i}.csv" for i in (4, 3, 2, 1, 0)]
    assert [r.key for r in ledger.files(limit=2)] == keys[:2]


def test_only_valid_records_are_marked_announced(ledger):
    record = ledger.finish(ledger.claim(rec()).record, Status.VALID, md5="m")
    assert ledger.mark_announced(record).announced and ledger.get(record.file_id).announced


def test_concurrent_claims_of_one_file_give_exactly_one_owner():
    """The flow relies on atomic conditional writes; the in-memory store models DynamoDB's guarantee.
    (The same race against DynamoDB semantics runs end to end on the local stage.)"""
    ledger = InMemoryLedger()
    results, barrier = [], threading.Barrier(16)

    def worker():
        barrier.wait()
        try:
            results.append(ledger.claim(rec()).claimed)
        except FileInProgressError:
            results.append("busy")

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1 and results.count("busy") == 15


def valid(ledger, key, minute):
    record = ledger.claim(rec(key), now=datetime(2026, 1, 1, 0, minute, tzinfo=UTC)).record
    return ledger.finish(record, Status.VALID, md5=key)


def test_valid_files_wait_as_pending_oldest_first(ledger):
    valid(ledger, "raw/orders/b.csv", 2)
    valid(ledger, "raw/orders/a.csv", 1)
    assert [r.key for r in ledger.pending_files("orders")] == ["raw/orders/a.csv", "raw/orders/b.csv"]
    assert ledger.pending_files("customers") == []


def test_a_batch_is_opened_resumed_and_closed(ledger):
    from chalicelib.ledger import FileResult

    a, b = valid(ledger, "raw/orders/a.csv", 1), valid(ledger, "raw/orders/b.csv", 2)
    batch = ledger.open_batch("orders", limit=1)
    assert (batch.number, batch.files, batch.resumed) == (1, (a.file_id,), False)
    resumed = ledger.open_batch("orders")  # not closed: an interrupted run resumes the same batch
    assert (resumed.number, resumed.files, resumed.resumed) == (1, (a.file_id,), True)
    ledger.close_batch(batch, delta_version=7, results={a.file_id: FileResult(3, 1)})
    done = ledger.get(a.file_id)
    assert (done.status, done.delta_version, done.rows_merged, done.rows_rejected, done.pending) == (
        Status.PROCESSED,
        7,
        3,
        1,
        None,
    )
    ledger.close_batch(batch, delta_version=7, results={})  # closing twice changes nothing
    assert ledger.get(a.file_id).rows_merged == 3
    second = ledger.open_batch("orders")
    assert (second.number, second.files) == (2, (b.file_id,))
    ledger.close_batch(second, delta_version=8, results={})
    assert ledger.open_batch("orders") is None
    assert ledger.claim(rec("raw/orders/a.csv")).claimed is False  # a processed file's redelivery is a no-op


def test_a_batch_stops_at_its_byte_budget_but_takes_at_least_one_file(ledger):
    for i, size in enumerate((600, 600, 600)):
        record = ledger.claim(
            replace(rec(f"raw/orders/{i}.csv"), size=size), now=datetime(2026, 1, 1, 0, i, tzinfo=UTC)
        ).record
        ledger.finish(record, Status.VALID, md5=str(i))
    assert len(ledger.open_batch("orders", take=BatchPolicy(max_bytes=1300).take).files) == 2
    ledger2 = InMemoryLedger()
    big = ledger2.claim(replace(rec("raw/orders/big.csv"), size=10_000)).record
    ledger2.finish(big, Status.VALID, md5="b")
    assert ledger2.open_batch("orders", take=BatchPolicy(max_bytes=100).take).files == (big.file_id,)


def test_a_batch_of_long_file_ids_fits_dynamodbs_item_limit_and_the_rest_wait(ledger):
    """1,000 files of 1 KB keys would make a 1 MB batch item, which DynamoDB (and moto, and the twin) refuses."""
    long = "x" * 1000
    for i in range(300):
        record = ledger.claim(rec(f"raw/orders/{long}{i:04}.csv"), now=datetime(2026, 1, 1, tzinfo=UTC)).record
        ledger.finish(record, Status.VALID, md5=str(i))
    first = ledger.open_batch("orders", take=BatchPolicy(max_files=1000).take)
    assert 150 <= len(first.files) < 250  # 200 KB of ids: the oldest that fit
    assert len(ledger.batch_state("orders")["files"]) == len(first.files)
    ledger.close_batch(first, 1, {})
    second = ledger.open_batch("orders", take=BatchPolicy(max_files=1000).take)
    assert len(second.files) == 300 - len(first.files) and not set(first.files) & set(second.files)
    with pytest.raises(LedgerError, match="Item size has exceeded the maximum allowed size"):
        ledger._put_if_absent({"pk": "batch#too-big", "kind": "batch", "files": [long] * 420})


def test_a_finished_file_can_be_forgotten_with_its_content_claim_but_not_one_waiting_for_a_run(ledger):
    waiting = valid(ledger, "raw/orders/a.csv", 1)
    assert ledger.claim_content(waiting.md5, waiting) is None  # its bytes are claimed: a copy is a DUPLICATE
    assert ledger.claim_content(waiting.md5, rec("raw/orders/copy.csv")) == waiting.file_id
    with pytest.raises(LedgerError, match="waiting for a run: it cannot be forgotten now"):
        ledger.forget(waiting.file_id)
    batch = ledger.open_batch("orders")
    ledger.close_batch(batch, 3, {})
    assert ledger.forget(waiting.file_id) is True and ledger.get(waiting.file_id) is None
    assert ledger.forget(waiting.file_id) is False  # gone already
    assert ledger.claim_content(waiting.md5, rec("raw/orders/again.csv")) is None  # the same bytes: new again


def test_one_active_run_at_a_time_and_runs_are_listed_newest_first(ledger):
    epoch = ledger.epoch()  # the batcher asks for it first (StepFunctions names executions with it)
    first = ledger.begin_run()
    assert first.name == "run-000001" and ledger.begin_run() is None  # one run in flight
    plan = {"run": first.name, "levels": [[{"dataset": "orders", "batch": 1, "job": "j"}]], "crawlers": []}
    assert ledger.save_plan(first, plan, files=3, bytes_=30).status == "RUNNING"
    assert ledger.active_run().plan == plan and ledger.active_run().batches == plan["levels"][0]
    assert ledger.end_run(first.name, "FAILED", "Boom", "why") is True
    assert ledger.end_run(first.name, "SUCCEEDED") is False  # the first outcome stays
    assert ledger.active_run() is None
    second = ledger.begin_run()
    assert second.name == "run-000002"
    assert [(r.name, r.status, r.error) for r in ledger.runs()] == [
        ("run-000002", "PLANNING", None),
        ("run-000001", "FAILED", "Boom"),
    ]
    assert ledger.epoch() == epoch and len(epoch) == 8


def test_a_failed_batch_fails_its_unprocessed_files_and_requeue_brings_them_back(ledger):
    a, b = valid(ledger, "raw/orders/a.csv", 1), valid(ledger, "raw/orders/b.csv", 2)
    batch = ledger.open_batch("orders")
    assert ledger.fail_batch("orders", batch.number + 1, "E", "c") == 0  # not that batch: nothing happens
    assert ledger.fail_batch("orders", batch.number, "States.TaskFailed", "job failed", run="run-000001") == 2
    failed = ledger.get(a.file_id)
    assert (failed.status, failed.reason_code, failed.reason, failed.run, failed.pending) == (
        Status.FAILED,
        "States.TaskFailed",
        "job failed",
        "run-000001",
        None,
    )
    assert ledger.batch_state("orders")["outcome"] == "FAILED" and ledger.open_batch("orders") is None
    assert ledger.claim(rec("raw/orders/a.csv")).claimed is False  # a FAILED file's redelivery is a no-op
    assert ledger.requeue(a.file_id) and not ledger.requeue(a.file_id)
    again = ledger.get(a.file_id)
    assert (again.status, again.pending, again.reason_code) == (Status.VALID, "orders", None)
    assert ledger.open_batch("orders").files == (a.file_id,)
    assert ledger.get(b.file_id).status == Status.FAILED


def test_a_run_named_but_never_recorded_is_recovered_as_planning(ledger):
    ledger._put_if_absent({"pk": "pipeline", "kind": "pipeline", "active": "run-000007", "next": 8})  # crash here
    run = ledger.active_run()
    assert (run.name, run.status, run.plan) == ("run-000007", "PLANNING", None)
    assert ledger.begin_run() is None and ledger.get_run("run-000007").status == "PLANNING"


def test_get_many_reads_a_batch_of_records_in_order(ledger):
    records = [valid(ledger, f"raw/orders/{i:03d}.csv", i % 60) for i in range(130)]  # over one BatchGetItem
    ids = [r.file_id for r in reversed(records)] + ["lake/raw/orders/missing.csv#v1"]
    got = ledger.get_many(ids)
    assert [r.file_id for r in got] == ids[:-1]
    assert all(r.status == Status.VALID for r in got)


def test_a_limited_listing_reads_only_that_many_items_from_dynamodb(provisioned, stage):
    """The status API lists the newest files and runs: DynamoDB must not read (and bill) the whole kind. The files
    are spread over FILE_SHARDS keys of the time index; each shard gives at most its newest `limit`."""
    from chalicelib.ledger.dynamodb import FILE_SHARDS

    ledger = DynamoDBLedger(provisioned.dynamodb, stage.ledger_table)
    for i in range(200):
        ledger.claim(rec(key=f"raw/orders/{i:03}.csv"), now=datetime.now(UTC) + timedelta(seconds=i))
    counts = []
    provisioned.dynamodb.meta.events.register(
        "after-call.dynamodb.Query", lambda parsed, **_: counts.append(parsed["ScannedCount"])
    )
    assert [r.key for r in ledger.files(limit=5)] == [f"raw/orders/{i:03}.csv" for i in range(199, 194, -1)]
    assert len(counts) == FILE_SHARDS and max(counts) == 5 and sum(counts) <= FILE_SHARDS * 5 < 200


def test_the_time_index_spreads_files_over_shards_and_projects_only_keys_and_status(provisioned, stage):
    """A burst of files must not land on one partition of the index; the index holds what its queries read."""
    from chalicelib.ledger.dynamodb import BY_TIME_INDEX, FILE_SHARDS

    ledger = DynamoDBLedger(provisioned.dynamodb, stage.ledger_table)
    for i in range(64):
        ledger.claim(rec(key=f"raw/orders/{i:03}.csv"))
    items = provisioned.dynamodb.scan(TableName=stage.ledger_table)["Items"]
    shards = {i["time_key"]["S"] for i in items if i["kind"]["S"] == "file"}
    assert len(shards) > FILE_SHARDS // 2 and all(s.startswith("file#") for s in shards)
    table = provisioned.dynamodb.describe_table(TableName=stage.ledger_table)["Table"]
    (index,) = [i for i in table["GlobalSecondaryIndexes"] if i["IndexName"] == BY_TIME_INDEX]
    assert index["Projection"] == {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["status"]}
    assert ledger.file_counts("2000-01-01") == {"RECEIVED": 64}  # read from the index alone, over every shard
    assert len(ledger.files()) == 64


def test_unprocessed_keys_are_asked_again_with_backoff_and_a_table_that_stays_throttled_is_an_error(monkeypatch):
    """BatchGetItem hands throttled keys back in a 200 (botocore does not retry those): the ledger backs off and
    asks again, a bounded number of times."""
    from chalicelib.errors import LedgerError
    from chalicelib.ledger import dynamodb

    pauses = []
    monkeypatch.setattr(dynamodb.time, "sleep", pauses.append)

    class Ddb:
        def __init__(self, throttled):
            self.throttled = throttled

        def batch_get_item(self, RequestItems):
            keys = RequestItems["t"]["Keys"]
            if self.throttled:
                self.throttled -= 1
                return {"Responses": {"t": []}, "UnprocessedKeys": {"t": {"Keys": keys}}}
            return {"Responses": {"t": [{"pk": k["pk"]} for k in keys]}}

    assert len(DynamoDBLedger(Ddb(2), "t")._get_many(["a", "b"])) == 2
    assert len(pauses) == 2 and pauses[1] > pauses[0] * 0.3  # it waited, longer the second time (with jitter)
    with pytest.raises(LedgerError, match="2 keys still unprocessed after 10 BatchGetItem attempts"):
        DynamoDBLedger(Ddb(99), "t")._get_many(["a", "b"])


class LaggingIndex(InMemoryLedger):
    """A ledger whose pending index lags behind its items, as a DynamoDB GSI may: it still lists what it listed
    before the latest writes."""

    def __init__(self):
        super().__init__(lease_seconds=60)
        self.stale: list[dict] = []

    def _pending(self, dataset, limit):
        fresh = super()._pending(dataset, limit)
        listed = {i["pk"] for i in fresh}
        merged = sorted(fresh + [i for i in self.stale if i["pk"] not in listed], key=lambda i: i["received_at"])
        return merged[:limit] if limit else merged


def test_a_file_the_lagging_index_still_lists_as_pending_is_not_batched_again():
    from chalicelib.ledger import FileResult

    ledger = LaggingIndex()
    a, b = valid(ledger, "raw/orders/a.csv", 1), valid(ledger, "raw/orders/b.csv", 2)
    ledger.stale = ledger._pending("orders", None)  # the index as it was before the first batch closed
    first = ledger.open_batch("orders", limit=1)
    ledger.close_batch(first, delta_version=1, results={a.file_id: FileResult(1, 0)})
    assert {i["pk"] for i in ledger._pending("orders", None)} >= {i["pk"] for i in ledger.stale}  # a still listed
    second = ledger.open_batch("orders")
    assert second.files == (b.file_id,)  # a, closed moments ago, is read again and left out
    assert [r.file_id for r in ledger.pending_files("orders")] == [b.file_id]
