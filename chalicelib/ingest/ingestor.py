"""Ingest one S3 object: claim it in the ledger, validate it, accept, quarantine or mark it duplicate.

Called by the `validate` Lambda for every `ObjectCreated` record under `raw/`. Safe to call any number of
times for the same event, concurrently: the ledger's conditional writes decide, never a prior read.
Nothing is deleted from `raw/`; a rejected file is *copied* to `rejected/<dataset>/...` with a JSON reason
beside it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.aws import error_code
from chalicelib.config import Settings, Stage
from chalicelib.ingest.events import ObjectRef
from chalicelib.ingest.layout import file_layout
from chalicelib.ingest.validation import Verdict, validate_stream
from chalicelib.ledger import FileRecord, Ledger, Status, now_iso
from chalicelib.stage.catalog import raw_table_shows

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client
    from types_boto3_s3.type_defs import CopySourceTypeDef, HeadObjectOutputTypeDef, HeadObjectRequestTypeDef
    from types_boto3_sqs import SQSClient

log = logging.getLogger(__name__)

_PLAIN_MD5 = re.compile(r"[0-9a-f]{32}")
_GONE = {"404", "NoSuchKey", "NoSuchVersion", "NotFound"}
_CHANGED = {"412", "PreconditionFailed"}


@dataclass
class Ingestor:
    """Everything ingest needs, passed in explicitly (clients come from `chalicelib.aws`)."""

    settings: Settings
    stage: Stage
    s3: S3Client
    sqs: SQSClient
    ledger: Ledger

    def dataset_of(self, key: str) -> str | None:
        """`raw/<dataset>/...` -> dataset ('' for a file directly under raw/); None outside raw/."""
        raw = self.settings.zones.raw
        if not key.startswith(raw):
            return None
        rest = key[len(raw) :]
        return rest.split("/", 1)[0] if "/" in rest else ""

    def ingest(self, ref: ObjectRef) -> FileRecord | None:
        """Validate and record one delivered object version; None when it is not a file under raw/."""
        dataset = self.dataset_of(ref.key)
        if dataset is None or ref.key.endswith("/"):
            log.info("ignored: not a file under %s", self.settings.zones.raw, extra={"key": ref.key})
            return None
        head = self._head(ref)
        seen: Mapping[str, Any] = head or {}
        head_etag = seen.get("ETag", "").strip('"') or None
        overwritten = head is not None and not ref.version_id and bool(ref.etag) and ref.etag != head_etag
        s3_version = ref.version_id or (None if overwritten else seen.get("VersionId"))
        s3_version = None if s3_version == "null" else s3_version
        # Identity of the delivery: S3's version id; in an unversioned bucket the event's sequencer or ETag.
        identity = s3_version or ref.sequencer or ref.etag or head_etag or "unversioned"
        record = FileRecord(
            file_id=f"{ref.bucket}/{ref.key}#{identity}",
            bucket=ref.bucket,
            key=ref.key,
            version_id=s3_version,
            dataset=dataset,
            size=ref.size if overwritten else seen.get("ContentLength", ref.size),
            etag=ref.etag if overwritten else head_etag or ref.etag,
        )
        claim = self.ledger.claim(record)
        if not claim.claimed:
            log.info("redelivery of a finished file", extra={"file_id": record.file_id, "status": claim.record.status})
            if claim.record.status == Status.VALID and not claim.record.announced:
                return self._announce(claim.record)
            return claim.record
        record = claim.record
        if overwritten:
            return self._gone(
                record, "OBJECT_OVERWRITTEN", "overwritten before it could be read; the new content has its own event"
            )
        if head is None:
            return self._gone(record, "OBJECT_GONE", "the object version was deleted before it could be read")
        contract = self.settings.datasets.get(dataset)
        if contract is None:
            known = sorted(self.settings.datasets)
            return self._reject(
                record,
                head,
                Verdict(
                    "",
                    record.size or 0,
                    code="UNKNOWN_DATASET",
                    message=f"no contract for dataset {dataset!r} (key {ref.key!r}); known: {known}",
                ),
            )
        limit = self.settings.limits.max_file_bytes
        if (record.size or 0) > limit:
            return self._reject(
                record,
                head,
                Verdict(
                    record.etag or "",
                    record.size or 0,
                    code="TOO_LARGE",
                    message=f"{record.size} bytes is over the {limit} byte limit; not read",
                ),
            )
        if self._md5_from_etag(head):  # fast path: a duplicate known from HEAD alone, body never read
            owner = self.ledger.owner_of_content(record.etag or "")
            if owner and owner != record.file_id:
                return self._duplicate(record, record.etag or "", owner)
        body = self._get(record, head)
        if body is None:
            return self._gone(record, "OBJECT_GONE", "the object disappeared or changed before it could be read")
        with body:
            verdict = validate_stream(body, key=ref.key, contract=contract, limits=self.settings.limits)
        if not verdict.ok:
            return self._reject(record, head, verdict)
        owner = self.ledger.claim_content(verdict.md5, record)
        if owner:
            return self._duplicate(record, verdict.md5, owner, verdict)
        prefix = f"{self.settings.zones.raw}{dataset}/"
        valid = self.ledger.finish(
            record,
            Status.VALID,
            md5=verdict.md5,
            size=verdict.size,
            rows=verdict.rows,
            format=verdict.format,
            layout=file_layout(ref.key, prefix, verdict.format, verdict.columns),
            raw_table=raw_table_shows(self.settings.datasets[dataset], verdict.format, verdict.columns),
        )
        return self._announce(valid)

    # -- steps ---------------------------------------------------------------------------------
    def _head(self, ref: ObjectRef) -> HeadObjectOutputTypeDef | None:
        kwargs: HeadObjectRequestTypeDef = {"Bucket": ref.bucket, "Key": ref.key}
        if ref.version_id:
            kwargs["VersionId"] = ref.version_id
        try:
            return self.s3.head_object(**kwargs)
        except Exception as exc:
            if error_code(exc) in _GONE:
                return None
            raise

    @staticmethod
    def _md5_from_etag(head: Mapping[str, Any]) -> bool:
        """The ETag is the MD5 only for single-part uploads without SSE-KMS (S3 docs, 'Checking object integrity')."""
        etag = head.get("ETag", "").strip('"')
        return bool(_PLAIN_MD5.fullmatch(etag)) and head.get("ServerSideEncryption") not in ("aws:kms", "aws:kms:dsse")

    def _get(self, record: FileRecord, head: Mapping[str, Any]) -> Any:
        kwargs: dict[str, Any] = {"Bucket": record.bucket, "Key": record.key}
        if head.get("VersionId") not in (None, "null"):
            kwargs["VersionId"] = head["VersionId"]
        else:
            kwargs["IfMatch"] = head["ETag"]  # read exactly the object we were told about
        try:
            return self.s3.get_object(**kwargs)["Body"]
        except Exception as exc:
            if error_code(exc) in _GONE | _CHANGED:
                return None
            raise

    def _gone(self, record: FileRecord, code: str, reason: str) -> FileRecord:
        """Nothing to validate or keep: the delivered version no longer exists as it was announced."""
        return self.ledger.finish(record, Status.GONE, reason_code=code, reason=reason)

    def _duplicate(self, record: FileRecord, md5: str, owner: str, verdict: Verdict | None = None) -> FileRecord:
        extra = {} if verdict is None else {"rows": verdict.rows, "format": verdict.format, "size": verdict.size}
        return self.ledger.finish(
            record,
            Status.DUPLICATE,
            md5=md5,
            duplicate_of=owner,
            reason_code="DUPLICATE_CONTENT",
            reason=f"same content (MD5 {md5}) as {owner}",
            **extra,
        )

    def _reject(self, record: FileRecord, head: Mapping[str, Any], verdict: Verdict) -> FileRecord:
        zones = self.settings.zones
        rest = record.key[len(zones.raw) :]
        target = f"{zones.rejected}{rest if record.dataset else '_no_dataset/' + rest}"
        source: CopySourceTypeDef = {"Bucket": record.bucket, "Key": record.key}
        if head.get("VersionId") not in (None, "null"):
            source["VersionId"] = head["VersionId"]
        # Copy first, reason second; raw/ is never touched, so no step here can lose the file.
        self.s3.copy(source, record.bucket, target)  # managed copy: multipart above 5 GB too
        reason = {
            "code": verdict.code,
            "message": verdict.message,
            "line": verdict.line,
            "dataset": record.dataset,
            "file_id": record.file_id,
            "rejected_at": now_iso(),
            "source": {
                "bucket": record.bucket,
                "key": record.key,
                "version_id": record.version_id,
                "size": verdict.size or record.size,
                "md5": verdict.md5 or None,
            },
        }
        self.s3.put_object(
            Bucket=record.bucket,
            Key=f"{target}.reason.json",
            ContentType="application/json",
            Body=json.dumps(reason, indent=2).encode(),
        )
        return self.ledger.finish(
            record,
            Status.REJECTED,
            md5=verdict.md5 or None,
            size=verdict.size or record.size,
            format=verdict.format,
            reason_code=verdict.code,
            reason=verdict.message,
            line=verdict.line,
            rejected_key=target,
        )

    def _announce(self, record: FileRecord) -> FileRecord:
        """Tell the pipeline a file is ready. The FIFO queue drops a repeat of the same file within five
        minutes (a crash before `announced` was written); past that, consumers dedupe on `file_id`."""
        url = self.sqs.get_queue_url(QueueName=self.stage.accepted_queue)["QueueUrl"]
        message = {
            k: getattr(record, k)
            for k in ("file_id", "bucket", "key", "version_id", "dataset", "md5", "rows", "size", "format")
        }
        self.sqs.send_message(
            QueueUrl=url,
            MessageBody=json.dumps(message),
            MessageGroupId=record.dataset or "_",  # in order per dataset
            MessageDeduplicationId=hashlib.sha256(record.file_id.encode()).hexdigest(),
        )
        return self.ledger.mark_announced(record)
