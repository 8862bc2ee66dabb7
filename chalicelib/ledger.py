"""The file ledger: one record per delivered object version, and one content claim per MD5.

The flow (claim, take over a stale lease, claim content, finish) is written once in `Ledger`; storage is
four small hooks, filled by `DynamoDBLedger` (conditional writes, as on AWS) and `InMemoryLedger` (a lock,
for fast tests). Every transition is a single conditional write, never read-then-write, because S3 events
arrive at least once, late and concurrently.

Status moves RECEIVED -> VALID | REJECTED | DUPLICATE | GONE. A RECEIVED record carries a lease: if its
worker dies, a later delivery takes the record over once the lease has expired.
"""

from __future__ import annotations

import threading
import uuid
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from .errors import FileInProgressError, LedgerError


class Status(StrEnum):
    RECEIVED = "RECEIVED"
    VALID = "VALID"
    REJECTED = "REJECTED"
    DUPLICATE = "DUPLICATE"
    GONE = "GONE"  # the object version was deleted before it could be read: nothing to keep


FINAL = frozenset({Status.VALID, Status.REJECTED, Status.DUPLICATE, Status.GONE})


def now_iso(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class FileRecord:
    """One delivered object version. `file_id` is `bucket/key#version` (the sequencer where unversioned)."""

    file_id: str
    bucket: str
    key: str
    version_id: str
    dataset: str
    status: Status = Status.RECEIVED
    received_at: str = ""
    updated_at: str = ""
    size: int | None = None
    etag: str | None = None
    md5: str | None = None
    format: str | None = None
    rows: int | None = None
    reason_code: str | None = None
    reason: str | None = None
    line: int | None = None
    duplicate_of: str | None = None
    rejected_key: str | None = None
    announced: bool = False
    lease_token: str | None = None
    lease_until: str | None = None

    def to_item(self) -> dict[str, Any]:
        item = {k: v for k, v in asdict(self).items() if v is not None}
        item["status"] = str(self.status)
        return {"pk": f"file#{self.file_id}", "kind": "file", **item}

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> FileRecord:
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in item.items() if k in names}
        for k in ("size", "rows", "line"):
            if values.get(k) is not None:
                values[k] = int(values[k])
        values["status"] = Status(values.get("status", Status.RECEIVED))
        return cls(**values)

    def public(self) -> dict[str, Any]:
        """The record without lease internals, for people and scripts."""
        out = {k: v for k, v in asdict(self).items() if v is not None and not k.startswith("lease_")}
        out["status"] = str(self.status)
        return out


@dataclass(frozen=True)
class Claim:
    record: FileRecord
    claimed: bool  # False: the record already existed in a final state (a redelivery)


def file_pk(file_id: str) -> str:
    return f"file#{file_id}"


def content_pk(md5: str) -> str:
    return f"md5#{md5}"


