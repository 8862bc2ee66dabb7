"""The stage's resources, each declared once: the table provisioning, teardown and drift iterate over.

In the manner of Chalice's deploy models (chalice/deploy/models.py): each kind is a small frozen dataclass saying what
the resource is (name, ARN, the documents provisioning writes) and how to tell it exists, how to compare it with the
live account, and how to delete it. How to ensure each kind is `deploy.provision.ensure` (Chalice's planner has one
`_plan_<type>` per model): the Lambdas ship this package, not the deployment code. A new topic or queue is one entry
in `stage_resources`; `arns` gives a policy every ARN of a kind.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from chalicelib.aws import error_code
from chalicelib.config import Settings, Stage
from chalicelib.errors import DeploymentError
from chalicelib.ledger import LEDGER_TABLE_SPEC
from chalicelib.lifecycle.rules import normalise
from chalicelib.names import RECEIVED_PAST_LEASE_METRIC, dlq_alarm_name, received_alarm_name
from chalicelib.stage import declared

if TYPE_CHECKING:
    from types_boto3_s3.type_defs import ObjectIdentifierTypeDef
    from types_boto3_sqs.literals import QueueAttributeNameType

    from chalicelib.aws import Clients

R = TypeVar("R", bound="Resource")


@dataclass(frozen=True)
class Difference:
    """One property where the live resource is not the declared one (`fix`: None for the stage's deploy)."""

    property: str
    expected: Any
    actual: Any
    fix: str | None = None


def answer(call: Callable[..., Any], missing: tuple[str, ...]) -> Any:
    """The API's answer, or None where the error says the thing is not there."""
    try:
        return call()
    except Exception as exc:
        if error_code(exc) in missing:
            return None
        raise


@dataclass(frozen=True, kw_only=True)
class Resource:
    """One resource of the stage. `data`: it holds data, so teardown keeps it unless told to delete the data."""

    kind: ClassVar[str]
    name: str
    arn: str
    note: str = ""  # said beside the label where teardown lists it
    data: bool = False

    @property
    def label(self) -> str:
        """How reports name it: `sqs lakehouse-dev-ingest`."""
        return f"{self.kind} {self.name}"

    def exists(self, c: Clients) -> bool:
        """Whether the live account has it."""
        raise NotImplementedError

    def delete(self, c: Clients) -> None:
        """Delete it (teardown asks only when it exists)."""
        raise NotImplementedError

    def differences(self, c: Clients) -> list[Difference]:
        """What differs on a resource that exists; a kind that only has to exist compares nothing more."""
        return []

    def compare(self, c: Clients) -> list[Difference]:
        """The live resource against the declaration: missing, or each property provisioning sets that differs."""
        if not self.exists(c):
            return [Difference("exists", True, False)]
        return self.differences(c)


@dataclass(frozen=True, kw_only=True)
class Topic(Resource):
    """An SNS topic (CreateTopic is idempotent by name)."""

    kind: ClassVar[str] = "sns"
    tags: Mapping[str, str] = field(default_factory=dict)

    def exists(self, c: Clients) -> bool:
        return (
            answer(lambda: c.sns.get_topic_attributes(TopicArn=self.arn), ("NotFound", "NotFoundException")) is not None
        )

    def delete(self, c: Clients) -> None:
        c.sns.delete_topic(TopicArn=self.arn)


# Queue attributes SQS answers as JSON text: compared as documents (SQS may re-serialise them, and RedrivePolicy's
# maxReceiveCount comes back as a number or a string)
_JSON_ATTRIBUTES = ("Policy", "RedrivePolicy")
_QUEUE_MISSING = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


def _attribute(key: str, value: str | None) -> Any:
    if value is None or key not in _JSON_ATTRIBUTES:
        return value
    document = json.loads(value)
    return {k: str(v) for k, v in document.items()} if key == "RedrivePolicy" else document


@dataclass(frozen=True, kw_only=True)
class Queue(Resource):
    """An SQS queue and the attributes provisioning sets on it."""

    kind: ClassVar[str] = "sqs"
    attributes: Mapping[QueueAttributeNameType, str] = field(default_factory=dict)  # as CreateQueue takes them

    def url(self, c: Clients) -> str | None:
        """The queue's URL, or None if there is no such queue."""
        url: str | None = answer(lambda: c.sqs.get_queue_url(QueueName=self.name)["QueueUrl"], _QUEUE_MISSING)
        return url

    def exists(self, c: Clients) -> bool:
        return self.url(c) is not None

    def differences(self, c: Clients) -> list[Difference]:
        url = self.url(c)
        assert url is not None  # compare asked exists first
        live = c.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]).get("Attributes", {})
        return [
            Difference(key, _attribute(key, value), _attribute(key, live.get(key)))
            for key, value in self.attributes.items()
            if _attribute(key, value) != _attribute(key, live.get(key))
        ]

    def delete(self, c: Clients) -> None:
        url = self.url(c)
        if url is not None:
            c.sqs.delete_queue(QueueUrl=url)


