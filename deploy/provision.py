"""Idempotent provisioning of a stage's resources: the same code for the local stage and for AWS.

Each `ensure_*` creates what is missing and corrects what differs, and returns what it did. Documents that
S3 replaces whole (bucket notification configuration) are read, merged and written once.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from chalicelib import APP_NAME, QUERIES_DIR
from chalicelib.aws import Clients, account_id, error_code
from chalicelib.config import Settings, Stage
from chalicelib.errors import DeploymentError
from chalicelib.ledger import LEDGER_TABLE_SPEC
from chalicelib.ledger.migration import migrate
from chalicelib.names import api_key_name, crawler_name, job_name
from chalicelib.stage import resources
from chalicelib.stage.declared import (
    BUCKET_ENCRYPTION,
    DEPLOYMENTS,
    GLUE_PREFIX,
    GLUE_VERSION,
    LOG_PREFIX,
    PUBLIC_ACCESS_BLOCK,
    access_logging,
    comparable_crawler,
    config_fingerprint,
    crawler_definition,
    glue_jobs,
    job_definition,
    log_bucket_policy,
    log_retention,
    notification_with_queues,
    role_arn,
    tags,
    tls_only_policy,
    workgroup_configuration,
)
from chalicelib.stage.resources import (
    Alarm,
    Bucket,
    BucketNotification,
    LedgerTable,
    Queue,
    Resource,
    Topic,
    Workgroup,
)
from deploy.chalice_project import PROJECT_DIR, chalice_stage_env, deployed_api_id
from deploy.glue_bundle import glue_files

if TYPE_CHECKING:
    from types_boto3_apigateway import APIGatewayClient
    from types_boto3_athena import AthenaClient
    from types_boto3_athena.type_defs import ListNamedQueriesInputTypeDef, ListWorkGroupsInputTypeDef, NamedQueryTypeDef
    from types_boto3_dynamodb import DynamoDBClient
    from types_boto3_glue import GlueClient
    from types_boto3_s3 import S3Client
    from types_boto3_s3.type_defs import QueueConfigurationTypeDef
    from types_boto3_sns.type_defs import TagTypeDef
    from types_boto3_sqs import SQSClient
    from types_boto3_sqs.literals import QueueAttributeNameType
    from types_boto3_stepfunctions import SFNClient
    from types_boto3_sts import STSClient

log = logging.getLogger(__name__)


def bucket_state(s3: S3Client, bucket: str, account: str) -> str:
    """ "ours", "free" or "taken". Bucket names are global: one that exists in another account answers HeadBucket
    with 403, and ExpectedBucketOwner makes that so even for a bucket its owner lets everyone read (S3 API
    Reference, HeadBucket). A 403 can also be our own bucket that these credentials may not read: "taken" says
    both."""
    try:
        s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=account)
        return "ours"
    except Exception as exc:
        if error_code(exc) in ("403", "AccessDenied", "Forbidden"):
            return "taken"
        if error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
            return "free"
        raise


def bucket_taken(stage: Stage, key: str) -> str:
    """What to do about a taken bucket name (`key`: the setting that names it)."""
    return (
        f"bucket name {getattr(stage, key)} is taken (it exists in another AWS account, or your credentials may not "
        f'read it): set {key} = "<a name of your own>" under [stages.{stage.name}] in config/lakehouse.toml'
    )


def _create_bucket(s3: S3Client, stage: Stage, key: str, account: str) -> bool:
    """Create the bucket unless it exists; whether it was created now. A name taken in another account is said so,
    with the setting (`key`) that picks another; CreateBucket answers BucketAlreadyExists for one taken since."""
    bucket, region = getattr(stage, key), stage.region
    state = bucket_state(s3, bucket, account)
    if state == "ours":
        return False
    if state == "taken":
        raise DeploymentError(bucket_taken(stage, key))
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**kwargs)
    except Exception as exc:
        if error_code(exc) == "BucketAlreadyOwnedByYou":  # made between our HEAD and CREATE, by us
            return False
        if error_code(exc) == "BucketAlreadyExists":  # taken between our HEAD and CREATE
            raise DeploymentError(bucket_taken(stage, key)) from None
        raise
    return True


def ensure_bucket(s3: S3Client, stage: Stage, account: str) -> str:
    bucket = stage.bucket
    created = _create_bucket(s3, stage, "bucket", account)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=BUCKET_ENCRYPTION)
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK)
    if stage.enforce_tls:
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(tls_only_policy(bucket)))
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tags(stage)})
    tls = ", TLS-only" if stage.enforce_tls else " (plain HTTP allowed: enforce_tls = false)"
    return f"bucket {bucket}: {'created' if created else 'exists'}; versioning, encryption, public access block{tls}"


def ensure_access_logging(s3: S3Client, sts: STSClient, settings: Settings, stage: Stage) -> str:
    """The log bucket (SSE-S3: the only encryption S3 log delivery writes to; private; logs expire) and the lake
    bucket's server access logging into it."""
    created = _create_bucket(s3, stage, "log_bucket", account_id(sts))
    s3.put_bucket_encryption(Bucket=stage.log_bucket, ServerSideEncryptionConfiguration=BUCKET_ENCRYPTION)
    s3.put_public_access_block(Bucket=stage.log_bucket, PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK)
    s3.put_bucket_policy(Bucket=stage.log_bucket, Policy=json.dumps(log_bucket_policy(stage, account_id(sts))))
    s3.put_bucket_tagging(Bucket=stage.log_bucket, Tagging={"TagSet": tags(stage)})
    s3.put_bucket_lifecycle_configuration(
        Bucket=stage.log_bucket, LifecycleConfiguration={"Rules": log_retention(settings)}
    )
    s3.put_bucket_logging(Bucket=stage.bucket, BucketLoggingStatus=access_logging(stage))
    where = f"s3://{stage.log_bucket}/{LOG_PREFIX} ({'created' if created else 'exists'})"
    return f"access logs of {stage.bucket}: {where}, kept {settings.limits.access_log_days} days"


