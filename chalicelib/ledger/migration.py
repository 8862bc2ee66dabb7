"""Bring a ledger table made by an earlier release to today's indexes, without losing a record.

Issue 15 re-keyed the time index from (`kind`, `received_at`) to the sharded (`time_key`, `received_at`) but kept its
name, `by_received_at`: a table made before kept the old key, every Query on `time_key` failed, and its items had
no `time_key`. DynamoDB cannot change an index's key schema, and UpdateTable creates or deletes one global
secondary index per call (DynamoDB API reference, UpdateTable and GlobalSecondaryIndexUpdate). So the index has a
new name (`by_time_key`) and a table is moved over in steps, each waited for and each safe to run again:

1. create every declared index the table lacks, one UpdateTable each, and wait until it is ACTIVE;
2. write `time_key` on every item listed by time that has none (Scan pages; one conditional update per item, so a
   migration that stopped half-way is finished by the next run, and an item rewritten meanwhile is left alone);
3. delete the old `by_received_at` index, and wait until it is gone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chalicelib.errors import LedgerError
from chalicelib.ledger.dynamodb import BY_TIME_INDEX, LEDGER_INDEXES, LEDGER_TABLE_SPEC, time_key

if TYPE_CHECKING:
    from types_boto3_dynamodb import DynamoDBClient
    from types_boto3_dynamodb.type_defs import GlobalSecondaryIndexDescriptionTypeDef

LEGACY_TIME_INDEX = "by_received_at"  # keyed (kind, received_at) before issue 15, (time_key, received_at) after
POLL_SECONDS = 10.0  # a new index on a large table backfills for minutes to hours ("Adding a GSI", DynamoDB guide)
WAIT_SECONDS = 6 * 3600.0


def needed_steps(dynamodb: DynamoDBClient, table: str) -> list[str]:
    """What `migrate` would do to `table`, from its description alone (no scan): [] when nothing, or when the table
    does not exist yet (provisioning creates it with today's indexes)."""
    from botocore.exceptions import ClientError

    try:
        indexes = _indexes(dynamodb, table)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ResourceNotFoundException":
            return []
        raise
    steps = [f"create index {i['IndexName']}" for i in LEDGER_INDEXES if i["IndexName"] not in indexes]
    if BY_TIME_INDEX not in indexes or LEGACY_TIME_INDEX in indexes:
        steps.append("write time_key on the items listed by time")
    if LEGACY_TIME_INDEX in indexes:
        steps.append(f"delete index {LEGACY_TIME_INDEX}")
    return steps


def migrate(
    dynamodb: DynamoDBClient,
    table: str,
    *,
    progress: Callable[[str], None] = lambda _: None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[str]:
    """Run the steps `needed_steps` names, in order; returns what was done ([] for a table already current)."""
    done: list[str] = []
    indexes = _indexes(dynamodb, table)
    backfill = BY_TIME_INDEX not in indexes or LEGACY_TIME_INDEX in indexes
    for index in LEDGER_INDEXES:
        if index["IndexName"] in indexes:
            continue
        progress(f"ledger table {table}: creating index {index['IndexName']}")
        _wait(dynamodb, table, _settled, sleep, "settle before an index change")
        dynamodb.update_table(
            TableName=table,
            AttributeDefinitions=LEDGER_TABLE_SPEC["AttributeDefinitions"],
            GlobalSecondaryIndexUpdates=[{"Create": index}],  # one per call: DynamoDB refuses more
        )
        name = index["IndexName"]
        _wait(dynamodb, table, _settled, sleep, f"index {name} to become ACTIVE")
        done.append(f"created index {name}")
    # an index left CREATING by a migration cut short must be ACTIVE before the ledger queries it
    _wait(dynamodb, table, _settled, sleep, "every index to become ACTIVE")
    if backfill:
        written = backfill_time_key(dynamodb, table, progress=progress)
        done.append(f"wrote time_key on {written} items")
    if LEGACY_TIME_INDEX in _indexes(dynamodb, table):
        progress(f"ledger table {table}: deleting index {LEGACY_TIME_INDEX}")
        _wait(dynamodb, table, _settled, sleep, "settle before an index change")
        dynamodb.update_table(
            TableName=table, GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": LEGACY_TIME_INDEX}}]
        )
        _wait(dynamodb, table, lambda have: LEGACY_TIME_INDEX not in have, sleep, f"index {LEGACY_TIME_INDEX} to go")
        done.append(f"deleted index {LEGACY_TIME_INDEX}")
    return done


def backfill_time_key(dynamodb: DynamoDBClient, table: str, *, progress: Callable[[str], None] = lambda _: None) -> int:
    """Write `time_key` on each item that has a `received_at` and no `time_key`; returns how many were written.
    The Scan's filter skips items already done, so a run cut short is resumed by the next from the start."""
    from botocore.exceptions import ClientError

    kwargs: dict[str, Any] = {
        "TableName": table,
        "FilterExpression": "attribute_exists(received_at) AND attribute_not_exists(time_key)",
        "ProjectionExpression": "pk, #kind",
        "ExpressionAttributeNames": {"#kind": "kind"},
        "ConsistentRead": True,
    }
    written = pages = 0
    while True:
        page = dynamodb.scan(**kwargs)
        for item in page.get("Items", []):
            pk, kind = item["pk"]["S"], item.get("kind", {}).get("S")
            if kind is None:
                raise LedgerError(f"ledger table {table}: item {pk} has a received_at but no kind; cannot index it")
            try:
                dynamodb.update_item(
                    TableName=table,
                    Key={"pk": {"S": pk}},
                    UpdateExpression="SET time_key = :k",
                    # an item deleted or written by today's code since the Scan read it is left as it is
                    ConditionExpression="attribute_exists(pk) AND attribute_not_exists(time_key)",
                    ExpressionAttributeValues={":k": {"S": time_key(kind, pk)}},
                )
                written += 1
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
        pages += 1
        progress(f"ledger table {table}: time_key written on {written} items ({pages} scan pages)")
        if "LastEvaluatedKey" not in page:
            return written
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _indexes(dynamodb: DynamoDBClient, table: str) -> dict[str, GlobalSecondaryIndexDescriptionTypeDef]:
    described = dynamodb.describe_table(TableName=table)["Table"]
    return {i["IndexName"]: i for i in described.get("GlobalSecondaryIndexes", [])}


def _active(index: GlobalSecondaryIndexDescriptionTypeDef | None) -> bool:
    # an index is queryable once ACTIVE and done reading the table's existing items
    return index is not None and index.get("IndexStatus") == "ACTIVE" and not index.get("Backfilling", False)


def _settled(indexes: dict[str, GlobalSecondaryIndexDescriptionTypeDef]) -> bool:
    """No index is being created or deleted (a migration cut short may have left one CREATING)."""
    return all(_active(i) for i in indexes.values())


def _wait(
    dynamodb: DynamoDBClient,
    table: str,
    ready: Callable[[dict[str, GlobalSecondaryIndexDescriptionTypeDef]], bool],
    sleep: Callable[[float], None],
    what: str,
) -> None:
    """Poll the table's description until `ready`; botocore has no waiter for an index."""
    for _ in range(int(WAIT_SECONDS / POLL_SECONDS)):
        if ready(_indexes(dynamodb, table)):
            return
        sleep(POLL_SECONDS)
    raise LedgerError(f"ledger table {table}: waited {WAIT_SECONDS / 3600:.0f} h for {what}; run the deploy again")
