"""The stage's resource table (chalicelib/stage/resources.py): provisioning, teardown and drift all iterate over it,
drift compares what provisioning sets, the dead-letter alarm is one of its entries, and /status shows the DLQ."""

from __future__ import annotations

import json

import pytest
from conftest import CONFIG

from chalicelib.config import config_files
from chalicelib.errors import DeploymentError
from chalicelib.stage import resources
from chalicelib.stage.drift import DriftCheck
from chalicelib.stage.resources import Alarm, Queue, Resource, Topic
from deploy import provision
from deploy.teardown import teardown

ACCOUNT = "123456789012"


def drift(settings, stage, clients):
    """The drift findings of the stage as (resource, property) -> finding (the lifecycle sync has its own tests)."""
    report = DriftCheck(settings, stage, clients, None, clients.sqs).run(None, lifecycle=False)
    return {(f.resource, f.property): f for f in report.findings}


def deploy(settings, stage, clients):
    return provision.provision(settings, stage, clients, config_files(CONFIG), progress=lambda _: None)


def aws_names_filter_rules(clients):
    """GetBucketNotificationConfiguration as AWS answers it: filter rule names capitalised (`Prefix`), whatever case
    they were put in (moto hands back the case it was given)."""

    def capitalise(parsed, **_):
        for queue in parsed.get("QueueConfigurations", []):
            for rule in queue.get("Filter", {}).get("Key", {}).get("FilterRules", []):
                rule["Name"] = rule["Name"].capitalize()

    clients.s3.meta.events.register("after-call.s3.GetBucketNotificationConfiguration", capitalise)


def test_a_new_topic_and_queue_are_one_entry_each_for_deploy_drift_and_teardown(
    provisioned, settings, stage, monkeypatch
):
    c, table = provisioned, resources.stage_resources
    audit = Topic(name="lakehouse-local-audit", arn=stage.topic_arn("lakehouse-local-audit", ACCOUNT))
    inbox = Queue(
        name="lakehouse-local-inbox",
        arn=f"arn:aws:sqs:{stage.region}:{ACCOUNT}:lakehouse-local-inbox",
        attributes={"VisibilityTimeout": "45"},
    )
    monkeypatch.setattr(resources, "stage_resources", lambda *args: [*table(*args), audit, inbox])

    steps = deploy(settings, stage, c)
    assert "sns lakehouse-local-audit" in steps and "sqs lakehouse-local-inbox: VisibilityTimeout" in steps
    url = c.sqs.get_queue_url(QueueName="lakehouse-local-inbox")["QueueUrl"]
    assert c.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]["VisibilityTimeout"] == "45"
    assert drift(settings, stage, c) == {}

    c.sns.delete_topic(TopicArn=audit.arn)
    c.sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "60"})
    found = drift(settings, stage, c)
    assert set(found) == {("sns lakehouse-local-audit", "exists"), ("sqs lakehouse-local-inbox", "VisibilityTimeout")}
    assert (
        found[("sqs lakehouse-local-inbox", "VisibilityTimeout")].actual,
        found[("sns lakehouse-local-audit", "exists")].fix,
    ) == (
        "60",
        "lakehouse deploy --stage local",
    )
    deploy(settings, stage, c)
    assert drift(settings, stage, c) == {}

    deleted, _ = teardown(settings, stage, c, apply=True)
    assert {"sns lakehouse-local-audit", "sqs lakehouse-local-inbox"} <= set(deleted)
    assert c.sns.list_topics()["Topics"] == [] and not c.sqs.list_queues().get("QueueUrls")


