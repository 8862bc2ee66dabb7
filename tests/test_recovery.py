"""The batcher's tick on AWS semantics (moto): a file a dead validator left RECEIVED is announced again on the ingest
queue once its lease and the queue's visibility timeout have passed (a message still in flight would have come back by
then), once per lease and visibility timeout and at most MAX_ANNOUNCEMENTS times; the announcement gets it judged; the
batcher Lambda emits what stays RECEIVED as the metric the stage's alarm watches."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from test_app import H, R, sqs_event

from chalicelib import METRICS_NAMESPACE
from chalicelib.ingest.events import refs_from_notification
from chalicelib.ledger import DynamoDBLedger, FileRecord
from chalicelib.names import received_alarm_name
from chalicelib.pipeline.batcher import Pipeline
from chalicelib.pipeline.recovery import MAX_ANNOUNCEMENTS, METRIC
from chalicelib.stage.resources import received_alarm

KEY = "raw/orders/ingest_date=2025-03-01/a.csv"


class NoRuns:
    """An orchestrator with nothing in flight (no file is VALID here: the tick starts nothing)."""

    def start(self, name, input_):
        raise AssertionError("no run should start")

    def status(self, name):
        return None


@pytest.fixture
def stranded(provisioned, stage):
    """An uploaded file whose validator claimed it at `claimed` and died: RECEIVED, its message gone."""
    version = provisioned.s3.put_object(Bucket=stage.bucket, Key=KEY, Body=H + R)["VersionId"]
    ledger = DynamoDBLedger(provisioned.dynamodb, stage.ledger_table, stage.lease_seconds)
    record = FileRecord(f"{stage.bucket}/{KEY}#{version}", stage.bucket, KEY, version, "orders")
    claimed = datetime.now(UTC) - timedelta(hours=1)
    ledger.claim(record, now=claimed)
    queued(provisioned, stage)  # S3's test event and the upload's notification: the one that died with its validator
    return ledger, record, claimed


def queued(provisioned, stage) -> list[str]:
    url = provisioned.sqs.get_queue_url(QueueName=stage.ingest_queue)["QueueUrl"]
    messages = provisioned.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    for m in messages:
        provisioned.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return [m["Body"] for m in messages]


def tick_at(settings, stage, ledger, when):
    return Pipeline(settings, stage, ledger, NoRuns(), now=lambda: when).tick()


def test_a_received_file_is_announced_again_only_once_its_lease_and_the_visibility_timeout_have_passed(
    provisioned, settings, stage, stranded
):
    ledger, record, claimed = stranded
    lease, visibility = timedelta(seconds=stage.lease_seconds), timedelta(seconds=stage.queue_visibility_seconds)
    within_lease = tick_at(settings, stage, ledger, claimed + lease - timedelta(seconds=1))
    # the lease is over, but a message the dead validator held may still come back from the queue
    within_visibility = tick_at(settings, stage, ledger, claimed + lease + visibility - timedelta(seconds=1))
    assert (within_lease.announced, within_lease.past_lease) == ((), 0)
    assert (within_visibility.announced, within_visibility.past_lease) == ((), 0)
    assert queued(provisioned, stage) == []
    later = claimed + lease + visibility + timedelta(seconds=1)
    tick = tick_at(settings, stage, ledger, later)
    assert tick.announced == (record.file_id,) and tick.past_lease == 1 and tick.action == "idle"
    (body,) = queued(provisioned, stage)
    (ref,) = refs_from_notification(json.loads(body))  # what S3 would have sent for that very version
    assert (ref.bucket, ref.key, ref.version_id) == (stage.bucket, KEY, record.version_id)
    again = tick_at(settings, stage, ledger, later + lease)  # a backlog may still hold it: not twice
    assert again.announced == () and again.past_lease == 1 and queued(provisioned, stage) == []


def test_the_announcement_gets_the_file_judged_once(client, provisioned, settings, stage, stranded):
    ledger, record, _ = stranded
    tick_at(settings, stage, ledger, datetime.now(UTC))
    (body,) = queued(provisioned, stage)
    client.lambda_.invoke("validate", sqs_event(body))  # the validator takes the expired lease over
    judged = ledger.get(record.file_id)
    assert judged.status == "VALID" and judged.rows == 1 and judged.reannounced == 1
    client.lambda_.invoke("validate", sqs_event(body))  # a late duplicate of the message changes nothing
    assert ledger.get(record.file_id) == judged
    later = Pipeline(settings, stage, ledger, NoRuns(), now=lambda: datetime.now(UTC) + timedelta(hours=12))
    assert later.recover_received().past_lease == 0 and queued(provisioned, stage) == []


def test_a_file_that_keeps_killing_its_validator_is_announced_at_most_three_times_then_stays_counted(
    provisioned, settings, stage, stranded
):
    ledger, record, claimed = stranded
    cycle = timedelta(seconds=stage.lease_seconds + stage.queue_visibility_seconds + 1)
    now = claimed
    for _ in range(MAX_ANNOUNCEMENTS):
        now += cycle
        assert tick_at(settings, stage, ledger, now).announced == (record.file_id,)
        ledger.claim(record, now=now)  # delivered: a validator takes the lease over ... and dies again
    now += cycle
    tick = tick_at(settings, stage, ledger, now)
    assert tick.announced == () and tick.past_lease == 1  # the alarm's metric keeps counting it
    assert len(queued(provisioned, stage)) == MAX_ANNOUNCEMENTS
    assert ledger.get(record.file_id).reannounced == MAX_ANNOUNCEMENTS


def test_of_two_ticks_at_once_only_one_announces(provisioned, settings, stage, stranded):
    ledger, _, claimed = stranded
    (seen,) = ledger.received_since("2000-01-01")
    now = claimed + timedelta(hours=1)
    assert ledger.mark_reannounced(seen, now) is True
    assert ledger.mark_reannounced(seen, now) is False  # the other tick read the record before this count


def test_a_file_older_than_the_look_back_is_neither_announced_nor_counted(provisioned, settings, stage, stranded):
    ledger, _, claimed = stranded
    tick = tick_at(settings, stage, ledger, claimed + timedelta(days=1, seconds=1))
    assert (tick.announced, tick.past_lease) == ((), 0) and queued(provisioned, stage) == []


def test_the_batcher_lambda_emits_the_metric_the_alarm_watches(client, provisioned, stage, stranded, capfd):
    import app

    app.logger.registered_handler.stream = sys.stdout  # it kept an earlier test's (closed) stdout: no flush of that
    capfd.readouterr()
    event = client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event", detail={}, resources=[])
    client.lambda_.invoke("batcher", event)
    lines = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")]
    metric = next(line for line in lines if METRIC in line)
    assert metric[METRIC] == [1.0] and len(queued(provisioned, stage)) == 1
    (emitted,) = metric["_aws"]["CloudWatchMetrics"]
    alarm = {
        "AlarmName": received_alarm_name(stage),
        **received_alarm(stage, stage.topic_arn(stage.alerts_topic, "123456789012")),
    }
    # the alarm names the metric exactly as the batcher emits it: namespace, name and every dimension
    assert (alarm["Namespace"], alarm["MetricName"]) == (emitted["Namespace"], METRIC) == (METRICS_NAMESPACE, METRIC)
    dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
    assert dimensions == {name: metric[name] for name in emitted["Dimensions"][0]}
    cloudwatch = boto3.client("cloudwatch", region_name=stage.region)
    cloudwatch.put_metric_alarm(**alarm)
    (made,) = cloudwatch.describe_alarms(AlarmNames=[alarm["AlarmName"]])["MetricAlarms"]
    assert made["AlarmActions"] == [stage.topic_arn(stage.alerts_topic, "123456789012")]


def test_the_in_memory_ledger_lists_and_counts_received_files_as_the_dynamodb_one_does(stranded):
    from chalicelib.ledger import InMemoryLedger

    dynamodb, record, claimed = stranded
    memory = InMemoryLedger(lease_seconds=dynamodb.lease_seconds)
    memory.claim(record, now=claimed)
    for ledger in (dynamodb, memory):
        (seen,) = ledger.received_since(claimed.isoformat())
        assert ledger.received_since((claimed + timedelta(seconds=1)).isoformat()) == []
        assert ledger.mark_reannounced(seen, claimed) and not ledger.mark_reannounced(seen, claimed)
        assert ledger.get(record.file_id).reannounced == 1


def test_up_announces_again_what_a_killed_stage_left_received_past_its_lease(provisioned, stage, stranded):
    from lakehouse.ops import announce_received_files

    _, record, _ = stranded
    assert announce_received_files(stage) == 1  # `up` after a kill long ago: the batcher's first tick is a minute away
    (body,) = queued(provisioned, stage)
    assert refs_from_notification(json.loads(body))[0].version_id == record.version_id


def test_a_queue_that_refuses_the_announcement_fails_the_tick_and_the_next_cycle_announces_again(
    provisioned, settings, stage, stranded
):
    ledger, record, claimed = stranded
    cycle = timedelta(seconds=stage.lease_seconds + stage.queue_visibility_seconds + 1)

    def refused(body):
        raise RuntimeError("AccessDenied: sqs:SendMessage")

    failing = Pipeline(settings, stage, ledger, NoRuns(), now=lambda: claimed + cycle, send=refused)
    with pytest.raises(RuntimeError, match="AccessDenied"):  # the batcher Lambda fails: its Errors metric shows it
        failing.tick()
    assert ledger.get(record.file_id).status == "RECEIVED" and queued(provisioned, stage) == []
    assert tick_at(settings, stage, ledger, claimed + 2 * cycle).announced == (record.file_id,)
