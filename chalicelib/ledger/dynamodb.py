"""The ledger in one DynamoDB table: conditional writes, as on AWS."""

from __future__ import annotations

import heapq
import random
import time
import zlib
from typing import TYPE_CHECKING, Any

from chalicelib.errors import LedgerError
from chalicelib.ledger.base import Ledger

if TYPE_CHECKING:
    from types_boto3_dynamodb import DynamoDBClient
    from types_boto3_dynamodb.type_defs import BatchGetItemOutputTypeDef, GlobalSecondaryIndexTypeDef

    from chalicelib.config import Stage

# Named anew when its key became time_key: DynamoDB cannot re-key an index in place (ledger.migration)
BY_TIME_INDEX = "by_time_key"
PENDING_INDEX = "pending_by_dataset"  # sparse: only VALID files waiting for their processed/ job
# The time index's partition key is `<kind>#<shard>`: every file under one key would send a burst to one partition
# of the index, throttle it and, through it, the table's writes ("Using write sharding to distribute workloads
# evenly", DynamoDB Developer Guide). Runs and quality results are few: one shard each.
FILE_SHARDS = 16


def time_keys(kind: str) -> list[str]:
    """Every partition key of `kind` in the time index (one per shard)."""
    return [f"{kind}#{shard}" for shard in range(FILE_SHARDS if kind == "file" else 1)]


def time_key(kind: str, pk: str) -> str:
    """The time index's partition key of an item: a file's shard follows from its key (stable, spread evenly)."""
    keys = time_keys(kind)
    return keys[zlib.crc32(pk.encode()) % len(keys)]


UNPROCESSED_ATTEMPTS = 10  # BatchGetItem calls for one chunk of keys before a throttled table is an error


