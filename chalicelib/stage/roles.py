"""The stage's IAM roles as declared: one per Lambda function, one per Glue job kind (and the crawlers), one for
the state machine, each allowed only what its code calls.

Chalice makes the Lambdas' roles (`lakehouse deploy` writes each function's `.chalice/policy-<stage>-<function>.json`
from `lambda_policies`); `deploy.iam` makes the others (`declared_roles`), and the drift report compares those with
the live roles. `role_name` says which role a component runs as, for the local stage to assume it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from chalicelib import APP_NAME
from chalicelib.aws import error_code
from chalicelib.config import Settings, Stage
from chalicelib.names import (
    GLUE_KINDS,
    HOUSEKEEPING_SCRIPT,
    LAMBDA_FUNCTIONS,
    STATE_MACHINE,
    crawler_name,
    job_name,
    process_job,
    role_as_configured,
    run_job,
    spark_job,
)
from chalicelib.names import (
    role_name as role_name,  # re-exported: which role a component runs as
)
from chalicelib.stage.declared import glue_jobs, role_arn
from chalicelib.stage.resources import Alarm, LedgerTable, Queue, Topic, arns, named, stage_resources

if TYPE_CHECKING:
    from types_boto3_iam import IAMClient

POLICY_NAME = "lakehouse"  # the one inline policy of each role

Policy = dict[str, Any]
Statement = dict[str, Any]


def trust(service: str, account: str, *, source_account: bool = True) -> dict[str, Any]:
    """Only `service` may assume the role; with `source_account`, only when acting for this account (the
    confused-deputy guard), for services that document sending `aws:SourceAccount` when they assume a role (Step
    Functions does). Glue documents no such key, and a condition on a key that is not sent denies: not for Glue."""
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    if source_account:
        statement["Condition"] = {"StringEquals": {"aws:SourceAccount": account}}
    return {"Version": "2012-10-17", "Statement": [statement]}


def allow(sid: str, actions: list[str], resources: list[str] | str) -> Statement:
    """One statement allowing `actions` on `resources`."""
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}


def _policy(statements: Iterable[Statement]) -> Policy:
    return {"Version": "2012-10-17", "Statement": list(statements)}


LEDGER_READ = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"]
LEDGER_WRITE = ["dynamodb:PutItem", "dynamodb:UpdateItem"]  # nothing but the CLI deletes ledger items


class _Arns:
    """The ARNs of the stage's resources that the policies name."""

    def __init__(self, settings: Settings, stage: Stage, account: str) -> None:
        region, self.zones = stage.region, settings.zones
        at = f"{region}:{account}"
        self.lake = f"arn:aws:s3:::{stage.bucket}"
        # the stage's resources by their entries in the one table of them (chalicelib/stage/resources.py)
        table = stage_resources(settings, stage, account)
        self.table = named(table, LedgerTable, stage.ledger_table).arn
        self.ledger = [self.table, f"{self.table}/index/*"]
        self.alerts = named(table, Topic, stage.alerts_topic).arn
        self.notifications = named(table, Topic, stage.notifications_topic).arn
        self.ingest_queue = named(table, Queue, stage.ingest_queue).arn
        self.accepted_queue = named(table, Queue, stage.accepted_queue).arn
        self.dlq = named(table, Queue, stage.ingest_dlq).arn
        self.alarms = arns(table, Alarm)
        self.machine = stage.state_machine_arn(account)
        self.executions = self.machine.replace(":stateMachine:", ":execution:") + ":*"
        self.glue = f"arn:aws:glue:{at}"
        self.catalog = [f"{self.glue}:catalog", f"{self.glue}:database/{stage.glue_database}"]
        self.tables = [*self.catalog, f"{self.glue}:table/{stage.glue_database}/*"]
        self.workgroup = f"arn:aws:athena:{at}:workgroup/{stage.athena_workgroup}"

    def objects(self, *prefixes: str) -> list[str]:
        """The lake's objects under each prefix."""
        return [f"{self.lake}/{p}*" for p in prefixes]


def _metrics(namespace: str) -> Statement:
    # PutMetricData has no resource type; the namespace condition is what narrows it
    return {
        **allow("Metrics", ["cloudwatch:PutMetricData"], "*"),
        "Condition": {"StringEquals": {"cloudwatch:namespace": namespace}},
    }


