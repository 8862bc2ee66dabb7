"""The stage's two IAM roles as declared: trust and least-privilege inline policies for Glue and the pipeline.

`deploy.iam` creates them; the drift report compares them with the live roles.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from chalicelib import APP_NAME, METRICS_NAMESPACE
from chalicelib.aws import error_code
from chalicelib.config import Settings, Stage
from chalicelib.names import crawler_name, dlq_alarm_name, job_name, process_job, run_job, spark_job
from chalicelib.stage.declared import glue_jobs, role_arn

if TYPE_CHECKING:
    from types_boto3_iam import IAMClient

POLICY_NAME = "lakehouse"  # the one inline policy of each role


def trust(service: str, account: str, *, source_account: bool = True) -> dict[str, Any]:
    """Only `service` may assume the role; with `source_account`, only when acting for this account (the
    confused-deputy guard), for services that document sending `aws:SourceAccount` when they assume a role (Step
    Functions does). Glue documents no such key, and a condition on a key that is not sent denies: not for Glue."""
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    if source_account:
        statement["Condition"] = {"StringEquals": {"aws:SourceAccount": account}}
    return {"Version": "2012-10-17", "Statement": [statement]}


def glue_policy(settings: Settings, stage: Stage, account: str) -> dict[str, Any]:
    """The Glue jobs (read raw/, write processed/, curated/, rejected/ and their scratch zone; the ledger) and the
    crawlers (read raw/, write the stage's catalog)."""
    z, lake, region = settings.zones, f"arn:aws:s3:::{stage.bucket}", stage.region
    catalog = f"arn:aws:glue:{region}:{account}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ListLake", "Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [lake]},
            {
                "Sid": "ReadInputsAndScripts",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:GetObjectVersion"],
                "Resource": [f"{lake}/{p}*" for p in (z.raw, z.config, "glue/")],
            },
            {
                "Sid": "WriteTables",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                "Resource": [f"{lake}/{p}*" for p in (z.processed, z.curated, z.rejected, z.scratch)],
            },
            {
                "Sid": "Ledger",
                "Effect": "Allow",
                "Action": [
                    "dynamodb:GetItem",
                    "dynamodb:BatchGetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:Query",
                ],
                "Resource": [
                    f"arn:aws:dynamodb:{region}:{account}:table/{stage.ledger_table}",
                    f"arn:aws:dynamodb:{region}:{account}:table/{stage.ledger_table}/index/*",
                ],
            },
            {
                "Sid": "CrawlersWriteTheStageCatalog",
                "Effect": "Allow",
                "Action": [
                    "glue:GetDatabase",
                    "glue:GetTable",
                    "glue:GetTables",
                    "glue:CreateTable",
                    "glue:UpdateTable",
                    "glue:GetPartition",
                    "glue:GetPartitions",
                    "glue:BatchGetPartition",
                    "glue:CreatePartition",
                    "glue:BatchCreatePartition",
                    "glue:UpdatePartition",
                ],
                "Resource": [
                    f"{catalog}:catalog",
                    f"{catalog}:database/{stage.glue_database}",
                    f"{catalog}:table/{stage.glue_database}/*",
                ],
            },
            {
                "Sid": "Logs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": [f"arn:aws:logs:{region}:{account}:log-group:/aws-glue/*"],
            },
            {  # PutMetricData has no resource type; the namespace condition is what narrows it
                "Sid": "JobMetrics",
                "Effect": "Allow",
                "Action": ["cloudwatch:PutMetricData"],
                "Resource": "*",
                "Condition": {"StringEquals": {"cloudwatch:namespace": "Glue"}},
            },
        ],
    }