def ensure_ledger_table(dynamodb: DynamoDBClient, stage: Stage) -> str:
    table, created = stage.ledger_table, False
    try:
        dynamodb.describe_table(TableName=table)
    except Exception as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise
        dynamodb.create_table(
            TableName=table,
            **LEDGER_TABLE_SPEC,
            Tags=tags(stage),
        )
        created = True
    dynamodb.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    # A table made by an earlier release gets the indexes it lacks and loses the old time index, one per update
    migrated = migrate(dynamodb, table, progress=log.info)  # a large backfill takes minutes: say how far it is
    # "ContinuousBackupsUnavailableException: Backups are being enabled for the table" answers a new table for a while
    _while_settling(
        lambda: dynamodb.update_continuous_backups(
            TableName=table, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        ),
        "ContinuousBackupsUnavailableException",
        why="point-in-time recovery cannot be turned on yet for the new table",
        wait=10,
        tries=30,
    )
    state = "created" if created else "exists" + (f" ({', '.join(migrated)})" if migrated else "")
    return f"ledger table {table}: {state}; point-in-time recovery on"


def ensure_queue(sqs: SQSClient, name: str, attributes: Mapping[QueueAttributeNameType, str]) -> str:
    """Create the queue or bring its attributes in line; returns the queue ARN."""
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        settable: dict[QueueAttributeNameType, str] = {
            k: v for k, v in attributes.items() if k != "FifoQueue"
        }  # FifoQueue is fixed at creation
        sqs.set_queue_attributes(QueueUrl=url, Attributes=settable)
    except Exception as exc:
        if error_code(exc) not in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
            raise
        url = sqs.create_queue(QueueName=name, Attributes=dict(attributes))["QueueUrl"]
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def ensure_alarm(clients: Clients, alarm: Alarm, stage: Stage) -> str:
    """PutMetricAlarm replaces the whole alarm: written only when it is missing or differs."""
    if not alarm.compare(clients):
        return f"{alarm.label}: up to date"
    clients.cloudwatch.put_metric_alarm(AlarmName=alarm.name, **alarm.definition, Tags=tags(stage))
    return f"{alarm.label}: written"