def test_drift_right_after_a_deploy_finds_nothing_with_s3s_capitalised_filter_rules_and_deploy_puts_nothing(
    provisioned, settings, stage
):
    """Defect 6: S3 answers the notification's filter rule as `Prefix`; deploy wrote `prefix`. Compared case-blind,
    a drift run right after a deploy finds nothing, and the next deploy does not write the notification again."""
    c = provisioned
    aws_names_filter_rules(c)
    (rule,) = c.s3.get_bucket_notification_configuration(Bucket=stage.bucket)["QueueConfigurations"][0]["Filter"][
        "Key"
    ]["FilterRules"]
    assert rule == {"Name": "Prefix", "Value": "raw/"}  # as AWS tells it
    assert drift(settings, stage, c) == {}
    puts = []
    c.s3.meta.events.register(
        "before-call.s3.PutBucketNotificationConfiguration", lambda params, **_: puts.append(params)
    )
    assert "bucket notification lakehouse-ingest: up to date" in deploy(settings, stage, c)
    assert puts == []

    # a real change is still found, and put back
    current = c.s3.get_bucket_notification_configuration(Bucket=stage.bucket)
    (ours,) = current["QueueConfigurations"]
    ours["Filter"]["Key"]["FilterRules"] = [{"Name": "prefix", "Value": "raw/orders/"}]
    c.s3.put_bucket_notification_configuration(
        Bucket=stage.bucket, NotificationConfiguration={"QueueConfigurations": [ours]}
    )
    found = drift(settings, stage, c)[(f"s3://{stage.bucket} notification lakehouse-ingest", "raw/ -> ingest queue")]
    assert (found.expected["FilterRules"], found.actual["FilterRules"]) == (
        [("prefix", "raw/")],
        [("prefix", "raw/orders/")],
    )
    deploy(settings, stage, c)
    assert len(puts) == 2 and drift(settings, stage, c) == {}  # the test's put, then deploy's


def test_drift_compares_the_ledgers_index_key_schemas_not_only_their_names(provisioned, settings, stage):
    """A table made before the time-index change has `by_received_at` keyed by the old attribute: same name, other
    key. Drift says so (the ledger migration repairs it)."""
    c = provisioned
    spec = resources.named(
        resources.stage_resources(settings, stage, ACCOUNT), resources.LedgerTable, stage.ledger_table
    ).spec
    old = [dict(i) for i in spec["GlobalSecondaryIndexes"]]
    old[0] = {**old[0], "KeySchema": [{"AttributeName": "received_day", "KeyType": "HASH"}, *old[0]["KeySchema"][1:]]}
    c.dynamodb.delete_table(TableName=stage.ledger_table)
    c.dynamodb.create_table(
        TableName=stage.ledger_table,
        AttributeDefinitions=[
            *(a for a in spec["AttributeDefinitions"] if a["AttributeName"] != "time_key"),
            {"AttributeName": "received_day", "AttributeType": "S"},
        ],
        KeySchema=spec["KeySchema"],
        GlobalSecondaryIndexes=old,
        BillingMode="PAY_PER_REQUEST",
    )
    c.dynamodb.update_continuous_backups(
        TableName=stage.ledger_table, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )
    found = drift(settings, stage, c)
    assert set(found) == {(f"dynamodb {stage.ledger_table}", "indexes")}
    index = old[0]["IndexName"]
    indexes = found[(f"dynamodb {stage.ledger_table}", "indexes")]
    assert indexes.actual[index]["KeySchema"][0]["AttributeName"] == "received_day"
    assert indexes.expected[index]["KeySchema"][0]["AttributeName"] == "time_key"


def test_the_ingest_dead_letter_queue_has_an_alarm_to_the_alerts_topic_deployed_drift_checked_and_torn_down(
    provisioned, settings, stage
):
    c = provisioned
    name = "lakehouse-local-ingest-dlq-not-empty"
    (alarm,) = c.cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": stage.ingest_dlq}]
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0.0)
    assert alarm["AlarmActions"] == [stage.topic_arn(stage.alerts_topic, ACCOUNT)]
    assert f"cloudwatch alarm {name}: up to date" in deploy(settings, stage, c)

    definition = {k: v for k, v in alarm.items() if k in resources.dlq_alarm(stage, stage.ingest_dlq, "")}
    c.cloudwatch.put_metric_alarm(AlarmName=name, **{**definition, "Threshold": 10.0})  # edited in the console
    found = drift(settings, stage, c)
    assert set(found) == {(f"cloudwatch alarm {name}", "Threshold")}
    assert (
        found[(f"cloudwatch alarm {name}", "Threshold")].expected,
        found[(f"cloudwatch alarm {name}", "Threshold")].actual,
    ) == (0.0, 10.0)
    c.cloudwatch.delete_alarms(AlarmNames=[name])
    assert set(drift(settings, stage, c)) == {(f"cloudwatch alarm {name}", "exists")}
    assert f"cloudwatch alarm {name}: written" in deploy(settings, stage, c)
    assert drift(settings, stage, c) == {}

    listed, _ = teardown(settings, stage, c)
    assert f"cloudwatch alarm {name}" in listed
    teardown(settings, stage, c, apply=True)
    assert c.cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"] == []


