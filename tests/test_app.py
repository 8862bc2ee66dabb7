"""The `validate` Lambda through Chalice's test client, with the stage environment from .chalice/config.json."""

import json
import subprocess
import sys

import pytest
from conftest import CONFIG, ROOT

from chalicelib import runtime
from chalicelib.errors import InvalidEvent
from chalicelib.ledger import DynamoDBLedger
from lakehouse.localstage import s3_notification

H = b"order_id,customer_id,order_ts,status,total_amount,currency,order_date\n"
R = b"O1,C1,2025-03-01T10:00:00Z,shipped,10.00,EUR,2025-03-01\n"


def sqs_event(*bodies):
    return {
        "Records": [
            {
                "messageId": f"m{i}",
                "receiptHandle": f"r{i}",
                "body": b,
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:lakehouse-local-ingest",
                "awsRegion": "us-east-1",
            }
            for i, b in enumerate(bodies)
        ]
    }


def test_validate_handles_a_batch_of_notifications(client, provisioned, stage):
    bucket = stage.bucket
    v1 = provisioned.s3.put_object(Bucket=bucket, Key="raw/orders/a.csv", Body=H + R)["VersionId"]
    v2 = provisioned.s3.put_object(Bucket=bucket, Key="raw/orders/b.csv", Body=b"")["VersionId"]
    test_event = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": bucket})
    response = client.lambda_.invoke(
        "validate",
        sqs_event(
            s3_notification(bucket, "raw/orders/a.csv", v1), s3_notification(bucket, "raw/orders/b.csv", v2), test_event
        ),
    )
    assert response.payload == {"processed": 3}
    statuses = {r.key: r.status for r in DynamoDBLedger(provisioned.dynamodb, stage.ledger_table).files()}
    assert statuses == {"raw/orders/a.csv": "VALID", "raw/orders/b.csv": "REJECTED"}


def test_one_failing_record_fails_the_batch_after_the_others_are_done(client, provisioned, stage):
    bucket = stage.bucket
    v1 = provisioned.s3.put_object(Bucket=bucket, Key="raw/orders/a.csv", Body=H + R)["VersionId"]
    with pytest.raises(Exception, match=r"1 record\(s\) failed") as err:
        client.lambda_.invoke("validate", sqs_event("not json at all", s3_notification(bucket, "raw/orders/a.csv", v1)))
    assert type(err.value).__name__ == "BatchFailed"
    (record,) = DynamoDBLedger(provisioned.dynamodb, stage.ledger_table).files()
    assert record.status == "VALID"  # done despite its neighbour; a redelivery of the batch is a no-op for it