def ensure_notification(s3: S3Client, notification: BucketNotification) -> str:
    """Route `ObjectCreated` under raw/ to the ingest queue, keeping every other notification of the bucket; an
    unchanged one is not written again (S3 validates the queue on every put)."""
    current = s3.get_bucket_notification_configuration(Bucket=notification.bucket)
    queues = current.get("QueueConfigurations", [])
    ours = [q for q in queues if q.get("Id") == notification.name]
    if len(ours) == 1 and notification.up_to_date(ours[0]):
        return f"bucket notification {notification.name}: up to date"
    others = [q for q in queues if q.get("Id") != notification.name]
    configuration = cast("QueueConfigurationTypeDef", notification.configuration)
    # S3 sends a test message to validate the queue, and refuses while the queue's new policy is not visible to it
    _while_settling(
        lambda: s3.put_bucket_notification_configuration(
            Bucket=notification.bucket,
            NotificationConfiguration=notification_with_queues(current, [*others, configuration]),
        ),
        "InvalidArgument",
        message="Unable to validate the following destination configurations",
        why="S3 cannot validate the ingest queue yet",
        wait=5,
        tries=24,
    )
    return f"bucket notification {notification.name}: {notification.prefix} -> {notification.arn.rsplit(':', 1)[-1]}"


def ensure(resource: Resource, settings: Settings, stage: Stage, clients: Clients) -> str:
    """Create or correct one entry of the stage's resource table: how each kind is ensured (as Chalice's planner
    has a `_plan_<type>` per model)."""
    match resource:
        case Bucket(logs_of=None):
            return ensure_bucket(clients.s3, stage, account_id(clients.sts))
        case Bucket():  # the log bucket, and the lake bucket's logging into it
            return ensure_access_logging(clients.s3, clients.sts, settings, stage)
        case LedgerTable():
            return ensure_ledger_table(clients.dynamodb, stage)
        case Queue():
            ensure_queue(clients.sqs, resource.name, resource.attributes)
            return f"{resource.label}: {', '.join(sorted(resource.attributes))}"
        case Topic():
            tagged: list[TagTypeDef] = [{"Key": k, "Value": v} for k, v in resource.tags.items()]
            clients.sns.create_topic(Name=resource.name, Tags=tagged)  # idempotent by name
            return resource.label
        case Alarm():
            return ensure_alarm(clients, resource, stage)
        case BucketNotification():
            return ensure_notification(clients.s3, resource)
        case Workgroup():
            return ensure_workgroup(clients.athena, settings, stage)
    raise DeploymentError(f"{resource.label}: no way to ensure a {type(resource).__name__} (deploy.provision.ensure)")


def holds(s3: S3Client, bucket: str, key: str, body: bytes) -> bool | None:
    """Whether the object holds these bytes (its single-part ETag is their MD5); None if there is no object."""
    try:
        etag = s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
    except Exception as exc:
        if error_code(exc) not in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
            raise
        return None
    return etag == hashlib.md5(body).hexdigest()


def put_if_changed(s3: S3Client, bucket: str, key: str, body: bytes) -> bool:
    """Write an object unless it already holds these bytes."""
    if holds(s3, bucket, key, body):
        return False
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return True


def upload_config(s3: S3Client, bucket: str, prefix: str, files: Mapping[str, str | bytes]) -> str:
    """Publish the validated configuration where the Lambdas read it; unchanged files are not rewritten."""
    bodies = {rel: text.encode("utf-8") if isinstance(text, str) else text for rel, text in files.items()}
    written = sum(put_if_changed(s3, bucket, f"{prefix}{rel}", body) for rel, body in bodies.items())
    return f"config: {written} of {len(files)} files uploaded to s3://{bucket}/{prefix}"


def _update_or_replace(glue: GlueClient, update: Callable[..., Any], replace: Callable[..., Any]) -> None:
    """`update`, or `replace` (delete, create) on the local stage, whose moto has no Glue UpdateJob or UpdateCrawler
    and answers 500: a stage made by an earlier release could not take a changed job or crawler. Never on AWS, which
    has both, and where a 500 is a fault to report, not a reason to delete."""
    try:
        update()
    except Exception as exc:
        endpoint = str(glue.meta.endpoint_url)
        if error_code(exc) != "500" or not endpoint.startswith(("http://127.0.0.1", "http://localhost")):
            raise
        replace()


