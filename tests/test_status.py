"""GET /status: the pipeline's health from ledger summaries and the reports' latest documents."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.ledger import DynamoDBLedger, FileRecord, Status
from chalicelib.lifecycle.sync import LifecycleSync


def test_status_reads_the_ledger_and_the_latest_reports(client, provisioned, settings, stage):
    ledger = DynamoDBLedger(provisioned.dynamodb, stage.ledger_table)
    now = datetime.now(UTC)
    for name, when, verdict in (
        ("old.csv", now - timedelta(hours=30), Status.VALID),
        ("a.csv", now - timedelta(hours=2), Status.VALID),
        ("b.csv", now - timedelta(hours=1), Status.REJECTED),
    ):
        record = FileRecord(f"{stage.bucket}/raw/orders/{name}#v1", stage.bucket, f"raw/orders/{name}", "v1", "orders")
        claimed = ledger.claim(record, now=when).record
        extra = {"reason_code": "EMPTY_FILE", "reason": "the file is empty"} if verdict == Status.REJECTED else {}
        ledger.finish(claimed, verdict, **extra)
    run = ledger.begin_run()
    ledger.save_plan(run, {"levels": [[{"dataset": "orders", "batch": 1, "job": "j"}]]}, 1, 10)
    ledger.end_run(run.name, "SUCCEEDED")
    failing = {"rule": "freshness(order_ts)", "passed": False}
    ledger.save_quality(run.name, "orders", {"run": run.name, "status": "WARN", "rows_loaded": 5, "checks": [failing]})
    failed = ledger.begin_run()
    ledger.end_run(failed.name, "FAILED", "QualityCheckFailed", "ERROR orders unique(order_id): 2 of 9 rows fail")
    LifecycleSync(provisioned.s3, stage.bucket, "config/", "reports/").run(dry_run=False, who="test")
    provisioned.s3.put_object(
        Bucket=stage.bucket,
        Key="reports/drift/latest.json",
        Body=json.dumps({"time": "t", "drifted": True, "findings": [{}, {}], "deployment": None}).encode(),
    )

    response = client.http.get("/status?files=2")
    assert response.status_code == 200
    body = json.loads(response.body)
    assert body["files_last_24h"] == {"VALID": 1, "REJECTED": 1}  # the 30-hour-old file is out
    assert [f["file_id"].rsplit("/", 1)[-1] for f in body["recent_files"]] == ["b.csv#v1", "a.csv#v1"]
    assert body["recent_files"][0]["reason_code"] == "EMPTY_FILE"
    assert [(r["run"], r["status"]) for r in body["runs"]] == [(failed.name, "FAILED"), (run.name, "SUCCEEDED")]
    assert body["runs"][0]["error"] == "QualityCheckFailed: ERROR orders unique(order_id): 2 of 9 rows fail"
    orders = body["datasets"]["orders"]
    assert orders["quality"] == {"run": run.name, "status": "WARN", "failed": ["freshness(order_ts)"]}
    assert orders["freshness_target_hours"] == 48 and orders["fresh"] is True and orders["hours_since"] < 1
    assert body["datasets"]["customers"]["last_successful_run"] is None
    assert body["drift"] == {"time": "t", "drifted": True, "deployment": None, "findings": 2}
    assert body["lifecycle"]["who"] == "test" and body["lifecycle"]["changed"] == []


@pytest.mark.parametrize("files", ["0", "201", "ten", "-1", "²", "1.5"])
def test_a_bad_files_parameter_is_a_400(client, files):
    response = client.http.get(f"/status?files={files}")
    assert (
        response.status_code == 400
        and "files: must be a whole number from 1 to 200" in json.loads(response.body)["Message"]
    )


def test_an_aws_error_behind_the_status_is_a_503_naming_it(client, provisioned, stage):
    from botocore.stub import Stubber

    from chalicelib import runtime

    assert client.http.get("/status").status_code == 200  # the runtime (and its cached S3 client) is built
    s3 = runtime.current().client("s3")
    with Stubber(s3) as stub:  # the drift report's latest.json: the Lambda may not read it
        stub.add_client_error("get_object", "AccessDenied", "Access Denied", 403)
        response = client.http.get("/status")
    assert response.status_code == 503
    body = json.loads(response.body)
    assert body["Code"] == "ServiceUnavailableError"
    assert (
        body["Message"] == "AWS: An error occurred (AccessDenied) when calling the GetObject operation: Access Denied"
    )


def test_a_throttled_ledger_behind_the_status_is_a_503_naming_it_not_a_500(client, provisioned, stage):
    from botocore.stub import Stubber

    from chalicelib import runtime

    assert client.http.get("/status").status_code == 200
    dynamodb = runtime.current().ledger.ddb
    with Stubber(dynamodb) as stub:  # the ledger wraps the botocore error in its LedgerError
        stub.add_client_error("query", "ProvisionedThroughputExceededException", "Rate exceeded", 400)
        response = client.http.get("/status")
    assert response.status_code == 503, response.body
    body = json.loads(response.body)
    assert body["Code"] == "ServiceUnavailableError"
    assert body["Message"].startswith(f"LedgerError: Failed to query on ledger table {stage.ledger_table}")
    assert "ProvisionedThroughputExceededException" in body["Message"]


def test_a_missing_thing_asked_for_by_name_is_a_404_and_a_bad_parameter_a_400(client, monkeypatch):
    import app
    from chalicelib.errors import NotFoundError, UsageError

    def missing(*args, **kwargs):
        raise NotFoundError("no pipeline run named 'run-9' in the ledger")

    monkeypatch.setattr(app, "_cost", missing)
    response = client.http.get("/cost")
    assert (response.status_code, json.loads(response.body)["Code"]) == (404, "NotFoundError")

    def bad(*args, **kwargs):
        raise UsageError("region", "no price table")

    monkeypatch.setattr(app, "_cost", bad)
    response = client.http.get("/cost")
    assert (response.status_code, json.loads(response.body)["Message"]) == (400, "region: no price table")