@dataclass(frozen=True, kw_only=True)
class Alarm(Resource):
    """A CloudWatch metric alarm; `definition` is PutMetricAlarm's arguments but the name, as DescribeAlarms tells
    them back."""

    kind: ClassVar[str] = "cloudwatch alarm"
    definition: Mapping[str, Any] = field(default_factory=dict)

    def live(self, c: Clients) -> dict[str, Any] | None:
        """The alarm as DescribeAlarms tells it, or None."""
        alarms = c.cloudwatch.describe_alarms(AlarmNames=[self.name], AlarmTypes=["MetricAlarm"])["MetricAlarms"]
        return dict(alarms[0]) if alarms else None

    def exists(self, c: Clients) -> bool:
        return self.live(c) is not None

    def differences(self, c: Clients) -> list[Difference]:
        live = self.live(c) or {}
        return [Difference(k, v, live.get(k)) for k, v in self.definition.items() if live.get(k) != v]

    def delete(self, c: Clients) -> None:
        c.cloudwatch.delete_alarms(AlarmNames=[self.name])


def _index(index: Mapping[str, Any]) -> dict[str, Any]:
    """A global secondary index's key schema and projection, as CreateTable takes them and DescribeTable tells them."""
    projection = dict(index.get("Projection", {}))
    if "NonKeyAttributes" in projection:
        projection["NonKeyAttributes"] = sorted(projection["NonKeyAttributes"])
    return {"KeySchema": list(index.get("KeySchema", [])), "Projection": projection}


@dataclass(frozen=True, kw_only=True)
class LedgerTable(Resource):
    """The file ledger (DynamoDB): its indexes' key schemas and projections, billing mode, point-in-time recovery, and
    no time to live (a TTL would silently delete the files' history)."""

    kind: ClassVar[str] = "dynamodb"
    spec: Mapping[str, Any] = field(default_factory=lambda: LEDGER_TABLE_SPEC)

    def exists(self, c: Clients) -> bool:
        missing = ("ResourceNotFoundException",)
        return answer(lambda: c.dynamodb.describe_table(TableName=self.name), missing) is not None

    def differences(self, c: Clients) -> list[Difference]:
        ddb, name = c.dynamodb, self.name
        table = ddb.describe_table(TableName=name)["Table"]
        found: list[Difference] = []
        wanted = {i["IndexName"]: _index(i) for i in self.spec["GlobalSecondaryIndexes"]}
        have = {i["IndexName"]: _index(i) for i in table.get("GlobalSecondaryIndexes", [])}
        if wanted != have:
            found.append(Difference("indexes", wanted, have))
        billing = table.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")
        if billing != self.spec["BillingMode"]:
            found.append(Difference("billing mode", self.spec["BillingMode"], billing))
        backups = ddb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
        pitr = backups.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus")
        if pitr != "ENABLED":
            found.append(Difference("point-in-time recovery", "ENABLED", pitr))
        ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"].get("TimeToLiveStatus")
        if ttl != "DISABLED":
            fix = (
                f"disable TTL: aws dynamodb update-time-to-live --table-name {name} "
                "--time-to-live-specification Enabled=false,AttributeName=<its attribute>"
            )
            found.append(Difference("time to live", "DISABLED", ttl, fix))
        return found

    def delete(self, c: Clients) -> None:
        c.dynamodb.delete_table(TableName=self.name)


