"""The drift report: a freshly provisioned stage has none; each planted change is found with resource,
property, expected, actual and a fix; the report lands in S3 as JSON and Markdown; deployments are recorded."""

from __future__ import annotations

import json

from conftest import CONFIG

from chalicelib.aws import Clients
from chalicelib.config import config_files
from chalicelib.lifecycle.sync import LifecycleSync
from chalicelib.stage.declared import config_fingerprint, deployments
from chalicelib.stage.drift import DriftCheck, run_report
from deploy.provision import provision


def check(settings, stage, clients):
    import boto3

    sync = LifecycleSync(clients.s3, stage.bucket, settings.zones.config, settings.zones.reports)
    return DriftCheck(settings, stage, clients, sync, boto3.client("sqs", region_name=stage.region))


def test_a_provisioned_stage_has_no_drift_and_its_deployment_is_recorded(provisioned, settings, stage):
    report = run_report(settings, stage, check(settings, stage, provisioned))
    assert report.findings == [] and not report.drifted
    assert {
        "s3://lakehouse-local-lake",
        "dynamodb lakehouse-local-ledger",
        "state machine lakehouse-local-pipeline",
    } <= set(report.checked)
    (deployment,) = deployments(provisioned.s3, settings, stage)
    assert deployment["result"] == "succeeded" and deployment["who"].startswith("arn:aws:")
    assert deployment["config_fingerprint"] == config_fingerprint(config_files(CONFIG))
    assert report.since().startswith(f"since deployment {deployment['time']}")
    latest = json.loads(provisioned.s3.get_object(Bucket=stage.bucket, Key="reports/drift/latest.json")["Body"].read())
    assert latest["drifted"] is False and report.keys[1].endswith(".md")