class Ledger(ABC):
    """The ledger flow; subclasses only store items."""

    def __init__(self, lease_seconds: int = 960) -> None:
        self.lease_seconds = lease_seconds

    # -- the flow ----------------------------------------------------------------------------
    def claim(self, record: FileRecord, now: datetime | None = None) -> Claim:
        """Create the RECEIVED record with a lease, take over an expired lease, or report a redelivery.

        Raises FileInProgressError while another worker holds a live lease.
        """
        now = now or datetime.now(UTC)
        mine = replace(
            record,
            status=Status.RECEIVED,
            received_at=record.received_at or now_iso(now),
            updated_at=now_iso(now),
            lease_token=uuid.uuid4().hex,
            lease_until=now_iso(now + timedelta(seconds=self.lease_seconds)),
        )
        existing = self._put_if_absent(mine.to_item())
        if existing is None:
            return Claim(mine, claimed=True)
        old = FileRecord.from_item(existing)
        if old.status in FINAL:
            return Claim(old, claimed=False)
        if old.lease_until and old.lease_until > now_iso(now):
            raise FileInProgressError(f"{old.file_id} is being validated by another worker until {old.lease_until}")
        # The previous worker died: take over, but only if nobody else took over first.
        taken = replace(old, updated_at=mine.updated_at, lease_token=mine.lease_token, lease_until=mine.lease_until)
        updates = {"updated_at": taken.updated_at, "lease_token": taken.lease_token, "lease_until": taken.lease_until}
        if not self._update_if(file_pk(old.file_id), updates, {"lease_token": old.lease_token}):
            raise FileInProgressError(f"{old.file_id} was taken over by another worker")
        return Claim(taken, claimed=True)

    def owner_of_content(self, md5: str) -> str | None:
        """The file that first delivered this content, if any (a consistent read)."""
        item = self._get(content_pk(md5))
        return None if item is None else str(item["file_id"])

    def claim_content(self, md5: str, record: FileRecord) -> str | None:
        """Atomically make `record` the owner of this content; return the earlier owner's file_id if any."""
        existing = self._put_if_absent(
            {
                "pk": content_pk(md5),
                "kind": "content",
                "file_id": record.file_id,
                "dataset": record.dataset,
                "claimed_at": now_iso(),
            }
        )
        if existing is None or existing["file_id"] == record.file_id:  # ours, perhaps from a crashed attempt
            return None
        return str(existing["file_id"])

    def finish(self, record: FileRecord, status: Status, **changes: Any) -> FileRecord:
        """Move a claimed RECEIVED record to a final status; only the lease holder may."""
        if status not in FINAL:
            raise ValueError(f"{status} is not a final status")
        done = replace(record, status=status, updated_at=now_iso(), lease_token=None, lease_until=None, **changes)
        updates = {k: v for k, v in done.to_item().items() if k not in ("pk", "kind")}
        updates.update(lease_token=None, lease_until=None)
        if not self._update_if(file_pk(record.file_id), updates, {"lease_token": record.lease_token}):
            raise FileInProgressError(f"{record.file_id}: lease lost to another worker before finishing")
        return done

    def mark_announced(self, record: FileRecord) -> FileRecord:
        self._update_if(file_pk(record.file_id), {"announced": True}, {"status": str(Status.VALID)})
        return replace(record, announced=True)

    def get(self, file_id: str) -> FileRecord | None:
        item = self._get(file_pk(file_id))
        return None if item is None else FileRecord.from_item(item)

    def files(self, limit: int | None = None) -> list[FileRecord]:
        """File records, newest first."""
        return [FileRecord.from_item(i) for i in self._newest_files(limit)]

    # -- storage hooks -----------------------------------------------------------------------
    @abstractmethod
    def _put_if_absent(self, item: dict[str, Any]) -> dict[str, Any] | None:
        """Write `item` unless its pk exists; return the existing item (and write nothing) if it does."""

    @abstractmethod
    def _update_if(self, pk: str, updates: dict[str, Any], expect: dict[str, Any]) -> bool:
        """Set (None: remove) attributes if every `expect` attribute equals its value; False if not."""

    @abstractmethod
    def _get(self, pk: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def _newest_files(self, limit: int | None) -> list[dict[str, Any]]: ...


class InMemoryLedger(Ledger):
    """A ledger in a dict; the lock gives it DynamoDB's per-item atomicity."""

    def __init__(self, lease_seconds: int = 960) -> None:
        super().__init__(lease_seconds)
        self.items: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def _put_if_absent(self, item: dict[str, Any]) -> dict[str, Any] | None:
        with self._lock:
            if item["pk"] in self.items:
                return dict(self.items[item["pk"]])
            self.items[item["pk"]] = dict(item)
            return None

    def _update_if(self, pk: str, updates: dict[str, Any], expect: dict[str, Any]) -> bool:
        with self._lock:
            item = self.items.get(pk)
            if item is None or any(item.get(k) != v for k, v in expect.items()):
                return False
            for k, v in updates.items():
                if v is None:
                    item.pop(k, None)
                else:
                    item[k] = v
            return True

    def _get(self, pk: str) -> dict[str, Any] | None:
        with self._lock:
            item = self.items.get(pk)
            return None if item is None else dict(item)

    def _newest_files(self, limit: int | None) -> list[dict[str, Any]]:
        with self._lock:
            files = sorted(
                (dict(i) for i in self.items.values() if i["kind"] == "file"),
                key=lambda i: i["received_at"],
                reverse=True,
            )
        return files[:limit] if limit else files


BY_TIME_INDEX = "by_received_at"


class DynamoDBLedger(Ledger):
    """The ledger in one DynamoDB table (`pk` string key; GSI `by_received_at` on kind + received_at)."""

    def __init__(self, dynamodb: Any, table: str, lease_seconds: int = 960) -> None:
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
            return self._from_ddb(old) if old else self._get(item["pk"])

    def _update_if(self, pk: str, updates: dict[str, Any], expect: dict[str, Any]) -> bool:
        from botocore.exceptions import ClientError

        names, values, sets, removes, conds = {}, {}, [], [], ["attribute_exists(pk)"]
        for i, (k, v) in enumerate(updates.items()):
            names[f"#u{i}"] = k
            if v is None:
                removes.append(f"#u{i}")
            else:
                values[f":u{i}"] = self._ser.serialize(v)
                sets.append(f"#u{i} = :u{i}")
        for i, (k, v) in enumerate(expect.items()):
            names[f"#c{i}"] = k
            if v is None:
                conds.append(f"attribute_not_exists(#c{i})")
            else:
                values[f":c{i}"] = self._ser.serialize(v)
                conds.append(f"#c{i} = :c{i}")
        expression = " ".join(
            part
            for part in ("SET " + ", ".join(sets) if sets else "", "REMOVE " + ", ".join(removes) if removes else "")
            if part
        )
        kwargs: dict[str, Any] = {
            "Key": {"pk": {"S": pk}},
            "UpdateExpression": expression,
            "ConditionExpression": " AND ".join(conds),
            "ExpressionAttributeNames": names,
        }
        if values:
            kwargs["ExpressionAttributeValues"] = values
        try:
            self._call("update_item", **kwargs)
            return True
        except ClientError:
            return False

    def _get(self, pk: str) -> dict[str, Any] | None:
        item = self._call("get_item", Key={"pk": {"S": pk}}, ConsistentRead=True).get("Item")
        return self._from_ddb(item) if item else None

    def _newest_files(self, limit: int | None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "IndexName": BY_TIME_INDEX,
            "KeyConditionExpression": "kind = :file",
            "ExpressionAttributeValues": {":file": {"S": "file"}},
            "ScanIndexForward": False,
        }
        while True:
            page = self._call("query", **kwargs)
            out.extend(self._from_ddb(i) for i in page.get("Items", []))
            if (limit and len(out) >= limit) or "LastEvaluatedKey" not in page:
                return out[:limit] if limit else out
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


LEDGER_TABLE_SPEC = {
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "kind", "AttributeType": "S"},
        {"AttributeName": "received_at", "AttributeType": "S"},
    ],
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": BY_TIME_INDEX,
            "KeySchema": [
                {"AttributeName": "kind", "KeyType": "HASH"},
                {"AttributeName": "received_at", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }
    ],
    "BillingMode": "PAY_PER_REQUEST",
}
