"""What `GET /status` answers: the pipeline's health from summaries only (ledger items, the reports' latest
documents), never from the data itself, so it stays fast however large the lake grows."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from chalicelib.aws import error_code
from chalicelib.config import Settings, Stage
from chalicelib.config.rules import FreshnessRule
from chalicelib.ledger import Ledger, now_iso
from chalicelib.pipeline.steps import describe_error

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client
    from types_boto3_sqs import SQSClient
    from types_boto3_sqs.literals import QueueAttributeFilterType

RUNS = 20  # recent runs shown, and searched for each dataset's last success
TREND = 10  # quality results per dataset, for the dashboard's trend


def _latest(s3: S3Client, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        report: dict[str, Any] = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        return report
    except Exception as exc:
        if error_code(exc) in ("NoSuchKey", "404"):
            return None
        raise


def dead_letters(sqs: SQSClient, queue: str) -> dict[str, Any]:
    """The ingest dead-letter queue's depth: each message is a file that failed ingest `max_receive_count` times and
    whose ledger record stays RECEIVED (the alarm on it alerts; this shows how many)."""
    try:
        url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    except Exception as exc:
        if error_code(exc) in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
            return {"queue": queue, "exists": False, "messages": None, "in_flight": None}
        raise
    names: list[QueueAttributeFilterType] = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return {
        "queue": queue,
        "exists": True,
        "messages": int(attributes.get("ApproximateNumberOfMessages", "0")),
        "in_flight": int(attributes.get("ApproximateNumberOfMessagesNotVisible", "0")),
    }


def status(
    settings: Settings,
    stage: Stage,
    ledger: Ledger,
    s3: S3Client,
    now: datetime,
    files: int = 20,
    sqs: SQSClient | None = None,
) -> dict[str, Any]:
    """The pipeline at a glance (GET /status), from ledger summaries and the reports' latest documents only."""
    runs = ledger.runs(RUNS)
    last_success: dict[str, str] = {}
    for run in runs:  # newest first: the first successful run naming a dataset is its last success
        if run.status == "SUCCEEDED" and run.ended_at:
            for batch in run.batches:
                last_success.setdefault(batch["dataset"], run.ended_at)
    datasets = {}
    for name, contract in sorted(settings.datasets.items()):
        target = next((r.max_age_hours for r in contract.rules if isinstance(r, FreshnessRule)), None)
        loaded = last_success.get(name)
        age = round((now - datetime.fromisoformat(loaded)).total_seconds() / 3600, 1) if loaded else None
        quality = ledger.quality_history(name, TREND)
        latest = quality[0] if quality else None
        datasets[name] = {
            "last_successful_run": loaded,
            "hours_since": age,
            "freshness_target_hours": target,
            "fresh": None if target is None or age is None else age <= target,
            "quality": latest
            and {
                "run": latest["run"],
                "status": latest["status"],
                "failed": [c["rule"] for c in latest["checks"] if not c["passed"]],
            },
            "quality_trend": [  # oldest first
                {"run": q["run"], "status": q["status"], "failed": sum(not c["passed"] for c in q["checks"])}
                for q in reversed(quality)
            ],
        }
    drift = _latest(s3, stage.bucket, f"{settings.zones.reports}drift/latest.json")
    return {
        "stage": stage.name,
        "time": now.isoformat(),
        "files_last_24h": ledger.file_counts(now_iso(now - timedelta(hours=24))),
        "recent_files": [
            {k: r.public().get(k) for k in ("file_id", "dataset", "status", "received_at", "reason_code", "reason")}
            for r in ledger.files(files)
        ],
        "runs": [
            {
                "run": r.name,
                "status": r.status,
                "started_at": r.started_at,
                "ended_at": r.ended_at,
                "files": r.files,
                "error": describe_error(r.error, r.cause or "") if r.error else None,
            }
            for r in runs[:10]
        ],
        "datasets": datasets,
        "drift": drift
        and {k: drift.get(k) for k in ("time", "drifted", "deployment")} | {"findings": len(drift.get("findings", []))},
        "lifecycle": _latest(s3, stage.bucket, f"{settings.zones.reports}lifecycle/latest.json"),
        "dead_letter": dead_letters(sqs, stage.ingest_dlq) if sqs is not None else None,
    }