# -- the Glue roles -----------------------------------------------------------------------------------------------
def glue_policy(settings: Settings, stage: Stage, account: str, kind: str) -> Policy:
    """A Glue kind's role. Every job reads the configuration, its scripts and library zip, writes its logs and
    metrics. process: raw/ into processed/ (rejected rows to rejected/), the ledger; spark: the same through a
    batch staged under the scratch zone (deleted once merged); run: a small run whole (processed/, the gate,
    curated/) or the master merge (curated/, a failed batch's roll-back mark); housekeeping: compaction and VACUUM
    of processed/ and curated/; crawler: reads raw/, writes the stage's catalog. A Delta writer may delete in the
    tables it writes: delta-rs removes expired `_delta_log` entries after a checkpoint, and VACUUM removes files."""
    if kind not in GLUE_KINDS:
        raise ValueError(f"no Glue job kind {kind!r}: known are {', '.join(GLUE_KINDS)}")
    a, z = _Arns(settings, stage, account), settings.zones
    logs = f"arn:aws:logs:{stage.region}:{account}:log-group:/aws-glue/*"
    common = [
        allow("ListLake", ["s3:ListBucket"], [a.lake]),
        allow("Logs", ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], [logs]),
    ]
    if kind == "crawler":
        return _policy(
            [
                *common,
                allow("ReadRaw", ["s3:GetObject"], a.objects(z.raw)),
                allow(
                    "WriteTheStageCatalog",
                    [
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
                    a.tables,
                ),
            ]
        )
    read = [z.config, "glue/"] + ([z.raw] if kind != "housekeeping" else [])
    tables = {
        "process": [z.processed],
        "spark": [z.processed],
        "run": [z.processed, z.curated],
        "housekeeping": [z.processed, z.curated],
    }[kind]
    statements = [
        *common,
        allow("ReadInputsAndScripts", ["s3:GetObject", "s3:GetObjectVersion"], a.objects(*read)),
        allow("WriteTables", ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], a.objects(*tables)),
    ]
    if kind != "housekeeping":
        statements.append(allow("WriteRejectedRows", ["s3:GetObject", "s3:PutObject"], a.objects(z.rejected)))
        statements.append(allow("Ledger", LEDGER_READ + LEDGER_WRITE, a.ledger))
    if kind == "spark":
        statements.append(
            allow("StagedBatch", ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], a.objects(z.scratch))
        )
    return _policy([*statements, _metrics("Glue")])


def pipeline_policy(settings: Settings, stage: Stage, account: str) -> Policy:
    """The state machine: invoke its four Lambda steps, run the stage's Glue jobs (.sync) and crawlers, publish
    to the two topics."""
    a = _Arns(settings, stage, account)
    # a small run is one run_batch job; a bigger one a job per dataset, then the master merge (pipeline.batcher)
    jobs = sorted(
        [
            *(process_job(stage, d) for d in settings.datasets),
            *(spark_job(stage, d) for d in settings.datasets),
            job_name(stage, "master_merge.py"),
            run_job(stage),
        ]
    )
    return _policy(
        [
            allow(
                "InvokeSteps",
                ["lambda:InvokeFunction"],
                [
                    f"arn:aws:lambda:{stage.region}:{account}:function:{APP_NAME}-{stage.name}-{step}"
                    for step in ("quality_check", "refresh_tables", "finish_run", "fail_run")
                ],
            ),
            allow(
                "GlueJobsSync",
                ["glue:StartJobRun", "glue:GetJobRun", "glue:GetJobRuns", "glue:BatchStopJobRun"],
                [f"{a.glue}:job/{j}" for j in jobs],
            ),
            allow(
                "Crawlers",
                ["glue:StartCrawler", "glue:GetCrawler"],
                [f"{a.glue}:crawler/{crawler_name(stage, d)}" for d in sorted(settings.datasets)],
            ),
            allow("Topics", ["sns:Publish"], [a.alerts, a.notifications]),
        ]
    )


# -- the Lambdas' roles (Chalice makes them, from the files `lakehouse deploy` writes) ------------------------------
def lifecycle_buckets(definition_files: Mapping[str, str | bytes], lake_bucket: str) -> list[str]:
    """The buckets the lifecycle definitions (config/lifecycle/) name, `@lake` as the lake bucket: the only ones
    whose lifecycle the sync may read and write. A file that does not parse names none (the sync leaves it)."""
    from chalicelib.lifecycle.rules import parse_definitions

    return sorted(parse_definitions(definition_files, lake_bucket).buckets)