def ensure_glue_jobs(
    glue: GlueClient, s3: S3Client, sts: STSClient, settings: Settings, stage: Stage, project_dir: Path
) -> str:
    """Upload the entry points and the library zip, then create or update one Glue job per entry point."""
    for key, body in glue_files(settings, stage, project_dir).items():
        put_if_changed(s3, stage.bucket, key, body)
    account = account_id(sts)
    for name, job in glue_jobs(settings, stage).items():
        definition = job_definition(stage, job, account)
        try:
            current = glue.get_job(JobName=name)["Job"]
        except glue.exceptions.EntityNotFoundException:
            glue.create_job(Name=name, Tags={"project": stage.project, "stage": stage.name}, **definition)
            continue
        if any(current.get(key) != value for key, value in definition.items()):  # only what differs is written
            _update_or_replace(
                glue,
                lambda n=name, d=definition: glue.update_job(JobName=n, JobUpdate=d),
                lambda n=name, d=definition: (glue.delete_job(JobName=n), glue.create_job(Name=n, **d)),
            )
    return f"glue jobs: {len(glue_jobs(settings, stage))} (Glue {GLUE_VERSION}, scripts under s3://{stage.bucket}/{GLUE_PREFIX})"


def ensure_catalog(glue: GlueClient, sts: STSClient, settings: Settings, stage: Stage, new_role: bool = False) -> str:
    """The stage's Glue database and one crawler per dataset over its raw/ folder (tables `raw_<dataset>`)."""
    try:
        glue.get_database(Name=stage.glue_database)
    except glue.exceptions.EntityNotFoundException:
        glue.create_database(
            DatabaseInput={"Name": stage.glue_database, "Description": f"{stage.project} {stage.name}"}
        )
    account = account_id(sts)
    busy: list[str] = []  # crawlers that differ but are crawling: updated by the next deploy
    for dataset in settings.datasets:
        definition = crawler_definition(settings, stage, dataset, account)
        name = crawler_name(stage, dataset)
        try:
            current = glue.get_crawler(Name=name)["Crawler"]
        except glue.exceptions.EntityNotFoundException:
            create = functools.partial(
                glue.create_crawler, Name=name, Tags={"project": stage.project, "stage": stage.name}, **definition
            )
            _while_role_is_new(create, "InvalidInputException", new_role)
            continue
        if comparable_crawler(current) == comparable_crawler(definition):
            continue
        if current.get("State", "READY") != "READY":  # UpdateCrawler fails with CrawlerRunningException meanwhile
            busy.append(name)
            continue
        _update_or_replace(
            glue,
            lambda n=name, d=definition: glue.update_crawler(Name=n, **d),
            lambda n=name, d=definition: (glue.delete_crawler(Name=n), glue.create_crawler(Name=n, **d)),
        )
    from chalicelib.stage.catalog import refresh

    raw = refresh(settings, stage, None, glue, zones=("raw",))  # declared by the contracts: no data needed
    later = f"; not updated while crawling (deploy again): {', '.join(busy)}" if busy else ""
    return f"glue database {stage.glue_database}, {len(settings.datasets)} raw crawlers, {len(raw)} raw tables{later}"


