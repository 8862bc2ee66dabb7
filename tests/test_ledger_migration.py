"""Defect 1 of issue 27: a ledger table made before the time index was re-keyed (by_received_at on kind +
received_at, items without time_key) is moved to today's indexes by `lakehouse deploy`, one index per UpdateTable,
and the ledger then finds its old records; `lakehouse doctor` says when a stage needs it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.errors import LedgerError
from chalicelib.ledger import DynamoDBLedger, FileRecord, Status
from chalicelib.ledger.dynamodb import BY_TIME_INDEX, LEDGER_INDEXES
from chalicelib.ledger.migration import LEGACY_TIME_INDEX, migrate, needed_steps

OLD_ATTRIBUTES = [
    {"AttributeName": "pk", "AttributeType": "S"},
    {"AttributeName": "kind", "AttributeType": "S"},
    {"AttributeName": "received_at", "AttributeType": "S"},
    {"AttributeName": "pending", "AttributeType": "S"},
]
OLD_INDEXES = [  # the table as `lakehouse deploy` made it before issue 15 (commit 6cd53d2)
    {
        "IndexName": "by_received_at",
        "KeySchema": [
            {"AttributeName": "kind", "KeyType": "HASH"},
            {"AttributeName": "received_at", "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "ALL"},
    },
    {
        "IndexName": "pending_by_dataset",
        "KeySchema": [
            {"AttributeName": "pending", "KeyType": "HASH"},
            {"AttributeName": "received_at", "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "ALL"},
    },
]


def rec(i):
    key = f"raw/orders/{i:03}.csv"
    return FileRecord(file_id=f"lake/{key}#v1", bucket="lake", key=key, version_id="v1", dataset="orders")


def create_old_table(ddb, stage) -> None:
    """The ledger table as a release before the time index was re-keyed made it."""
    ddb.create_table(
        TableName=stage.ledger_table,
        AttributeDefinitions=OLD_ATTRIBUTES,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=OLD_INDEXES,
        BillingMode="PAY_PER_REQUEST",
    )


@pytest.fixture
def old_table(aws_env, stage):
    """A ledger table of the old layout holding 30 files, a run and a quality result, none with a time_key."""
    import boto3

    ddb = boto3.client("dynamodb", region_name="us-east-1")
    create_old_table(ddb, stage)
    ledger = DynamoDBLedger(ddb, stage.ledger_table)
    start = datetime.now(UTC) - timedelta(days=1)
    for i in range(30):
        record = ledger.claim(rec(i), now=start + timedelta(seconds=i)).record
        ledger.finish(record, Status.VALID, md5=str(i))
    run = ledger.begin_run()
    ledger.end_run(run.name, "SUCCEEDED")
    ledger.save_quality(run.name, "orders", {"status": "PASSED", "rows_loaded": 30})
    for item in ddb.scan(TableName=stage.ledger_table)["Items"]:  # what the old code wrote: no time_key
        ddb.update_item(TableName=stage.ledger_table, Key={"pk": item["pk"]}, UpdateExpression="REMOVE time_key")
    return ddb


def test_an_old_ledger_table_is_migrated_one_index_per_update_and_its_old_records_are_found(old_table, stage):
    from botocore.exceptions import ClientError

    ledger = DynamoDBLedger(old_table, stage.ledger_table)
    with pytest.raises((LedgerError, ClientError)):  # today's code on the old table: every listing fails
        ledger.files()
    assert needed_steps(old_table, stage.ledger_table) == [
        f"create index {BY_TIME_INDEX}",
        "write time_key on the items listed by time",
        f"delete index {LEGACY_TIME_INDEX}",
    ]
    updates = []
    old_table.meta.events.register(
        "provide-client-params.dynamodb.UpdateTable",
        lambda params, **_: updates.append(params["GlobalSecondaryIndexUpdates"]),
    )
    done = migrate(old_table, stage.ledger_table)

    assert done == [
        f"created index {BY_TIME_INDEX}",
        "wrote time_key on 32 items",
        f"deleted index {LEGACY_TIME_INDEX}",
    ]
    assert [len(u) for u in updates] == [1, 1]  # UpdateTable creates or deletes one index per call
    indexes = old_table.describe_table(TableName=stage.ledger_table)["Table"]["GlobalSecondaryIndexes"]
    assert sorted(i["IndexName"] for i in indexes) == [BY_TIME_INDEX, "pending_by_dataset"]
    (new,) = [i for i in indexes if i["IndexName"] == BY_TIME_INDEX]
    assert new["KeySchema"] == LEDGER_INDEXES[0]["KeySchema"]
    files = ledger.files()
    assert len(files) == 30 and files[0].key == "raw/orders/029.csv"  # the old records, newest first
    assert ledger.file_counts("2000-01-01") == {"VALID": 30}
    assert [r.status for r in ledger.runs()] == ["SUCCEEDED"]
    assert len(ledger.quality_history("orders")) == 1
    assert needed_steps(old_table, stage.ledger_table) == []
    assert migrate(old_table, stage.ledger_table) == [] and len(updates) == 2  # current: nothing to do


def test_a_migration_cut_short_in_the_backfill_is_finished_by_the_next_run(old_table, stage):
    """The backfill is resumable: a run that died after a few items leaves the old index in place (doctor still
    says so), and the next run writes the rest and deletes it."""
    real, calls = old_table.update_item, []

    def dies_after_five(**kwargs):
        calls.append(kwargs)
        if len(calls) > 5:
            raise RuntimeError("connection reset")
        return real(**kwargs)

    old_table.update_item = dies_after_five
    with pytest.raises(RuntimeError):
        migrate(old_table, stage.ledger_table)
    old_table.update_item = real
    assert needed_steps(old_table, stage.ledger_table) == [
        "write time_key on the items listed by time",
        f"delete index {LEGACY_TIME_INDEX}",
    ]
    assert migrate(old_table, stage.ledger_table) == [
        "wrote time_key on 27 items",
        f"deleted index {LEGACY_TIME_INDEX}",
    ]
    assert len(DynamoDBLedger(old_table, stage.ledger_table).files()) == 30


def test_the_migration_waits_until_the_new_index_is_active_before_it_backfills(old_table, stage):
    """DynamoDB answers CREATING (and Backfilling) for a while after the UpdateTable; moto makes it ACTIVE at once,
    so the description is held back here for two polls."""
    real_describe, seen, slept = old_table.describe_table, [], []

    def describe(**kwargs):
        out = real_describe(**kwargs)
        for index in out["Table"].get("GlobalSecondaryIndexes", []):
            if index["IndexName"] == BY_TIME_INDEX and len(slept) < 2:
                index["IndexStatus"], index["Backfilling"] = "CREATING", True
        seen.append(len(slept))
        return out

    real_scan = old_table.scan
    old_table.describe_table = describe
    old_table.scan = lambda **kw: (slept.append("scan") if len(slept) < 2 else None) or real_scan(**kw)
    migrate(old_table, stage.ledger_table, sleep=lambda s: slept.append(s))
    assert slept[:2] == [10.0, 10.0]  # two polls while CREATING, and no scan before it was ACTIVE


def test_the_migration_gives_up_naming_the_index_that_never_became_active(old_table, stage, monkeypatch):
    from chalicelib.ledger import migration

    monkeypatch.setattr(migration, "WAIT_SECONDS", 30.0)
    real_describe = old_table.describe_table

    def describe(**kwargs):
        out = real_describe(**kwargs)
        for index in out["Table"].get("GlobalSecondaryIndexes", []):
            index["IndexStatus"] = "CREATING" if index["IndexName"] == BY_TIME_INDEX else "ACTIVE"
        return out

    old_table.describe_table = describe
    with pytest.raises(LedgerError, match=f"waited 0 h for index {BY_TIME_INDEX} to become ACTIVE; run the deploy"):
        migrate(old_table, stage.ledger_table, sleep=lambda _: None)


def test_deploy_migrates_an_old_ledger_table(old_table, settings, stage):
    """`lakehouse deploy`'s ensure_ledger_table runs the migration and says what it did."""
    from deploy.provision import ensure_ledger_table

    said = ensure_ledger_table(old_table, stage)
    assert f"exists (created index {BY_TIME_INDEX}, wrote time_key on 32 items" in said, said
    assert len(DynamoDBLedger(old_table, stage.ledger_table).files()) == 30


def test_needed_steps_of_a_stage_without_a_ledger_table_is_nothing(aws_env, stage):
    import boto3

    assert needed_steps(boto3.client("dynamodb", region_name="us-east-1"), stage.ledger_table) == []


def test_doctor_says_a_stage_with_an_old_ledger_table_needs_the_migration(old_table, settings, stage):
    from chalicelib.aws import Clients
    from lakehouse.doctor import run_checks

    checks = {
        c.name: c for c in run_checks(settings, stage, Clients.for_stage(stage), None, python=(3, 12), cli_region=None)
    }
    ledger = checks["ledger table"]
    assert not ledger.ok and ledger.detail == (
        f"{stage.ledger_table} needs a migration (create index {BY_TIME_INDEX}; write time_key on the items listed "
        f"by time; delete index {LEGACY_TIME_INDEX}): lakehouse up runs it"
    )
    migrate(old_table, stage.ledger_table)
    checks = {
        c.name: c for c in run_checks(settings, stage, Clients.for_stage(stage), None, python=(3, 12), cli_region=None)
    }
    assert checks["ledger table"].ok