def lambda_policies(settings: Settings, stage: Stage, account: str, lifecycle: Iterable[str] = ()) -> dict[str, Policy]:
    """Each Lambda function's policy, by function name: only what its handler (app.py) and the code it calls do.
    `lifecycle` is the buckets the lifecycle definitions name (`lifecycle_buckets`)."""
    a, z = _Arns(settings, stage, account), settings.zones

    def base(function: str) -> list[Statement]:
        """Every function writes its own log group and reads the published configuration (chalicelib.runtime)."""
        logs = f"arn:aws:logs:{stage.region}:{account}:log-group:/aws/lambda/{APP_NAME}-{stage.name}-{function}"
        return [
            allow("Logs", ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], [logs, f"{logs}:*"]),
            # listing answers 404 rather than 403 for a missing key too (S3: HeadObject without ListBucket)
            allow("ListLake", ["s3:ListBucket"], [a.lake]),
            allow("ReadConfig", ["s3:GetObject"], a.objects(z.config)),
        ]

    alerts = allow("Alerts", ["sns:Publish"], [a.alerts])
    # no cloudwatch:PutMetricData: app.py's metrics are Powertools' embedded metric format, lines of the log
    ledger_read = allow("LedgerRead", LEDGER_READ, a.ledger)
    ledger = allow("Ledger", LEDGER_READ + LEDGER_WRITE, a.ledger)
    # finish_run and fail_run archive a run's raw files: copy, check the copy, hide the raw key behind a delete marker
    archive = [
        allow("ReadRaw", ["s3:GetObject", "s3:GetObjectVersion"], a.objects(z.raw)),
        allow("WriteArchive", ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"], a.objects(z.archive)),
        allow("HideArchivedRaw", ["s3:DeleteObject"], a.objects(z.raw)),
    ]
    catalog = allow("Catalog", ["glue:GetDatabase", "glue:GetTable", "glue:CreateTable", "glue:UpdateTable"], a.tables)
    housekeeping_job = f"{a.glue}:job/{job_name(stage, HOUSEKEEPING_SCRIPT)}"
    # the jobs a person or a schedule starts under the run lock (lakehouse etl, curated rebuild, smoke's cleanup)
    maintenance_jobs = [f"{a.glue}:job/{j}" for j in sorted(glue_jobs(settings, stage))]
    defined = [f"arn:aws:s3:::{b}" for b in sorted(set(lifecycle))]  # never arn:aws:s3:::* (one rule could expire any)
    statements: dict[str, list[Statement]] = {
        "validate": [
            allow(
                "IngestQueue", ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"], [a.ingest_queue]
            ),
            allow("ReadRaw", ["s3:GetObject", "s3:GetObjectVersion"], a.objects(z.raw)),
            allow("WriteRejected", ["s3:PutObject", "s3:AbortMultipartUpload"], a.objects(z.rejected)),
            ledger,
            allow("AnnounceAccepted", ["sqs:GetQueueUrl", "sqs:SendMessage"], [a.accepted_queue]),
        ],
        "batcher": [
            ledger,
            allow("StartRuns", ["states:StartExecution"], [a.machine]),
            allow("RunStatus", ["states:DescribeExecution"], [a.executions]),
            # the tick announces again the files a dead validator left RECEIVED (chalicelib/pipeline/recovery.py)
            allow("ReannounceReceived", ["sqs:GetQueueUrl", "sqs:SendMessage"], [a.ingest_queue]),
            # each tick frees the run lock of a maintenance job run that ended (chalicelib/pipeline/maintenance.py)
            allow("MaintenanceRuns", ["glue:GetJobRun"], maintenance_jobs),
            alerts,
        ],
        "start_housekeeping": [
            ledger,  # the run lock
            allow("StartHousekeeping", ["glue:StartJobRun", "glue:GetJobRun"], [housekeeping_job]),
        ],
        "lifecycle_sync": [
            allow("ListBuckets", ["s3:ListAllMyBuckets"], "*"),  # no resource type: the account's list
            *(
                [
                    allow(
                        "LifecycleOfDefinedBuckets",
                        ["s3:GetLifecycleConfiguration", "s3:PutLifecycleConfiguration"],
                        defined,
                    )
                ]
                if defined
                else []
            ),
            allow("History", ["s3:PutObject"], a.objects(f"{z.reports}lifecycle/")),
            alerts,
        ],
        "drift_report": [
            # a lifecycle sync's dry run: the defined buckets' rules against the definitions
            allow("ListBuckets", ["s3:ListAllMyBuckets"], "*"),
            *([allow("ReadLifecycle", ["s3:GetLifecycleConfiguration"], defined)] if defined else []),
            allow(
                "ReadBuckets",
                [
                    "s3:GetBucketVersioning",
                    "s3:GetEncryptionConfiguration",
                    "s3:GetBucketPublicAccessBlock",
                    "s3:GetBucketPolicy",
                    "s3:GetBucketTagging",
                    "s3:GetBucketNotification",
                    "s3:GetBucketLogging",
                    "s3:GetLifecycleConfiguration",
                    "s3:ListBucket",
                ],
                [a.lake, f"arn:aws:s3:::{stage.log_bucket}"],
            ),
            allow("ReadDeployments", ["s3:GetObject"], a.objects(f"{z.reports}deployments/")),
            allow("WriteReport", ["s3:PutObject"], a.objects(f"{z.reports}drift/")),
            allow(
                "ReadStageResources",
                [
                    "dynamodb:DescribeTable",
                    "dynamodb:DescribeContinuousBackups",
                    "dynamodb:DescribeTimeToLive",
                    "sns:GetTopicAttributes",
                    "glue:GetCrawler",
                    "glue:GetJob",
                    "glue:GetDatabase",
                    "glue:GetTable",
                    "athena:GetWorkGroup",
                    "states:DescribeStateMachine",
                    "iam:GetRole",
                    "iam:GetRolePolicy",
                    "sqs:GetQueueUrl",
                    "sqs:GetQueueAttributes",
                    "cloudwatch:DescribeAlarms",  # the dead-letter queue's alarm (chalicelib/stage/resources.py)
                ],
                [
                    a.table,
                    a.alerts,
                    a.notifications,
                    *(f"{a.glue}:crawler/{crawler_name(stage, d)}" for d in sorted(settings.datasets)),
                    *(f"{a.glue}:job/{j}" for j in sorted(glue_jobs(settings, stage))),
                    *a.tables,
                    a.workgroup,
                    a.machine,
                    *sorted({role_arn(r, account) for r in declared_roles(settings, stage, account)}),
                    a.ingest_queue,
                    a.accepted_queue,
                    a.dlq,
                    *a.alarms,
                ],
            ),
            allow("ListWorkgroups", ["athena:ListWorkGroups"], "*"),  # no resource type
            alerts,
        ],
        "quality_check": [
            ledger,
            catalog,
            allow("ListTables", ["glue:GetTables", "glue:GetPartitions"], a.tables),
            allow(
                "GateQueries",
                [
                    "athena:StartQueryExecution",
                    "athena:GetQueryExecution",
                    "athena:GetQueryResults",
                    "athena:StopQueryExecution",
                ],
                [a.workgroup],
            ),
            # Athena reads the tables and writes the results as the caller
            allow("AthenaReadsTables", ["s3:GetObject"], a.objects(z.processed)),
            allow(
                "AthenaResults",
                ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:GetBucketLocation"],
                [a.lake, *a.objects(z.athena_results)],
            ),
            alerts,
        ],
        "refresh_tables": [catalog],
        "finish_run": [ledger, *archive],
        "fail_run": [
            ledger,
            *archive,
            # a failed batch's rejected rows go: requeued, its files are read again under a new batch
            allow("DropRejectedRows", ["s3:DeleteObject"], a.objects(f"{z.rejected}*/rows/")),
        ],
        # read-only: the ledger's summaries and the reports' latest documents (/status); the cost what-if reads the
        # lifecycle definitions, which are configuration
        "api_handler": [
            ledger_read,
            allow("ReadLatestReports", ["s3:GetObject"], [f"{a.lake}/{z.reports}{r}/latest.json" for r in REPORTS]),
            allow("DeadLetterDepth", ["sqs:GetQueueUrl", "sqs:GetQueueAttributes"], [a.dlq]),  # /status
        ],
    }
    return {f: _policy(base(f) + statements[f]) for f in LAMBDA_FUNCTIONS}


REPORTS = ("drift", "lifecycle")  # the reports whose latest document /status shows (chalicelib.api.status)


# -- what deploy makes, and what the local stage assumes ----------------------------------------------------------
def declared_roles(settings: Settings, stage: Stage, account: str) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Role name -> (trust policy, inline policy), for the roles `lakehouse deploy` makes: one per Glue kind and the
    state machine's (a role the stage names by ARN is managed elsewhere: not listed)."""
    roles = {
        role_as_configured(stage, kind): (
            trust("glue.amazonaws.com", account, source_account=False),
            glue_policy(settings, stage, account, kind),
        )
        for kind in GLUE_KINDS
    }
    roles[stage.pipeline_role] = (trust("states.amazonaws.com", account), pipeline_policy(settings, stage, account))
    return {name: documents for name, documents in roles.items() if not name.startswith("arn:")}


def component_roles(
    settings: Settings, stage: Stage, account: str, lifecycle: Iterable[str] = ()
) -> dict[str, tuple[str, dict[str, Any], dict[str, Any]]]:
    """Every component (Lambda function, Glue kind, the state machine) -> (role name, trust policy, inline policy):
    what the local stage makes to run each component as its own role, as AWS would."""
    out = {
        f: (role_name(stage, f), trust("lambda.amazonaws.com", account, source_account=False), policy)
        for f, policy in lambda_policies(settings, stage, account, lifecycle).items()
    }
    out |= {
        kind: (
            role_name(stage, kind),
            trust("glue.amazonaws.com", account, source_account=False),
            glue_policy(settings, stage, account, kind),
        )
        for kind in GLUE_KINDS
    }
    out[STATE_MACHINE] = (
        role_name(stage, STATE_MACHINE),
        trust("states.amazonaws.com", account),
        pipeline_policy(settings, stage, account),
    )
    return out


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