def test_a_kind_deploy_cannot_ensure_is_refused_by_name(provisioned, settings, stage):
    class Bucketless(Resource):
        kind = "mystery"

    with pytest.raises(
        DeploymentError, match=r"^mystery m: no way to ensure a Bucketless \(deploy.provision.ensure\)$"
    ):
        provision.ensure(Bucketless(name="m", arn="arn:m"), settings, stage, provisioned)


def test_a_policy_gets_every_arn_of_a_kind_from_the_table(settings, stage):
    table = resources.stage_resources(settings, stage, ACCOUNT)
    assert resources.arns(table, Topic) == [
        f"arn:aws:sns:{stage.region}:{ACCOUNT}:{stage.alerts_topic}",
        f"arn:aws:sns:{stage.region}:{ACCOUNT}:{stage.notifications_topic}",
    ]
    assert resources.arns(table, Queue) == [
        f"arn:aws:sqs:{stage.region}:{ACCOUNT}:{q}"
        for q in (stage.ingest_dlq, stage.ingest_queue, stage.accepted_queue)
    ]
    assert resources.arns(table, Alarm) == [
        f"arn:aws:cloudwatch:{stage.region}:{ACCOUNT}:alarm:lakehouse-local-ingest-dlq-not-empty",
        f"arn:aws:cloudwatch:{stage.region}:{ACCOUNT}:alarm:lakehouse-local-ingest-received-past-lease",
    ]
    with pytest.raises(KeyError, match="no sqs named nope in the stage's resources"):
        resources.named(table, Queue, "nope")


def test_status_reports_the_dead_letter_queues_depth(client, provisioned, stage):
    url = provisioned.sqs.get_queue_url(QueueName=stage.ingest_dlq)["QueueUrl"]
    for n in range(3):
        provisioned.sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"failed": n}))
    provisioned.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=300)
    body = json.loads(client.http.get("/status").body)
    assert body["dead_letter"] == {"queue": stage.ingest_dlq, "exists": True, "messages": 2, "in_flight": 1}
    provisioned.sqs.delete_queue(QueueUrl=url)
    body = json.loads(client.http.get("/status").body)
    assert body["dead_letter"] == {"queue": stage.ingest_dlq, "exists": False, "messages": None, "in_flight": None}


def test_the_ingest_queue_policy_and_redrive_are_declared_once_for_deploy_and_drift(provisioned, settings, stage):
    """The queue attributes drift compares are the ones deploy wrote, JSON documents compared as documents."""
    c = provisioned
    ingest = resources.named(resources.stage_resources(settings, stage, ACCOUNT), Queue, stage.ingest_queue)
    url = c.sqs.get_queue_url(QueueName=stage.ingest_queue)["QueueUrl"]
    live = c.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert json.loads(live["Policy"]) == json.loads(ingest.attributes["Policy"])
    c.sqs.set_queue_attributes(
        QueueUrl=url,
        Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": ingest.arn, "maxReceiveCount": 50})},
    )
    found = drift(settings, stage, c)[(f"sqs {stage.ingest_queue}", "RedrivePolicy")]
    assert found.actual["maxReceiveCount"] == "50" and found.expected["maxReceiveCount"] == str(stage.max_receive_count)
    deploy(settings, stage, c)
    assert drift(settings, stage, c) == {}


def test_an_entry_drift_cannot_read_is_a_finding_and_the_others_are_still_checked(
    provisioned, settings, stage, monkeypatch
):
    from botocore.exceptions import ClientError

    def denied(**_):
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not allowed"}}, "DescribeAlarms")

    monkeypatch.setattr(provisioned.cloudwatch, "describe_alarms", denied)
    report = DriftCheck(settings, stage, provisioned, None, provisioned.sqs).run(None, lifecycle=False)
    assert [(f.resource, f.property, f.fix) for f in report.findings] == [
        (f"cloudwatch alarm {name}", "readable", "check permissions")
        for name in ("lakehouse-local-ingest-dlq-not-empty", "lakehouse-local-ingest-received-past-lease")
    ]
    assert all("AccessDenied" in f.actual for f in report.findings)
    assert {f"sns {stage.notifications_topic}", f"athena workgroup {stage.athena_workgroup}"} <= set(report.checked)