def test_importing_app_loads_no_heavy_data_library():
    code = (
        "import sys, app; heavy = [m for m in ('pandas', 'pyarrow', 'deltalake', 'duckdb', 'polars') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_each_verdict_is_logged_with_the_correlation_id_and_counted_per_dataset(client, provisioned, stage, capfd):
    import app

    app.logger.registered_handler.setStream(sys.stdout)  # the handler kept the stdout of the first import
    version = provisioned.s3.put_object(Bucket=stage.bucket, Key="raw/orders/a.csv", Body=H + R)["VersionId"]
    capfd.readouterr()
    client.lambda_.invoke("validate", sqs_event(s3_notification(stage.bucket, "raw/orders/a.csv", version)))
    lines = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")]
    log = next(line for line in lines if line.get("message") == "file ingested")
    assert log["correlation_id"] == "m0" and log["status"] == "VALID" and log["key"] == "raw/orders/a.csv"
    metric = next(line for line in lines if "_aws" in line)
    assert metric["FilesValid"] == [1.0]
    assert metric["dataset"] == "orders"
    assert metric["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "ServerlessLakehouse"


def test_pipeline_steps_refuse_a_payload_without_a_run(client):
    for step in ("quality_check", "refresh_tables", "finish_run", "fail_run"):
        with pytest.raises(InvalidEvent, match="payload needs a 'run' name"):
            client.lambda_.invoke(step, {"error": {}})


def test_batcher_schedule_starts_a_run_on_the_stage_state_machine(client, provisioned, stage):
    key = "raw/orders/day=1/o.csv"
    provisioned.s3.put_object(Bucket=stage.bucket, Key=key, Body=H + R)
    body = s3_notification(stage.bucket, key, provisioned.s3.head_object(Bucket=stage.bucket, Key=key)["VersionId"])
    client.lambda_.invoke("validate", sqs_event(body))
    tick = client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event", detail={}, resources=[])
    # just accepted: the window is open
    assert client.lambda_.invoke("batcher", tick).payload["action"] == "waiting"
    config = provisioned.s3.get_object(Bucket=stage.bucket, Key="config/lakehouse.toml")["Body"].read().decode()
    provisioned.s3.put_object(
        Bucket=stage.bucket, Key="config/lakehouse.toml", Body=config.replace("start_files = 1000", "start_files = 1")
    )
    runtime.reset()
    started = client.lambda_.invoke("batcher", tick).payload
    assert started["action"] == "started" and started["run"] == "run-000001"
    sfn = provisioned.stepfunctions
    (machine,) = sfn.list_state_machines()["stateMachines"]
    (execution,) = sfn.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"]
    epoch = DynamoDBLedger(provisioned.dynamodb, stage.ledger_table).epoch()  # the ledger's, made once
    assert execution["name"] == f"run-000001-{epoch}"  # Step Functions keeps names 90 days: a new ledger's differ
    plan = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    (entry,) = plan["levels"][0]
    assert entry == {**entry, "dataset": "orders", "batch": 1, "job": "lakehouse-local-process-orders", "workers": 2}
    assert client.lambda_.invoke("batcher", tick).payload["action"] == "busy"  # moto never ends an execution


def test_lifecycle_sync_schedule_applies_the_definitions_and_alerts_what_it_left_alone(client, provisioned, stage):
    from chalicelib.lifecycle.sync import live_rules

    s3 = provisioned.s3
    inbox = provisioned.sqs.create_queue(QueueName="alerts-inbox")["QueueUrl"]
    inbox_arn = provisioned.sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]
    provisioned.sns.subscribe(
        TopicArn=stage.topic_arn(stage.alerts_topic, "123456789012"), Protocol="sqs", Endpoint=inbox_arn["QueueArn"]
    )
    s3.put_object(
        Bucket=stage.bucket, Key="config/lifecycle/lake.toml", Body=(CONFIG / "lifecycle/lake.toml").read_bytes()
    )
    s3.put_object(Bucket=stage.bucket, Key="config/lifecycle/broken.toml", Body=b"[buckets")
    tick = client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event", detail={}, resources=[])
    result = client.lambda_.invoke("lifecycle_sync", tick).payload
    assert result["changed"] == [] and "broken.toml" in result["troubles"][0]  # unreadable: nothing touched
    assert live_rules(s3, stage.bucket) == []
    (message,) = provisioned.sqs.receive_message(QueueUrl=inbox)["Messages"]
    assert "broken.toml" in json.loads(message["Body"])["Message"]

    s3.delete_object(Bucket=stage.bucket, Key="config/lifecycle/broken.toml")
    result = client.lambda_.invoke("lifecycle_sync", tick).payload
    assert result == {"changed": [stage.bucket], "troubles": [], "missing": []}
    assert "archive-to-colder-storage" in [r["ID"] for r in live_rules(s3, stage.bucket)]


def test_the_apps_schedules_are_those_of_lakehouse_toml(settings):
    import app

    declared = {s.name: s.schedule_expression for s in app.app.event_sources if hasattr(s, "schedule_expression")}
    for name, expression in settings.schedules.items():
        if name in declared:
            assert str(declared[name]) == expression, name
    assert declared["lifecycle_sync"] == settings.schedules["lifecycle_sync"]


def test_drift_report_schedule_writes_the_report_and_alerts_only_on_drift(client, provisioned, stage):
    inbox = provisioned.sqs.create_queue(QueueName="drift-inbox")["QueueUrl"]
    inbox_arn = provisioned.sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]
    provisioned.sns.subscribe(
        TopicArn=stage.topic_arn(stage.alerts_topic, "123456789012"), Protocol="sqs", Endpoint=inbox_arn["QueueArn"]
    )
    tick = client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event", detail={}, resources=[])
    clean = client.lambda_.invoke("drift_report", tick).payload
    assert clean["drifted"] is False and clean["report"].startswith("reports/drift/")
    assert "Messages" not in provisioned.sqs.receive_message(QueueUrl=inbox)
    provisioned.s3.put_bucket_versioning(Bucket=stage.bucket, VersioningConfiguration={"Status": "Suspended"})
    assert client.lambda_.invoke("drift_report", tick).payload["findings"] == 1
    (message,) = provisioned.sqs.receive_message(QueueUrl=inbox)["Messages"]
    assert "versioning: expected Enabled, found Suspended" in json.loads(message["Body"])["Message"]