def pipeline_policy(settings: Settings, stage: Stage, account: str) -> dict[str, Any]:
    """The state machine: invoke its four Lambda steps, run the stage's Glue jobs (.sync) and crawlers, publish
    to the two topics."""
    region = stage.region
    glue = f"arn:aws:glue:{region}:{account}"
    # a small run is one run_batch job; a bigger one a job per dataset, then the master merge (pipeline.batcher)
    jobs = sorted(
        [
            *(process_job(stage, d) for d in settings.datasets),
            *(spark_job(stage, d) for d in settings.datasets),
            job_name(stage, "master_merge.py"),
            run_job(stage),
        ]
    )
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "InvokeSteps",
                "Effect": "Allow",
                "Action": ["lambda:InvokeFunction"],
                "Resource": [
                    f"arn:aws:lambda:{region}:{account}:function:{APP_NAME}-{stage.name}-{step}"
                    for step in ("quality_check", "refresh_tables", "finish_run", "fail_run")
                ],
            },
            {
                "Sid": "GlueJobsSync",
                "Effect": "Allow",
                "Action": ["glue:StartJobRun", "glue:GetJobRun", "glue:GetJobRuns", "glue:BatchStopJobRun"],
                "Resource": [f"{glue}:job/{j}" for j in jobs],
            },
            {
                "Sid": "Crawlers",
                "Effect": "Allow",
                "Action": ["glue:StartCrawler", "glue:GetCrawler"],
                "Resource": [f"{glue}:crawler/{crawler_name(stage, d)}" for d in sorted(settings.datasets)],
            },
            {
                "Sid": "Topics",
                "Effect": "Allow",
                "Action": ["sns:Publish"],
                "Resource": [stage.topic_arn(t, account) for t in (stage.alerts_topic, stage.notifications_topic)],
            },
        ],
    }


def lambda_policy(settings: Settings, stage: Stage, account: str) -> dict[str, Any]:
    """The Lambdas' role (Chalice's, from `.chalice/policy-<stage>.json`, which `lakehouse deploy` writes from this):
    the validator, the pipeline's steps and batcher, the nightly lifecycle sync and drift report, and the API."""
    z, region = settings.zones, stage.region
    lake, arn = f"arn:aws:s3:::{stage.bucket}", f"{region}:{account}"
    table = f"arn:aws:dynamodb:{arn}:table/{stage.ledger_table}"
    queues = [f"arn:aws:sqs:{arn}:{q}" for q in (stage.ingest_queue, stage.accepted_queue)]
    topics = [stage.topic_arn(t, account) for t in (stage.alerts_topic, stage.notifications_topic)]
    machine = stage.state_machine_arn(account)
    catalog = f"arn:aws:glue:{arn}"
    workgroup = f"arn:aws:athena:{arn}:workgroup/{stage.athena_workgroup}"
    functions = f"arn:aws:logs:{arn}:log-group:/aws/lambda/{APP_NAME}-{stage.name}-*"

    def allow(sid: str, actions: list[str], resources: list[str] | str) -> dict[str, Any]:
        return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}

    return {
        "Version": "2012-10-17",
        "Statement": [
            allow(
                "Logs",
                ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                [functions, f"{functions}:*"],
            ),
            allow(
                "ReadRawAndConfig",
                ["s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket"],
                [lake, f"{lake}/{z.raw}*", f"{lake}/{z.config}*"],
            ),
            allow("WriteRejected", ["s3:PutObject"], [f"{lake}/{z.rejected}*"]),
            allow(
                "Ledger",
                [
                    "dynamodb:GetItem",
                    "dynamodb:BatchGetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:Query",
                ],
                [table, f"{table}/index/*"],
            ),
            allow(
                "Queues",
                [
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:GetQueueAttributes",
                    "sqs:GetQueueUrl",
                    "sqs:SendMessage",
                ],
                queues,
            ),
            allow("PipelineArchive", ["s3:PutObject", "s3:GetObject"], [f"{lake}/{z.archive}*"]),
            allow(
                "PipelineHideArchivedRawAndStaleRejectedRows",
                ["s3:DeleteObject"],
                [f"{lake}/{z.raw}*", f"{lake}/{z.rejected}*"],
            ),
            allow("PipelineReadTables", ["s3:GetObject"], [f"{lake}/{z.processed}*", f"{lake}/{z.curated}*"]),
            allow(
                "PipelineExecutions",
                ["states:StartExecution", "states:DescribeExecution"],
                [machine, machine.replace(":stateMachine:", ":execution:") + ":*"],
            ),
            allow(
                "PipelineCatalog",
                [
                    "glue:GetDatabase",
                    "glue:GetTable",
                    "glue:GetTables",
                    "glue:GetPartitions",
                    "glue:CreateTable",
                    "glue:UpdateTable",
                ],
                [
                    f"{catalog}:catalog",
                    f"{catalog}:database/{stage.glue_database}",
                    f"{catalog}:table/{stage.glue_database}/*",
                ],
            ),
            allow(
                "QualityQueriesOnAthena",
                [
                    "athena:StartQueryExecution",
                    "athena:GetQueryExecution",
                    "athena:GetQueryResults",
                    "athena:StopQueryExecution",
                ],
                [workgroup],
            ),
            allow(
                "QualityQueryResults",
                ["s3:GetObject", "s3:PutObject", "s3:GetBucketLocation", "s3:AbortMultipartUpload"],
                [lake, f"{lake}/{z.athena_results}*"],
            ),
            allow("PipelineAlerts", ["sns:Publish"], topics),
            allow("LifecycleListBuckets", ["s3:ListAllMyBuckets"], "*"),  # no resource type: the whole account's list
            allow(
                "LifecycleRulesOfDefinedBuckets",
                ["s3:GetLifecycleConfiguration", "s3:PutLifecycleConfiguration"],
                "arn:aws:s3:::*",
            ),
            allow("LifecycleHistory", ["s3:GetObject", "s3:PutObject"], [f"{lake}/{z.reports}*"]),
            allow(
                "DriftReadLakeBucket",
                [
                    "s3:GetBucketVersioning",
                    "s3:GetEncryptionConfiguration",
                    "s3:GetBucketPublicAccessBlock",
                    "s3:GetBucketPolicy",
                    "s3:GetBucketTagging",
                    "s3:GetBucketNotification",
                    "s3:GetBucketLogging",
                ],
                [lake],
            ),
            allow(
                "DriftReadStageResources",
                [
                    "dynamodb:DescribeTable",
                    "dynamodb:DescribeContinuousBackups",
                    "dynamodb:DescribeTimeToLive",
                    "sns:GetTopicAttributes",
                    "glue:GetCrawler",
                    "glue:GetJob",
                    "athena:GetWorkGroup",
                    "states:DescribeStateMachine",
                    "iam:GetRole",
                    "iam:GetRolePolicy",
                    "sqs:GetQueueUrl",
                    "sqs:GetQueueAttributes",
                    "cloudwatch:DescribeAlarms",  # the dead-letter queue's alarm (chalicelib/stage/resources.py)
                ],
                [
                    table,
                    *topics,
                    *(f"{catalog}:crawler/{crawler_name(stage, d)}" for d in sorted(settings.datasets)),
                    *(f"{catalog}:job/{j}" for j in sorted(glue_jobs(settings, stage))),
                    workgroup,
                    machine,
                    *(role_arn(r, account) for r in (stage.glue_role, stage.pipeline_role)),
                    *queues,
                    f"arn:aws:sqs:{arn}:{stage.ingest_dlq}",
                    f"arn:aws:cloudwatch:{arn}:alarm:{dlq_alarm_name(stage)}",
                ],
            ),
            allow("DriftListWorkgroups", ["athena:ListWorkGroups"], "*"),  # no resource type
            {  # PutMetricData has no resource type; the namespace condition is what narrows it
                **allow("Metrics", ["cloudwatch:PutMetricData"], "*"),
                "Condition": {"StringEquals": {"cloudwatch:namespace": METRICS_NAMESPACE}},
            },
        ],
    }