def ensure_workgroup(athena: AthenaClient, settings: Settings, stage: Stage) -> str:
    """The stage's Athena workgroup, enforcing its result location, encryption and a bytes-scanned cutoff
    (`lakehouse query` and the quality checks run in it)."""
    configuration = workgroup_configuration(settings, stage)
    names: set[str] = set()
    kwargs: ListWorkGroupsInputTypeDef = {}
    while True:  # botocore has no paginator for ListWorkGroups
        page = athena.list_work_groups(**kwargs)
        names |= {w["Name"] for w in page["WorkGroups"]}
        if not page.get("NextToken"):
            break
        kwargs = {"NextToken": page["NextToken"]}
    if stage.athena_workgroup not in names:
        athena.create_work_group(
            Name=stage.athena_workgroup,
            Configuration=configuration,
            Tags=[{"Key": t["Key"], "Value": t["Value"]} for t in tags(stage)],
        )
        return f"athena workgroup {stage.athena_workgroup}: created"
    current = athena.get_work_group(WorkGroup=stage.athena_workgroup)["WorkGroup"]["Configuration"]
    if all(current.get(k) == v for k, v in configuration.items()):
        return f"athena workgroup {stage.athena_workgroup}: up to date"
    athena.update_work_group(
        WorkGroup=stage.athena_workgroup,
        ConfigurationUpdates={
            "ResultConfigurationUpdates": {
                "OutputLocation": configuration["ResultConfiguration"]["OutputLocation"],
                "EncryptionConfiguration": configuration["ResultConfiguration"]["EncryptionConfiguration"],
            },
            "EnforceWorkGroupConfiguration": True,
            "PublishCloudWatchMetricsEnabled": True,
            "BytesScannedCutoffPerQuery": configuration["BytesScannedCutoffPerQuery"],
        },
    )
    return f"athena workgroup {stage.athena_workgroup}: updated"


def ensure_named_queries(athena: AthenaClient, stage: Stage, queries_dir: Path = QUERIES_DIR) -> str:
    """The example analyses of queries/ as Athena named queries in the stage's workgroup (by name)."""
    existing: dict[str, NamedQueryTypeDef] = {}
    kwargs: ListNamedQueriesInputTypeDef = {"WorkGroup": stage.athena_workgroup}
    while True:  # botocore has no paginator for ListNamedQueries either
        page = athena.list_named_queries(**kwargs)
        for query_id in page.get("NamedQueryIds", []):
            query = athena.get_named_query(NamedQueryId=query_id)["NamedQuery"]
            existing[query["Name"]] = query
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    written = 0
    for path in sorted(queries_dir.glob("*.sql")):
        text, name = path.read_text(), path.stem
        description = text.splitlines()[0].lstrip("- ")[:1024]
        current = existing.get(name)
        if current is not None and current.get("Database") != stage.glue_database:
            # UpdateNamedQuery has no Database parameter: updated, the query would differ again on every deploy
            athena.delete_named_query(NamedQueryId=current["NamedQueryId"])
            current = None
        if current is None:
            athena.create_named_query(
                Name=name,
                Description=description,
                Database=stage.glue_database,
                QueryString=text,
                WorkGroup=stage.athena_workgroup,
            )
        elif current["QueryString"] != text:
            athena.update_named_query(
                NamedQueryId=current["NamedQueryId"], Name=name, Description=description, QueryString=text
            )
        else:
            continue
        written += 1
    return f"athena named queries: {written} written of {len(list(queries_dir.glob('*.sql')))}"


STATE_MACHINE_FILE = PROJECT_DIR / "statemachine" / "pipeline.asl.json"


def state_machine_definition(stage: Stage, account: str, template: str | None = None) -> str:
    """The pipeline definition with its `${Name}` placeholders filled in for a stage (the convention of
    CloudFormation's DefinitionSubstitutions); an unknown or unfilled placeholder is an error."""
    function = f"arn:aws:lambda:{stage.region}:{account}:function:{APP_NAME}-{stage.name}-"
    values = {
        "QualityCheckFunctionArn": function + "quality_check",
        "RefreshTablesFunctionArn": function + "refresh_tables",
        "FinishRunFunctionArn": function + "finish_run",
        "FailRunFunctionArn": function + "fail_run",
        "MasterMergeJobName": job_name(stage, "master_merge.py"),
        "AlertsTopicArn": stage.topic_arn(stage.alerts_topic, account),
        "NotificationsTopicArn": stage.topic_arn(stage.notifications_topic, account),
    }
    text = template if template is not None else STATE_MACHINE_FILE.read_text()
    unknown = set(re.findall(r"\$\{(\w+)\}", text)) - set(values)
    if unknown:
        raise DeploymentError(f"{STATE_MACHINE_FILE.name}: no value for placeholder(s) {sorted(unknown)}")
    return re.sub(r"\$\{(\w+)\}", lambda m: values[m[1]], text)