def test_every_planted_drift_is_found_with_what_was_expected_and_a_fix(provisioned, settings, stage):
    c = provisioned
    c.s3.put_bucket_versioning(Bucket=stage.bucket, VersioningConfiguration={"Status": "Suspended"})
    c.s3.delete_public_access_block(Bucket=stage.bucket)
    c.s3.put_bucket_tagging(Bucket=stage.bucket, Tagging={"TagSet": [{"Key": "project", "Value": "other"}]})
    c.dynamodb.update_time_to_live(
        TableName=stage.ledger_table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"}
    )
    workgroup = c.athena.get_work_group(WorkGroup=stage.athena_workgroup)["WorkGroup"]["Configuration"]
    c.athena.delete_work_group(WorkGroup=stage.athena_workgroup)  # moto has no UpdateWorkGroup: re-create it
    c.athena.create_work_group(
        Name=stage.athena_workgroup, Configuration={**workgroup, "BytesScannedCutoffPerQuery": 10_000_000}
    )
    crawler = "lakehouse-local-raw-orders"
    kept = ("Role", "DatabaseName", "Targets", "TablePrefix", "RecrawlPolicy", "Configuration")
    original = {k: v for k, v in c.glue.get_crawler(Name=crawler)["Crawler"].items() if k in kept}
    c.glue.delete_crawler(Name=crawler)  # moto has no UpdateCrawler either
    changed = {"UpdateBehavior": "LOG", "DeleteBehavior": "LOG"}  # a crawl that would only log a new schema
    c.glue.create_crawler(Name=crawler, SchemaChangePolicy=changed, **original)
    c.glue.delete_table(DatabaseName=stage.glue_database, Name="raw_orders")
    c.sns.delete_topic(TopicArn=stage.topic_arn(stage.notifications_topic, "123456789012"))
    arn = stage.state_machine_arn("123456789012")
    definition = json.loads(c.stepfunctions.describe_state_machine(stateMachineArn=arn)["definition"])
    definition["States"]["Notify"]["Parameters"]["Subject"] = "edited in the console"
    c.stepfunctions.update_state_machine(stateMachineArn=arn, definition=json.dumps(definition))
    c.s3.put_object(
        Bucket=stage.bucket, Key="config/lifecycle/lake.toml", Body=(CONFIG / "lifecycle" / "lake.toml").read_bytes()
    )  # pushed, not synced

    report = run_report(settings, stage, check(settings, stage, c))
    found = {(f.resource, f.property): f for f in report.findings}
    lake = f"s3://{stage.bucket}"
    assert (found[(lake, "versioning")].expected, found[(lake, "versioning")].actual) == ("Enabled", "Suspended")
    assert found[(lake, "public access block")].actual is None
    assert found[(lake, "tags")].actual == {"project": "other"}
    ttl = found[("dynamodb lakehouse-local-ledger", "time to live")]
    assert (ttl.expected, ttl.actual) == ("DISABLED", "ENABLED") and "update-time-to-live" in ttl.fix
    cutoff = found[("athena workgroup lakehouse-local-analytics", "BytesScannedCutoffPerQuery")]
    assert (cutoff.expected, cutoff.actual) == (settings.limits.athena_bytes_scanned_cutoff, 10_000_000)
    policy = found[(f"glue crawler {crawler}", "SchemaChangePolicy")]
    assert policy.actual["UpdateBehavior"] == "LOG" and policy.fix == "lakehouse deploy --stage local"
    assert found[(f"glue table {stage.glue_database}.raw_orders", "exists")].actual is False
    assert found[("sns lakehouse-local-notifications", "exists")].actual is False
    machine = found[("state machine lakehouse-local-pipeline", "definition (states that differ)")]
    assert machine.expected == ["Notify"]
    lifecycle = found[(lake, "lifecycle rules")]
    assert lifecycle.actual == [] and "archive-to-colder-storage" in [r["ID"] for r in lifecycle.expected]
    assert lifecycle.fix.startswith("lakehouse lifecycle sync --stage local")
    assert len(report.findings) == 10, [(f.resource, f.property) for f in report.findings]

    markdown = c.s3.get_object(Bucket=stage.bucket, Key=report.keys[1])["Body"].read().decode()
    assert (
        "**10 findings**" in markdown
        and "| `dynamodb lakehouse-local-ledger` | time to live | DISABLED | ENABLED |" in markdown
    )
    assert "Drift on stage local" in report.summary() and "time to live" in report.summary()

    # provisioning again repairs what it declares; the lifecycle sync the rules; TTL and the edits outside
    # provisioning's reach stay reported
    c.athena.delete_work_group(WorkGroup=stage.athena_workgroup)  # (moto cannot update these in place)
    c.glue.delete_crawler(Name=crawler)
    provision(settings, stage, Clients.for_stage(stage), config_files(CONFIG), progress=lambda _: None)
    LifecycleSync(c.s3, stage.bucket, settings.zones.config, settings.zones.reports).run(dry_run=False)
    after = {(f.resource, f.property) for f in run_report(settings, stage, check(settings, stage, c)).findings}
    assert after == {("dynamodb lakehouse-local-ledger", "time to live")}


def test_a_deployment_that_fails_half_way_is_recorded_as_failed(provisioned, settings, stage, monkeypatch):
    import pytest

    from deploy import provision as provisioning

    def broken(*args, **kwargs):
        raise RuntimeError("glue is down")

    monkeypatch.setattr(provisioning, "ensure_catalog", broken)
    with pytest.raises(RuntimeError):
        provision(settings, stage, Clients.for_stage(stage), config_files(CONFIG), progress=lambda _: None)
    latest, first = deployments(provisioned.s3, settings, stage)
    assert latest["result"] == "failed: RuntimeError: glue is down" and first["result"] == "succeeded"
    assert latest["steps"][-1].startswith("glue jobs")  # how far it got


def test_the_drift_report_needs_no_chalice_folder_as_in_a_deployed_lambda(provisioned, settings, stage, monkeypatch):
    from chalicelib import APP_NAME
    from chalicelib.stage.drift import DriftCheck
    from deploy import chalice_project as provision

    assert json.loads(provision.CHALICE_CONFIG.read_text())["app_name"] == APP_NAME
    monkeypatch.setattr(provision, "CHALICE_CONFIG", provision.PROJECT_DIR / "no-such-folder" / "config.json")
    report = DriftCheck.for_stage(settings, stage).run(None)
    assert [f for f in report.findings if f.property == "readable"] == []
    assert f"iam role {stage.glue_role}-process" in report.checked
