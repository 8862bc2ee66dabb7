"""The nightly lifecycle sync: make each defined bucket's lifecycle configuration what its definition says.

Per bucket that is both defined and exists: one read of the live configuration, a comparison by rule
fingerprints (order and formatting never count as a change), and, where it differs, one write of the whole
configuration (S3 replaces the document on every put; one call per rule would race itself). The
configuration is deleted only where the definition says `rules = []`. Buckets are worked on concurrently with
a bound; throttling is absorbed by the client's retry mode. Every applied change is kept as a history
document in S3 (before, after, the rules added and removed, when, and the definition files' versions), and
any recorded change can be rolled back.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, cast

from chalicelib.aws import error_code
from chalicelib.errors import NotFoundError
from chalicelib.lifecycle.rules import Definitions, definition_text, fingerprint, normalise, parse_definitions

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client
    from types_boto3_s3.type_defs import LifecycleRuleTypeDef, ListBucketsRequestTypeDef

log = logging.getLogger(__name__)
DEFINITIONS = "lifecycle/"  # under the config zone
HISTORY = "lifecycle/history/"  # under the reports zone


BucketAction = Literal["unchanged", "put", "delete", "failed"]  # what was, or in a dry run would be, done


@dataclass
class BucketChange:
    """One bucket's sync: what it did (or would do) and the rules before and after."""

    bucket: str
    action: BucketAction
    added: list[str] = field(default_factory=list)  # rule ids
    removed: list[str] = field(default_factory=list)
    before: list[dict[str, Any]] = field(default_factory=list)
    after: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    change_id: str = ""  # its history document, once applied


@dataclass
class SyncReport:
    dry_run: bool
    changes: list[BucketChange]
    problems: dict[str, str]  # definition files and buckets left untouched, and why
    missing: list[str]  # defined, but no such bucket

    @property
    def changed(self) -> list[BucketChange]:
        """The buckets whose rules were (or would be) written."""
        return [c for c in self.changes if c.action in ("put", "delete")]

    @property
    def failed(self) -> list[BucketChange]:
        """The buckets whose write failed."""
        return [c for c in self.changes if c.action == "failed"]


def live_rules(s3: S3Client, bucket: str) -> list[dict[str, Any]]:
    """A bucket's lifecycle rules now ([] when it has none)."""
    try:
        rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    except Exception as exc:
        if error_code(exc) != "NoSuchLifecycleConfiguration":
            raise
        return []
    return [normalise(r) for r in rules]