def declared_roles(settings: Settings, stage: Stage, account: str) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Role name -> (trust policy, inline policy), for the roles the stage names rather than brings (a role given
    as an ARN is managed elsewhere)."""
    roles = {
        stage.glue_role: (
            trust("glue.amazonaws.com", account, source_account=False),
            glue_policy(settings, stage, account),
        ),
        stage.pipeline_role: (
            trust("states.amazonaws.com", account),
            pipeline_policy(settings, stage, account),
        ),
    }
    return {name: documents for name, documents in roles.items() if not name.startswith("arn:")}


def document(value: Any) -> Any:
    """A policy document as IAM returns it: parsed by boto3, or URL-encoded JSON text."""
    return json.loads(unquote(value)) if isinstance(value, str) else value


def live_role(iam: IAMClient, name: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(trust policy, inline policy) of a role as it is; None for what does not exist."""
    try:
        role = iam.get_role(RoleName=name)["Role"]
    except Exception as exc:
        if error_code(exc) == "NoSuchEntity":
            return None, None
        raise
    try:
        policy = iam.get_role_policy(RoleName=name, PolicyName=POLICY_NAME)["PolicyDocument"]
    except Exception as exc:
        if error_code(exc) != "NoSuchEntity":
            raise
        policy = None
    return document(role["AssumeRolePolicyDocument"]), document(policy) if policy is not None else None