_BUCKET_MISSING = ("404", "NoSuchBucket", "NotFound")


@dataclass(frozen=True, kw_only=True)
class Bucket(Resource):
    """An S3 bucket of the stage and the documents provisioning writes on it (None: not written). Deleting one
    deletes every version of every object first (a versioned bucket is not empty until then)."""

    kind: ClassVar[str] = "s3"
    encryption: Mapping[str, Any] = field(default_factory=lambda: declared.BUCKET_ENCRYPTION)
    public_access_block: Mapping[str, Any] = field(default_factory=lambda: declared.PUBLIC_ACCESS_BLOCK)
    versioning: bool = False
    tls_statement: Mapping[str, Any] | None = None  # the bucket policy's TLS-only statement
    tags: Mapping[str, str] | None = None
    logging: Mapping[str, Any] | None = None  # its server access logging
    retention: list[dict[str, Any]] | None = None  # lifecycle rules deploy owns (the log bucket's)
    logs_of: str | None = None  # the bucket whose server access logs it holds

    @property
    def label(self) -> str:
        return f"s3://{self.name}"

    def exists(self, c: Clients) -> bool:
        return answer(lambda: c.s3.head_bucket(Bucket=self.name), _BUCKET_MISSING) is not None

    def differences(self, c: Clients) -> list[Difference]:
        s3, name = c.s3, self.name
        have: dict[str, Any] = {}
        want: dict[str, Any] = {}
        if self.versioning:
            want["versioning"], have["versioning"] = "Enabled", s3.get_bucket_versioning(Bucket=name).get("Status")
            have["versioning"] = have["versioning"] or "Disabled"
        want["encryption"] = self.encryption
        have["encryption"] = answer(
            lambda: s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"],
            ("ServerSideEncryptionConfigurationNotFoundError",),
        )
        want["public access block"] = self.public_access_block
        have["public access block"] = answer(
            lambda: s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"],
            ("NoSuchPublicAccessBlockConfiguration",),
        )
        if self.tls_statement is not None:
            policy = answer(lambda: json.loads(s3.get_bucket_policy(Bucket=name)["Policy"]), ("NoSuchBucketPolicy",))
            statements = (policy or {}).get("Statement", [])
            want["TLS-only policy"] = self.tls_statement
            have["TLS-only policy"] = next(
                (st for st in statements if st.get("Sid") == self.tls_statement["Sid"]), None
            )
        if self.tags is not None:
            tags = answer(lambda: s3.get_bucket_tagging(Bucket=name)["TagSet"], ("NoSuchTagSet",)) or []
            want["tags"] = dict(self.tags)
            have["tags"] = {t["Key"]: t["Value"] for t in tags if t["Key"] in self.tags}
        if self.logging is not None:
            want["access logging"] = self.logging
            have["access logging"] = {
                k: v for k, v in s3.get_bucket_logging(Bucket=name).items() if k == "LoggingEnabled"
            }
        if self.retention is not None:
            rules = answer(
                lambda: s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"],
                ("NoSuchLifecycleConfiguration",),
            )
            want["log retention"] = [normalise(r) for r in self.retention]
            have["log retention"] = [normalise(r) for r in rules or []]
        return [Difference(k, v, have[k]) for k, v in want.items() if have[k] != v]

    def delete(self, c: Clients) -> None:
        s3, bucket = c.s3, self.name
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            objects: list[ObjectIdentifierTypeDef] = [
                {"Key": o["Key"], "VersionId": o["VersionId"]} for o in page.get("Versions", [])
            ]
            objects += [{"Key": o["Key"], "VersionId": o["VersionId"]} for o in page.get("DeleteMarkers", [])]
            for start in range(0, len(objects), 1000):
                done = s3.delete_objects(
                    Bucket=bucket, Delete={"Objects": objects[start : start + 1000], "Quiet": True}
                )
                if done.get("Errors"):  # per-key errors come inside a 200: botocore cannot retry them
                    raise DeploymentError(
                        f"s3://{bucket}: could not delete {len(done['Errors'])} objects: {done['Errors'][0]}"
                    )
        s3.delete_bucket(Bucket=bucket)


