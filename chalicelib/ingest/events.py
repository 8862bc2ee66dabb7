"""S3 event notifications (as they arrive through the ingest queue) -> the object versions to ingest."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, unquote_plus


@dataclass(frozen=True)
class ObjectRef:
    """One `ObjectCreated` record of an S3 event notification (key already URL-decoded)."""

    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    size: int | None = None
    sequencer: str | None = None


def refs_from_notification(body: dict[str, Any]) -> list[ObjectRef]:
    """The object-created records of an S3 notification; test events and other events give none."""
    from aws_lambda_powertools.utilities.data_classes import S3Event

    if body.get("Event") == "s3:TestEvent" or "Records" not in body:
        return []
    refs = []
    for record in S3Event(body).records:
        if not record.event_name.startswith("ObjectCreated"):
            continue
        obj = record.s3.get_object  # optional fields via .get: not every sender includes them (moto omits some)
        # Keys arrive URL-encoded ('+' for spaces); Powertools decodes only S3Event.object_key, not per record.
        refs.append(
            ObjectRef(
                bucket=record.s3.bucket.name,
                key=unquote_plus(obj.key),
                version_id=obj.get("versionId") or None,
                etag=obj.get("eTag") or None,
                size=obj.get("size"),
                sequencer=obj.get("sequencer") or None,
            )
        )
    return refs


def s3_notification(bucket: str, key: str, version_id: str | None = None) -> str:
    """The body S3 sends to a queue for one created object (key URL-encoded, as S3 does): how the local stage and the
    batcher's recovery (chalicelib.pipeline.recovery) announce a file to the validator."""
    obj = {"key": quote_plus(key), **({"versionId": version_id} if version_id else {})}
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": obj},
    }
    return json.dumps({"Records": [record]})