class DynamoDBLedger(Ledger):
    """The ledger in one DynamoDB table (`pk` string key; GSI `by_time_key` on the sharded kind + received_at,
    GSI `pending_by_dataset` on pending + received_at; both project keys (and `status`) only: reads of whole items
    go to the table, consistently, by key)."""

    def __init__(self, dynamodb: DynamoDBClient, table: str, lease_seconds: int = 960) -> None:
        super().__init__(lease_seconds)
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        self.ddb, self.table = dynamodb, table
        self._ser, self._de = TypeSerializer(), TypeDeserializer()

    def _to_ddb(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: self._ser.serialize(v) for k, v in item.items() if v is not None}

    def _from_ddb(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: self._de.deserialize(v) for k, v in item.items()}

    def _call(self, op: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.ddb, op)(TableName=self.table, **kwargs)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise
            raise LedgerError(f"Failed to {op} on ledger table {self.table}: {exc}") from exc
        except BotoCoreError as exc:
            raise LedgerError(f"Failed to {op} on ledger table {self.table}: {exc}") from exc

    def _put_if_absent(self, item: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        if "received_at" in item:  # listed by time: file, run, quality result
            item = {**item, "time_key": time_key(item["kind"], item["pk"])}
        try:
            self._call(
                "put_item",
                Item=self._to_ddb(item),
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return None
        except ClientError as exc:  # only ConditionalCheckFailed reaches here; it carries the old item
            old = exc.response.get("Item")
            return self._from_ddb(old) if isinstance(old, dict) and old else self._get(item["pk"])

    def _bind(
        self, prefix: str, attributes: dict[str, Any], names: dict[str, str], values: dict[str, Any]
    ) -> list[tuple[str, str | None]]:
        """Placeholders for `attributes` in an expression: (name placeholder, value placeholder or None for a None
        value), the names and values added to `names` and `values`."""
        bound: list[tuple[str, str | None]] = []
        for i, (k, v) in enumerate(attributes.items()):
            names[f"#{prefix}{i}"] = k
            if v is not None:
                values[f":{prefix}{i}"] = self._ser.serialize(v)
            bound.append((f"#{prefix}{i}", None if v is None else f":{prefix}{i}"))
        return bound

    def _update_if(self, pk: str, updates: dict[str, Any], expect: dict[str, Any]) -> bool:
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        bound = self._bind("u", updates, names, values)
        sets = [f"{name} = {value}" for name, value in bound if value]
        removes = [name for name, value in bound if value is None]
        expression = " ".join(
            part
            for part in ("SET " + ", ".join(sets) if sets else "", "REMOVE " + ", ".join(removes) if removes else "")
            if part
        )
        return self._write_if("update_item", pk, expect, names, values, UpdateExpression=expression)

    def _delete_if(self, pk: str, expect: dict[str, Any]) -> bool:
        return self._write_if("delete_item", pk, expect, {}, {})

    def _write_if(
        self, op: str, pk: str, expect: dict[str, Any], names: dict[str, str], values: dict[str, Any], **more: Any
    ) -> bool:
        """One conditional write of item `pk`: it must exist and every `expect` attribute equal its value (None:
        be absent); False when it does not."""
        from botocore.exceptions import ClientError

        conds = ["attribute_exists(pk)"]
        for name, value in self._bind("c", expect, names, values):
            conds.append(f"attribute_not_exists({name})" if value is None else f"{name} = {value}")
        kwargs: dict[str, Any] = {"Key": {"pk": {"S": pk}}, "ConditionExpression": " AND ".join(conds), **more}
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if values:
            kwargs["ExpressionAttributeValues"] = values
        try:
            self._call(op, **kwargs)
            return True
        except ClientError:
            return False

    def _get(self, pk: str) -> dict[str, Any] | None:
        item = self._call("get_item", Key={"pk": {"S": pk}}, ConsistentRead=True).get("Item")
        return self._from_ddb(item) if item else None

    def _get_many(self, pks: list[str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for start in range(0, len(pks), 100):  # BatchGetItem takes 100 keys
            request: dict[str, Any] = {
                self.table: {"Keys": [{"pk": {"S": pk}} for pk in pks[start : start + 100]], "ConsistentRead": True}
            }
            for attempt in range(UNPROCESSED_ATTEMPTS):
                page = self._call_batch_get(request)
                out.extend(self._from_ddb(i) for i in page.get("Responses", {}).get(self.table, []))
                request = page.get("UnprocessedKeys") or {}
                if not request:
                    break
                # Throttled keys come back inside a 200, where botocore's retry modes do not look: back off by hand,
                # with jitter, as the DynamoDB guide asks for BatchGetItem's UnprocessedKeys.
                time.sleep(min(5.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.5))
            else:
                raise LedgerError(
                    f"ledger table {self.table}: {len(request[self.table]['Keys'])} keys still unprocessed after "
                    f"{UNPROCESSED_ATTEMPTS} BatchGetItem attempts (throttled)"
                )
        return out

    def _call_batch_get(self, request: dict[str, Any]) -> BatchGetItemOutputTypeDef:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self.ddb.batch_get_item(RequestItems=request)
        except (ClientError, BotoCoreError) as exc:
            raise LedgerError(f"Failed to batch_get_item on ledger table {self.table}: {exc}") from exc

    def _newest(self, kind: str, limit: int | None) -> list[dict[str, Any]]:
        """The newest keys of each shard, merged newest first; then the items themselves from the table."""
        shards = [
            self._query(BY_TIME_INDEX, "time_key", key, newest_first=True, limit=limit) for key in time_keys(kind)
        ]
        newest = list(heapq.merge(*shards, key=lambda i: i["received_at"], reverse=True))[:limit]
        items = {i["pk"]: i for i in self._get_many([i["pk"] for i in newest])}
        return [items[i["pk"]] for i in newest if i["pk"] in items]

    def _pending(self, dataset: str, limit: int | None) -> list[dict[str, Any]]:
        return self._query(PENDING_INDEX, "pending", dataset, newest_first=False, limit=limit)

    def _statuses_since(self, kind: str, since: str) -> list[str]:
        out = []
        for key in time_keys(kind):
            kwargs: dict[str, Any] = {
                "IndexName": BY_TIME_INDEX,
                "KeyConditionExpression": "#k = :v AND received_at >= :since",
                "ProjectionExpression": "#s",
                "ExpressionAttributeNames": {"#k": "time_key", "#s": "status"},
                "ExpressionAttributeValues": {":v": {"S": key}, ":since": {"S": since}},
            }
            while True:
                page = self._call("query", **kwargs)
                out += [i["status"]["S"] for i in page.get("Items", []) if "status" in i]
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return out

    def _received_since(self, since: str) -> list[str]:
        out: list[str] = []
        for key in time_keys("file"):
            kwargs: dict[str, Any] = {
                "IndexName": BY_TIME_INDEX,
                "KeyConditionExpression": "#k = :v AND received_at >= :since",
                "FilterExpression": "#s = :received",  # read from the index (it projects the status), not the table
                "ProjectionExpression": "pk",
                "ExpressionAttributeNames": {"#k": "time_key", "#s": "status"},
                "ExpressionAttributeValues": {
                    ":v": {"S": key},
                    ":since": {"S": since},
                    ":received": {"S": "RECEIVED"},
                },
            }
            while True:
                page = self._call("query", **kwargs)
                out += [i["pk"]["S"] for i in page.get("Items", [])]
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return out

    def _query(
        self, index: str, key: str, value: str, *, newest_first: bool, limit: int | None
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "IndexName": index,
            "KeyConditionExpression": "#k = :v",
            "ExpressionAttributeNames": {"#k": key},
            "ExpressionAttributeValues": {":v": {"S": value}},
            "ScanIndexForward": not newest_first,
        }
        while True:
            if limit:  # read only what is asked for: without Limit a page is 1 MB of items, billed as read
                kwargs["Limit"] = limit - len(out)
            page = self._call("query", **kwargs)
            out.extend(self._from_ddb(i) for i in page.get("Items", []))
            if (limit and len(out) >= limit) or "LastEvaluatedKey" not in page:
                return out[:limit] if limit else out
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def ledger_for(stage: Stage) -> DynamoDBLedger:
    """The stage's ledger, through the client factory."""
    from chalicelib.aws import ClientSettings, client

    return DynamoDBLedger(client("dynamodb", ClientSettings.for_stage(stage)), stage.ledger_table, stage.lease_seconds)


LEDGER_INDEXES: list[GlobalSecondaryIndexTypeDef] = [
    {
        "IndexName": BY_TIME_INDEX,
        "KeySchema": [
            {"AttributeName": "time_key", "KeyType": "HASH"},
            {"AttributeName": "received_at", "KeyType": "RANGE"},
        ],
        # what the index queries read: keys (to fetch the items) and the status (file counts on the dashboard)
        "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["status"]},
    },
    {
        "IndexName": PENDING_INDEX,
        "KeySchema": [
            {"AttributeName": "pending", "KeyType": "HASH"},
            {"AttributeName": "received_at", "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "KEYS_ONLY"},  # pending_files reads each item again, consistently
    },
]
LEDGER_TABLE_SPEC: dict[str, Any] = {
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "time_key", "AttributeType": "S"},
        {"AttributeName": "received_at", "AttributeType": "S"},
        {"AttributeName": "pending", "AttributeType": "S"},
    ],
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
    "GlobalSecondaryIndexes": LEDGER_INDEXES,
    "BillingMode": "PAY_PER_REQUEST",
}