def comparable_queue_configuration(configuration: Mapping[str, Any]) -> dict[str, Any]:
    """A bucket's queue notification as PutBucketNotificationConfiguration takes it and its Get tells it, made
    comparable: S3 answers a filter rule's name as `Prefix` or `Suffix` whatever case it was put in (S3 API Reference,
    FilterRule: "prefix | suffix"), so names compare case-blind, and events and rules unordered."""
    rules = configuration.get("Filter", {}).get("Key", {}).get("FilterRules", [])
    return {
        "Id": configuration.get("Id"),
        "QueueArn": configuration.get("QueueArn"),
        "Events": sorted(configuration.get("Events", [])),
        "FilterRules": sorted((r["Name"].lower(), r["Value"]) for r in rules),
    }


@dataclass(frozen=True, kw_only=True)
class BucketNotification(Resource):
    """One queue configuration of a bucket's notification document (S3 replaces the document whole: the others are
    kept as they are). `name` is its Id, `arn` the queue's."""

    kind: ClassVar[str] = "s3 notification"
    bucket: str
    prefix: str
    events: tuple[str, ...] = ("s3:ObjectCreated:*",)

    @property
    def label(self) -> str:
        return f"s3://{self.bucket} notification {self.name}"

    @property
    def configuration(self) -> dict[str, Any]:
        """Our queue configuration, as PutBucketNotificationConfiguration takes it."""
        return {
            "Id": self.name,
            "QueueArn": self.arn,
            "Events": list(self.events),
            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": self.prefix}]}},
        }

    def live(self, c: Clients) -> dict[str, Any] | None:
        """Our queue configuration as S3 tells it, or None."""
        document = answer(
            lambda: c.s3.get_bucket_notification_configuration(Bucket=self.bucket), ("404", "NoSuchBucket")
        )
        ours = [q for q in (document or {}).get("QueueConfigurations", []) if q.get("Id") == self.name]
        return dict(ours[0]) if ours else None

    def exists(self, c: Clients) -> bool:
        return self.live(c) is not None

    def up_to_date(self, live: Mapping[str, Any] | None) -> bool:
        """Whether the live queue configuration is ours as declared (compared as S3 tells it back)."""
        return live is not None and comparable_queue_configuration(live) == comparable_queue_configuration(
            self.configuration
        )

    def compare(self, c: Clients) -> list[Difference]:
        live = self.live(c)
        if self.up_to_date(live):
            return []
        wanted = comparable_queue_configuration(self.configuration)
        return [Difference("raw/ -> ingest queue", wanted, live and comparable_queue_configuration(live))]

    def delete(self, c: Clients) -> None:
        current = c.s3.get_bucket_notification_configuration(Bucket=self.bucket)
        others = [q for q in current.get("QueueConfigurations", []) if q.get("Id") != self.name]
        c.s3.put_bucket_notification_configuration(
            Bucket=self.bucket, NotificationConfiguration=declared.notification_with_queues(current, list(others))
        )


@dataclass(frozen=True, kw_only=True)
class Workgroup(Resource):
    """The Athena workgroup; `configuration` as CreateWorkGroup takes it."""

    kind: ClassVar[str] = "athena workgroup"
    configuration: Mapping[str, Any] = field(default_factory=dict)

    def exists(self, c: Clients) -> bool:
        return self.name in workgroup_names(c)

    def differences(self, c: Clients) -> list[Difference]:
        have = c.athena.get_work_group(WorkGroup=self.name)["WorkGroup"].get("Configuration", {})
        found = []
        for key, value in self.configuration.items():
            actual = have.get(key)
            if isinstance(value, dict) and isinstance(actual, dict):
                actual = {k: actual.get(k) for k in value}
            if actual != value:
                found.append(Difference(key, value, actual))
        return found

    def delete(self, c: Clients) -> None:
        c.athena.delete_work_group(WorkGroup=self.name, RecursiveDeleteOption=True)