def diff(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Rule ids added and removed (a changed rule is both: its old form removed, its new one added)."""
    old, new = {fingerprint(r): r for r in before}, {fingerprint(r): r for r in after}
    added = sorted(new[f]["ID"] for f in new.keys() - old.keys())
    removed = sorted(old[f]["ID"] for f in old.keys() - new.keys())
    return added, removed


def write(s3: S3Client, bucket: str, rules: list[dict[str, Any]]) -> BucketAction:
    """One write of the bucket's whole configuration; no rules at all is a delete."""
    if rules:
        # rules.normalise() builds S3's rule shape key by key from the definitions: typed at this one boundary
        typed = cast("list[LifecycleRuleTypeDef]", rules)
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": typed})
        return "put"
    s3.delete_bucket_lifecycle(Bucket=bucket)
    return "delete"


class LifecycleSync:
    """The lifecycle sync: definitions in the lake bucket applied to their buckets, with history and rollback."""

    def __init__(
        self,
        s3: S3Client,
        lake_bucket: str,
        config_prefix: str,
        reports_prefix: str,
        *,
        workers: int = 16,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.s3, self.lake = s3, lake_bucket
        self.definitions_prefix = config_prefix + DEFINITIONS
        self.history_prefix = reports_prefix + HISTORY
        self.latest_key = reports_prefix + "lifecycle/latest.json"
        self.workers, self.clock = workers, clock

    @classmethod
    def for_stage(cls, settings: Any, stage: Any, workers: int = 16) -> LifecycleSync:
        from chalicelib.aws import ClientSettings, client

        s3 = client("s3", ClientSettings.for_stage(stage))
        return cls(s3, stage.bucket, settings.zones.config, settings.zones.reports, workers=workers)

    def definition_files(self) -> tuple[dict[str, str | bytes], dict[str, str]]:
        """The definition files' texts and version ids, by name (`lake.toml`); a file that is not UTF-8 is kept as
        its bytes, for the parser to report (a nightly sync alerts, it does not crash)."""
        texts, versions = {}, {}
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.lake, Prefix=self.definitions_prefix)
        for obj in (o for page in pages for o in page.get("Contents", [])):
            name = obj["Key"][len(self.definitions_prefix) :]
            if "/" in name or not name.endswith(".toml"):
                continue
            got = self.s3.get_object(Bucket=self.lake, Key=obj["Key"])
            texts[name] = definition_text(got["Body"].read())
            versions[name] = got.get("VersionId") or got["ETag"].strip('"')
        return texts, versions

    def existing_buckets(self) -> set[str]:
        """The account's buckets. No paginator: the list_buckets paginator is missing from the botocore of older
        Lambda runtimes. A newer botocore hands out a ContinuationToken, which is followed; an older one lists them
        all in one answer."""
        names: set[str] = set()
        token = None
        while True:
            request: ListBucketsRequestTypeDef = {"ContinuationToken": token} if token else {}
            page = self.s3.list_buckets(**request)
            names |= {b["Name"] for b in page.get("Buckets", [])}
            token = page.get("ContinuationToken")
            if not token:
                return names

    def run(self, *, dry_run: bool = True, who: str = "lakehouse") -> SyncReport:
        """Read the definitions and make the buckets follow them: a dry run (nothing written) unless `dry_run=False`."""
        texts, versions = self.definition_files()
        definitions = parse_definitions(texts, self.lake)
        report = self.sync(definitions, versions, dry_run=dry_run, who=who)
        if not dry_run:  # the status API shows how the last sync went
            summary = {
                "time": self.clock().isoformat(),
                "who": who,
                "changed": [c.bucket for c in report.changed],
                "unchanged": sum(c.action == "unchanged" for c in report.changes),
                "failed": {c.bucket: c.error for c in report.failed},
                "problems": report.problems,
                "missing": report.missing,
            }
            self.s3.put_object(Bucket=self.lake, Key=self.latest_key, Body=json.dumps(summary, indent=2).encode())
        return report

    def sync(self, definitions: Definitions, versions: dict[str, str], *, dry_run: bool, who: str) -> SyncReport:
        """Make each defined, existing bucket's rules the definition: one read and at most one write per bucket."""
        existing = self.existing_buckets()
        targets = [d for b, d in sorted(definitions.buckets.items()) if b in existing]

        def one(definition: Any) -> BucketChange:
            try:
                before = live_rules(self.s3, definition.bucket)
                after = list(definition.rules)
                added, removed = diff(before, after)
                if not added and not removed:
                    return BucketChange(definition.bucket, "unchanged", before=before, after=after)
                change = BucketChange(definition.bucket, "put" if after else "delete", added, removed, before, after)
                if not dry_run:
                    write(self.s3, definition.bucket, after)
                    files = {f: versions.get(f, "") for f in definition.files}
                    change.change_id = self._record(change, files, who, reason="sync")
                return change
            except Exception as exc:  # one bucket's failure does not stop the others; it is reported
                log.exception("lifecycle sync of %s failed", definition.bucket)
                return BucketChange(definition.bucket, "failed", error=f"{type(exc).__name__}: {exc}")

        with ThreadPoolExecutor(max(1, self.workers)) as pool:
            changes = list(pool.map(one, targets))
        missing = sorted(set(definitions.buckets) - existing)
        return SyncReport(dry_run, changes, dict(definitions.problems), missing)

    def _record(self, change: BucketChange, files: dict[str, str], who: str, reason: str) -> str:
        when = self.clock()
        change_id = f"{change.bucket}/{when.strftime('%Y%m%dT%H%M%S%fZ')}-{uuid.uuid4().hex[:6]}"
        document = {
            "id": change_id,
            "time": when.isoformat(),
            "who": who,
            "reason": reason,
            "definition_files": files,
            **{k: v for k, v in asdict(change).items() if k not in ("error", "change_id")},
        }
        self.s3.put_object(
            Bucket=self.lake,
            Key=f"{self.history_prefix}{change_id}.json",
            Body=json.dumps(document, indent=2).encode(),
            ContentType="application/json",
        )
        return change_id

    def history(self, bucket: str | None = None) -> list[dict[str, Any]]:
        """Recorded changes, newest first (of one bucket, or all)."""
        prefix = self.history_prefix + (f"{bucket}/" if bucket else "")
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.lake, Prefix=prefix)
        keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
        keys.sort(key=lambda k: k.rsplit("/", 1)[-1], reverse=True)  # the file name starts with its time
        return [json.loads(self.s3.get_object(Bucket=self.lake, Key=k)["Body"].read()) for k in keys]

    def rollback(self, change_id: str, who: str = "lakehouse") -> BucketChange:
        """Put a bucket back as it was before a recorded change (itself recorded as a change)."""
        try:
            document = json.loads(
                self.s3.get_object(Bucket=self.lake, Key=f"{self.history_prefix}{change_id}.json")["Body"].read()
            )
        except Exception as exc:
            if error_code(exc) in ("NoSuchKey", "404"):
                raise NotFoundError(
                    f"no recorded lifecycle change {change_id!r} (see `lakehouse lifecycle history`)"
                ) from None
            raise
        bucket, target = document["bucket"], [normalise(r) for r in document["before"]]
        before = live_rules(self.s3, bucket)
        added, removed = diff(before, target)
        change = BucketChange(bucket, "unchanged", added, removed, before, target)
        if added or removed:
            change.action = write(self.s3, bucket, target)
            change.change_id = self._record(
                change, document["definition_files"], who, reason=f"rollback of {change_id}"
            )
        return change