def _while_settling(
    call: Callable[[], Any],
    code: str,
    *,
    why: str,
    settling: bool = True,
    message: str = "",
    wait: float = 5,
    tries: int = 12,
) -> Any:
    """Call, retrying error `code` (whose message holds `message`) for a bounded time while something made moments
    ago settles: a new role is not assumable at once (IAM is eventually consistent), a new table's point-in-time
    recovery is not available at once, S3 cannot validate a queue whose new policy it does not see yet. botocore's
    retry modes cannot tell these from real errors, hence by hand; past `tries`, or when nothing is `settling`,
    the error is raised."""
    for attempt in range(tries):
        try:
            return call()
        except Exception as exc:
            if not settling or error_code(exc) != code or message not in str(exc) or attempt == tries - 1:
                raise
            log.info("%s (%s); trying again in %g s", why, code, wait)
            time.sleep(wait)
    return None


def _while_role_is_new(call: Callable[[], Any], code: str, new_role: bool) -> Any:
    return _while_settling(call, code, why="the new role is not assumable yet", settling=new_role)


def ensure_state_machine(sfn: SFNClient, sts: STSClient, stage: Stage, new_role: bool = False) -> str:
    """Create the pipeline state machine, or update it when its definition or role changed."""
    account = account_id(sts)
    definition = state_machine_definition(stage, account)
    role = role_arn(stage.pipeline_role, account)
    arn = stage.state_machine_arn(account)
    try:
        current = sfn.describe_state_machine(stateMachineArn=arn)
    except sfn.exceptions.StateMachineDoesNotExist:
        create = functools.partial(
            sfn.create_state_machine,
            name=stage.state_machine,
            definition=definition,
            roleArn=role,
            type="STANDARD",
            tags=[{"key": t["Key"], "value": t["Value"]} for t in tags(stage)],
        )
        _while_role_is_new(create, "AccessDeniedException", new_role)
        return f"state machine {stage.state_machine}: created"
    if json.loads(current["definition"]) == json.loads(definition) and current["roleArn"] == role:
        return f"state machine {stage.state_machine}: up to date"
    sfn.update_state_machine(stateMachineArn=arn, definition=definition, roleArn=role)
    return f"state machine {stage.state_machine}: updated"


def provision(
    settings: Settings,
    stage: Stage,
    clients: Clients,
    config_files: Mapping[str, str],
    progress: Callable[[str], None] = log.info,
) -> list[str]:
    """Bring a stage's resources to the declared state; safe to run any number of times (a run that failed
    half-way is completed by the next). Each run is recorded as a deployment, for the drift report."""
    done: list[str] = []

    def step(message: str) -> None:
        done.append(message)
        progress(message)

    try:
        _provision(settings, stage, clients, config_files, step)
    except Exception as exc:
        record_deployment(clients, settings, stage, config_files, done, f"failed: {type(exc).__name__}: {exc}")
        raise
    record_deployment(clients, settings, stage, config_files, done, "succeeded")
    return done


def record_deployment(
    clients: Clients, settings: Settings, stage: Stage, config_files: Mapping[str, str], steps: list[str], result: str
) -> dict[str, Any] | None:
    """Keep what a deployment declared and how it ended under reports/deployments/ (best effort: a run that
    failed before the bucket existed has nowhere to write)."""
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    try:
        account = account_id(clients.sts)
        record = {
            "time": now.isoformat(),
            "who": clients.sts.get_caller_identity()["Arn"],
            "config_fingerprint": config_fingerprint(config_files),
            "result": result,
            "steps": steps,
            "state_machine_definition": json.loads(state_machine_definition(stage, account)),
        }
        key = f"{settings.zones.reports}{DEPLOYMENTS}{now.strftime('%Y%m%dT%H%M%S%fZ')}.json"
        clients.s3.put_object(Bucket=stage.bucket, Key=key, Body=json.dumps(record, indent=2).encode())
        return record
    except Exception as exc:  # one line: the failure that stopped the deployment is what the caller reports
        log.info("could not record the deployment of %s: %s: %s", stage.name, type(exc).__name__, exc)
        return None