def workgroup_names(c: Clients) -> set[str]:
    """Every Athena workgroup of the account and region (botocore has no paginator for ListWorkGroups)."""
    names: set[str] = set()
    token: str | None = None
    while True:
        page = c.athena.list_work_groups(NextToken=token) if token else c.athena.list_work_groups()
        names |= {w["Name"] for w in page["WorkGroups"]}
        token = page.get("NextToken")
        if not token:
            return names


def ingest_queue_policy(stage: Stage, queue_arn: str, account: str) -> dict[str, Any]:
    """S3 may send the lake bucket's notifications to the ingest queue, and only that bucket in this account."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowLakeBucketNotifications",
                "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                # both, as the S3 guide's queue policy example has them: a bucket name can move to another account
                "Condition": {
                    "ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{stage.bucket}"},
                    "StringEquals": {"aws:SourceAccount": account},
                },
            }
        ],
    }


DLQ_ALARM_PERIOD = 300  # seconds; SQS sends its queue metrics to CloudWatch every minute


def dlq_alarm(stage: Stage, dlq: str, alerts_arn: str) -> dict[str, Any]:
    """A message in the ingest dead-letter queue is a file that failed five times and sits in RECEIVED: alert.
    A queue with no messages for six hours is inactive and SQS stops its metrics (SQS developer guide, "Available
    CloudWatch metrics for Amazon SQS"): missing data is then no alarm."""
    return {
        "AlarmDescription": f"Files of stage {stage.name} failed ingest {stage.max_receive_count} times: "
        f"their messages are in {dlq}",
        "ActionsEnabled": True,
        "AlarmActions": [alerts_arn],
        "MetricName": "ApproximateNumberOfMessagesVisible",
        "Namespace": "AWS/SQS",
        "Statistic": "Maximum",
        "Dimensions": [{"Name": "QueueName", "Value": dlq}],
        "Period": DLQ_ALARM_PERIOD,
        "EvaluationPeriods": 1,
        "Threshold": 0.0,
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "notBreaching",
    }


METRICS_SERVICE = "lakehouse"  # the `service` dimension Powertools puts on every metric (POWERTOOLS_SERVICE_NAME)
RECEIVED_ALARM_MINUTES = 15  # files RECEIVED past lease and visibility timeout this long: alert


def received_alarm(stage: Stage, alerts_arn: str) -> dict[str, Any]:
    """Files that stay RECEIVED past their lease and the queue's visibility timeout though the batcher announced them
    again (chalicelib/pipeline/recovery.py): its metric at least 1 in each minute of RECEIVED_ALARM_MINUTES."""
    from chalicelib import METRICS_NAMESPACE

    return {
        "AlarmDescription": (
            f"files stay RECEIVED in {stage.ledger_table} past their lease and the ingest queue's visibility timeout "
            "though announced again (`lakehouse ledger --status RECEIVED`)"
        ),
        "ActionsEnabled": True,
        # no OKActions: a file stuck for longer than the batcher looks back leaves the metric without being judged
        "AlarmActions": [alerts_arn],
        "MetricName": RECEIVED_PAST_LEASE_METRIC,
        "Namespace": METRICS_NAMESPACE,
        "Statistic": "Minimum",
        "Dimensions": [{"Name": "service", "Value": METRICS_SERVICE}, {"Name": "stage", "Value": stage.name}],
        "Period": 60,
        "EvaluationPeriods": RECEIVED_ALARM_MINUTES,
        "DatapointsToAlarm": RECEIVED_ALARM_MINUTES,
        "Threshold": 1.0,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "TreatMissingData": "notBreaching",
    }


def stage_resources(settings: Settings, stage: Stage, account: str) -> list[Resource]:
    """The table: every resource below in the order provisioning makes them (teardown deletes in reverse)."""
    region = stage.region

    def sqs(name: str) -> str:
        return f"arn:aws:sqs:{region}:{account}:{name}"

    tags = {t["Key"]: t["Value"] for t in declared.tags(stage)}
    dlq, ingest = sqs(stage.ingest_dlq), sqs(stage.ingest_queue)
    alerts = stage.topic_arn(stage.alerts_topic, account)
    return [
        LedgerTable(
            name=stage.ledger_table,
            arn=f"arn:aws:dynamodb:{region}:{account}:table/{stage.ledger_table}",
            note=" (the file ledger)",
            data=True,
        ),
        Bucket(
            name=stage.bucket,
            arn=f"arn:aws:s3:::{stage.bucket}",
            note=" (the lake: every version of every object)",
            data=True,
            versioning=True,
            tls_statement=declared.tls_only_policy(stage.bucket)["Statement"][0] if stage.enforce_tls else None,
            tags=tags,
            logging=declared.access_logging(stage),
        ),
        Bucket(
            name=stage.log_bucket,
            arn=f"arn:aws:s3:::{stage.log_bucket}",
            note=" (its access logs)",
            data=True,
            tls_statement=declared.tls_only_policy(stage.log_bucket)["Statement"][0] if stage.enforce_tls else None,
            tags=tags,
            retention=[dict(r) for r in declared.log_retention(settings)],
            logs_of=stage.bucket,
        ),
        Queue(
            name=stage.ingest_dlq,
            arn=dlq,
            attributes={"MessageRetentionPeriod": str(14 * 24 * 3600), "SqsManagedSseEnabled": "true"},
        ),
        Queue(
            name=stage.ingest_queue,
            arn=ingest,
            attributes={
                "VisibilityTimeout": str(stage.queue_visibility_seconds),
                "MessageRetentionPeriod": str(4 * 24 * 3600),
                "SqsManagedSseEnabled": "true",
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq, "maxReceiveCount": stage.max_receive_count}),
                "Policy": json.dumps(ingest_queue_policy(stage, ingest, account)),
            },
        ),
        # FIFO: an announcement sent twice within five minutes (a crash and a redelivery) is delivered once.
        Queue(
            name=stage.accepted_queue,
            arn=sqs(stage.accepted_queue),
            attributes={
                "FifoQueue": "true",
                "MessageRetentionPeriod": str(14 * 24 * 3600),
                "SqsManagedSseEnabled": "true",
            },
        ),
        Topic(name=stage.alerts_topic, arn=alerts, tags=tags),
        Topic(name=stage.notifications_topic, arn=stage.topic_arn(stage.notifications_topic, account), tags=tags),
        Alarm(
            name=dlq_alarm_name(stage),
            arn=f"arn:aws:cloudwatch:{region}:{account}:alarm:{dlq_alarm_name(stage)}",
            definition=dlq_alarm(stage, stage.ingest_dlq, alerts),
        ),
        Alarm(
            name=received_alarm_name(stage),
            arn=f"arn:aws:cloudwatch:{region}:{account}:alarm:{received_alarm_name(stage)}",
            definition=received_alarm(stage, alerts),
        ),
        BucketNotification(name=declared.NOTIFICATION_ID, arn=ingest, bucket=stage.bucket, prefix=settings.zones.raw),
        Workgroup(
            name=stage.athena_workgroup,
            arn=f"arn:aws:athena:{region}:{account}:workgroup/{stage.athena_workgroup}",
            note=" and its named queries",
            configuration=declared.workgroup_configuration(settings, stage),
        ),
    ]


def of_kind(resources: list[Resource], kind: type[R]) -> list[R]:
    """The entries of one kind, in the table's order."""
    return [r for r in resources if isinstance(r, kind)]


def arns(resources: list[Resource], kind: type[Resource]) -> list[str]:
    """Every ARN of one kind: what an IAM policy statement over that kind names (`arns(table, Topic)`)."""
    return [r.arn for r in of_kind(resources, kind)]


def named(resources: list[Resource], kind: type[R], name: str) -> R:
    """The entry of a kind with this name (a KeyError naming both when the table has none)."""
    for r in of_kind(resources, kind):
        if r.name == name:
            return r
    raise KeyError(f"no {kind.kind} named {name} in the stage's resources")