def _provision(
    settings: Settings, stage: Stage, clients: Clients, config_files: Mapping[str, str], step: Callable[[str], None]
) -> None:
    from deploy.iam import ensure_roles

    roles, new_role = ensure_roles(clients.iam, settings, stage, account_id(clients.sts))
    step(roles)
    for resource in resources.stage_resources(settings, stage, account_id(clients.sts)):
        step(ensure(resource, settings, stage, clients))
        if isinstance(resource, Bucket) and resource.name == stage.bucket:
            # the configuration is in place before anything can announce a file: a validator that started
            # with half of it would cache it, and reject the datasets not yet uploaded
            step(upload_config(clients.s3, stage.bucket, settings.zones.config, config_files))
    step(ensure_glue_jobs(clients.glue, clients.s3, clients.sts, settings, stage, PROJECT_DIR))
    step(ensure_catalog(clients.glue, clients.sts, settings, stage, new_role))
    step(ensure_named_queries(clients.athena, stage))
    step(ensure_state_machine(clients.stepfunctions, clients.sts, stage, new_role))
    step(ensure_api_key(clients.apigateway, stage))


API_STAGE = "api"  # Chalice's default API Gateway stage


def ensure_api_key(apigateway: APIGatewayClient, stage: Stage, project_dir: Path = PROJECT_DIR) -> str:
    """For a stage whose API wants an API key beside IAM (LAKEHOUSE_API_AUTH = iam+api_key, the key throttles): a key
    and a usage plan (throttled) bound to the stage's deployed API, as Chalice recorded it. `chalice deploy` makes
    the API, so on a first deployment this waits for the next."""
    auth = chalice_stage_env(stage.name).get("LAKEHOUSE_API_AUTH", "iam")
    if auth != "iam+api_key":
        return f"api key: not used (LAKEHOUSE_API_AUTH = {auth})"
    api = deployed_api_id(stage.name, project_dir)
    if api is None:
        return f"api key: no API yet; after `chalice deploy --stage {stage.name}`, run this again"
    try:
        apigateway.get_rest_api(restApiId=api)
    except Exception as exc:
        if error_code(exc) != "NotFoundException":
            raise
        raise DeploymentError(
            f".chalice/deployed/{stage.name}.json records API {api}, which this account and region do not have "
            f"(deleted, or deployed with other credentials): chalice deploy --stage {stage.name}, then this again"
        ) from None
    name = api_key_name(stage)
    keys = apigateway.get_api_keys(nameQuery=name, includeValues=False)["items"]
    key = next((k for k in keys if k["name"] == name), None) or apigateway.create_api_key(
        name=name, enabled=True, tags={"project": stage.project, "stage": stage.name}
    )
    plans = [p for p in apigateway.get_usage_plans()["items"] if p["name"] == name]
    plan = (
        plans[0]
        if plans
        else apigateway.create_usage_plan(
            name=name,
            apiStages=[{"apiId": api, "stage": API_STAGE}],
            throttle={"rateLimit": 10, "burstLimit": 20},
            tags={"project": stage.project, "stage": stage.name},
        )
    )
    if {"apiId": api, "stage": API_STAGE} not in [
        {k: s[k] for k in ("apiId", "stage")} for s in plan.get("apiStages", [])
    ]:
        apigateway.update_usage_plan(
            usagePlanId=plan["id"], patchOperations=[{"op": "add", "path": "/apiStages", "value": f"{api}:{API_STAGE}"}]
        )
    bound = {k["id"] for k in apigateway.get_usage_plan_keys(usagePlanId=plan["id"])["items"]}
    if key["id"] not in bound:
        apigateway.create_usage_plan_key(usagePlanId=plan["id"], keyId=key["id"], keyType="API_KEY")
    return f"api key {name} ({key['id']}): its value: aws apigateway get-api-key --api-key {key['id']} --include-value"
