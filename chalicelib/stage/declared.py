"""The documents a stage is declared to have: what provisioning writes and the drift report compares, the
same objects for both (bucket settings, access logging, Glue jobs and crawlers, the Athena workgroup, the
recorded deployments).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from chalicelib.config import Settings, Stage
from chalicelib.names import (
    PROCESS_SCRIPT,
    RUN_SCRIPT,
    SPARK_SCRIPT,
    job_kind,
    job_name,
    process_job,
    role_as_configured,
    spark_job,
)

if TYPE_CHECKING:
    from types_boto3_athena.type_defs import WorkGroupConfigurationTypeDef
    from types_boto3_glue.type_defs import JobUpdateTypeDef
    from types_boto3_s3 import S3Client
    from types_boto3_s3.type_defs import (
        BucketLoggingStatusTypeDef,
        LifecycleRuleTypeDef,
        NotificationConfigurationTypeDef,
        PublicAccessBlockConfigurationTypeDef,
        ServerSideEncryptionConfigurationTypeDef,
        TagTypeDef,
    )

NOTIFICATION_ID = "lakehouse-ingest"


LOG_PREFIX = "lake/"  # the lake bucket's access logs, in the log bucket


# The Glue jobs (docs/etl.md): Glue 5.0 Spark jobs (Python 3.11) whose driver runs the ETL core with
# delta-rs and DuckDB, installed by --additional-python-modules from a zip of their wheels that `lakehouse deploy`
# uploads (deploy/glue_wheels.py); chalicelib + lakehouse_etl travel as a zip.
GLUE_VERSION = "5.0"
GLUE_PYTHON = "3.11"  # Glue 5.0's Python (AWS Glue docs, "AWS Glue versions")
# Glue 5.0 runs on Amazon Linux 2023 (glibc 2.34, x86_64): every manylinux tag up to 2.34 installs there. pip takes
# the platform tags literally, so they are listed (pyarrow 24 ships manylinux_2_28 wheels only, deltalake 2_17).
GLUE_PLATFORMS = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(34, 4, -1)),
    *(f"manylinux{legacy}_x86_64" for legacy in ("2014", "2010", "1")),  # the older names of 2_17, 2_12, 2_5
)


# pyarrow too: deltalake asks for pyarrow>=21 only under its `pyarrow` extra, so Glue 5.0's older pyarrow would stay,
# and DeltaTable.create fails with it ("Expected an object with dunder __arrow_c_schema__").
GLUE_PYTHON_MODULES = "pyarrow==24.0.0,deltalake==1.6.6,duckdb==1.5.6,pytz==2025.2,msgspec==0.23.0"
# The Spark jobs render the batch step's SQL for Spark with sqlglot (lakehouse_etl/spark.py).
SPARK_PYTHON_MODULES = f"{GLUE_PYTHON_MODULES},sqlglot==30.30.0"
# The Spark jobs' own arguments: Glue 5.0's Delta Lake, with its SQL extension and catalog (AWS Glue docs, "Using the
# Delta Lake framework"), and auto scaling.
SPARK_ARGUMENTS = {
    # NumberOfWorkers (sized per batch by the plan) is then a ceiling: Glue adds executors as Spark asks for them and
    # releases idle ones, billing what it held (Glue docs, "Using auto scaling for AWS Glue"; Glue 3.0 and later)
    "--enable-auto-scaling": "true",
    "--datalake-formats": "delta",
    "--conf": "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension "
    "--conf spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


GLUE_PREFIX = "glue/"


def wheels_key(pins: str) -> str:
    """Where the zip of the wheels of `pins` (a "zip of wheels", AWS Glue docs, "Using Python libraries with AWS
    Glue") lives in the lake bucket: named by a hash of the pins and their target, so changed pins are a new zip and
    unchanged ones are never built or uploaded again."""
    digest = hashlib.sha256(f"{pins};cp{GLUE_PYTHON};{','.join(GLUE_PLATFORMS)}".encode()).hexdigest()[:16]
    return f"{GLUE_PREFIX}wheels/{digest}.gluewheels.zip"


# What provisioning declares, in the APIs' own shapes: `ensure_*` writes it and the drift report reads it back.
BUCKET_ENCRYPTION: ServerSideEncryptionConfigurationTypeDef = {
    "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}]
}


PUBLIC_ACCESS_BLOCK: PublicAccessBlockConfigurationTypeDef = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}


def tags(stage: Stage) -> list[TagTypeDef]:
    """The tags every resource of the stage carries."""
    return [{"Key": "project", "Value": stage.project}, {"Key": "stage", "Value": stage.name}]


def notification_with_queues(
    current: Mapping[str, Any], queues: list[Mapping[str, Any]]
) -> NotificationConfigurationTypeDef:
    """The bucket's notification configuration as S3 answered it with its queue configurations replaced: S3
    replaces the document whole, so every other key comes back as it was, known to the SDK's stubs or not (which
    is why it is typed here, once, rather than rebuilt key by key)."""
    document = {k: v for k, v in current.items() if k != "ResponseMetadata"}
    return cast("NotificationConfigurationTypeDef", {**document, "QueueConfigurations": queues})


def tls_only_policy(bucket: str) -> dict[str, Any]:
    """A bucket policy refusing plain-HTTP requests."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


def log_bucket_policy(stage: Stage, account: str) -> dict[str, Any]:
    """S3's log delivery may write the lake's access logs, and nothing else may use plain HTTP."""
    statements = [
        {
            "Sid": "S3ServerAccessLogs",
            "Effect": "Allow",
            "Principal": {"Service": "logging.s3.amazonaws.com"},
            "Action": "s3:PutObject",
            "Resource": f"arn:aws:s3:::{stage.log_bucket}/{LOG_PREFIX}*",
            "Condition": {
                "ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{stage.bucket}"},
                "StringEquals": {"aws:SourceAccount": account},
            },
        }
    ]
    if stage.enforce_tls:
        statements += tls_only_policy(stage.log_bucket)["Statement"]
    return {"Version": "2012-10-17", "Statement": statements}


def access_logging(stage: Stage) -> BucketLoggingStatusTypeDef:
    """The lake bucket's S3 server access logging, into the log bucket."""
    return {"LoggingEnabled": {"TargetBucket": stage.log_bucket, "TargetPrefix": LOG_PREFIX}}


def log_retention(settings: Settings) -> list[LifecycleRuleTypeDef]:
    """The log bucket's one lifecycle rule: logs expire. Deploy owns it (the definitions of config/lifecycle/ name
    buckets, and this one's name is per stage)."""
    return [
        {
            "ID": "access-logs-expire",
            "Status": "Enabled",
            "Filter": {"Prefix": LOG_PREFIX},
            "Expiration": {"Days": settings.limits.access_log_days},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
        }
    ]


@dataclass(frozen=True)
class GlueJob:
    """One Glue job: its entry point and the arguments it always gets (its DefaultArguments)."""

    script: str
    arguments: Mapping[str, str] = field(default_factory=dict)
    spark: bool = False  # runs Spark with Delta Lake (lakehouse_etl/spark.py), not on the driver alone


def glue_jobs(settings: Settings, stage: Stage) -> dict[str, GlueJob]:
    """Every Glue job of the stage by name: two per dataset with their `--dataset` (process_dataset.py on the driver
    alone; spark_dataset.py on Spark, for batches past one node), then the master merge, the job that runs a small
    run whole, and housekeeping."""
    jobs = {process_job(stage, d): GlueJob(PROCESS_SCRIPT, {"--dataset": d}) for d in settings.datasets}
    jobs.update({spark_job(stage, d): GlueJob(SPARK_SCRIPT, {"--dataset": d}, spark=True) for d in settings.datasets})
    scripts = ("master_merge.py", RUN_SCRIPT, "housekeeping.py")
    return {**jobs, **{job_name(stage, s): GlueJob(s) for s in scripts}}


def python_modules(job: GlueJob) -> str:
    """The pinned modules a Glue job installs (`name==version,...`)."""
    return SPARK_PYTHON_MODULES if job.spark else GLUE_PYTHON_MODULES


def role_arn(role: str, account: str) -> str:
    """A role given by name or ARN, as an ARN."""
    return role if role.startswith("arn:") else f"arn:aws:iam::{account}:role/{role}"


def job_definition(stage: Stage, job: GlueJob, account: str) -> JobUpdateTypeDef:
    """One Glue job as CreateJob and GetJob say it, run as its kind's role (chalicelib.stage.roles)."""
    return {
        "Role": role_arn(role_as_configured(stage, job_kind(job.script)), account),
        "Command": {
            "Name": "glueetl",
            "PythonVersion": "3",
            "ScriptLocation": f"s3://{stage.bucket}/{GLUE_PREFIX}scripts/{job.script}",
        },
        "GlueVersion": GLUE_VERSION,
        "WorkerType": "G.1X",
        "NumberOfWorkers": 2,
        "Timeout": 120,
        "MaxRetries": 0,
        "ExecutionProperty": {"MaxConcurrentRuns": 1},  # one writer per table at a time
        "DefaultArguments": {
            # the wheels from the stage's bucket and never from PyPI: no install time from an index, no outage of
            # it stopping the pipeline (AWS Glue docs, "Using Python libraries with AWS Glue", zip of wheels)
            "--additional-python-modules": f"s3://{stage.bucket}/{wheels_key(python_modules(job))}",
            "--python-modules-installer-option": "--no-index",
            **(SPARK_ARGUMENTS if job.spark else {}),
            "--extra-py-files": f"s3://{stage.bucket}/{GLUE_PREFIX}lakehouse_libs.zip",
            "--stage": stage.name,
            "--bucket": stage.bucket,
            "--account": account,  # completes the stage's default bucket names
            "--enable-metrics": "true",
            "--enable-continuous-cloudwatch-log": "true",
            **job.arguments,
        },
    }


def crawler_definition(settings: Settings, stage: Stage, dataset: str, account: str) -> dict[str, Any]:
    """One dataset's raw/ crawler as CreateCrawler and GetCrawler say it, run as the crawlers' role."""
    return {
        "Role": role_arn(role_as_configured(stage, "crawler"), account),
        "DatabaseName": stage.glue_database,
        "Targets": {"S3Targets": [{"Path": f"s3://{stage.bucket}/{settings.zones.raw}{dataset}/"}]},
        "TablePrefix": "raw_",
        # A run starts a crawler only for a new raw layout of a dataset its contract cannot catalogue (two formats:
        # chalicelib.pipeline.crawling), and the crawl must then catalogue it. Crawling new folders only would never
        # read a new column set in an existing ingest_date= folder, and LOG would only log a changed schema (AWS Glue
        # docs, "Scheduling incremental crawls"): so every file is read, and the table gains each new column and
        # loses none, though the files of older layouts were archived out of raw/ (MergeNewColumns), its partitions
        # following the table (AWS Glue docs, "Preventing a crawler from changing an existing schema").
        "SchemaChangePolicy": {"UpdateBehavior": "UPDATE_IN_DATABASE", "DeleteBehavior": "LOG"},
        "RecrawlPolicy": {"RecrawlBehavior": "CRAWL_EVERYTHING"},
        "Configuration": json.dumps(
            {
                "Version": 1.0,
                "Grouping": {"TableGroupingPolicy": "CombineCompatibleSchemas"},
                "CrawlerOutput": {
                    "Tables": {"AddOrUpdateBehavior": "MergeNewColumns"},
                    "Partitions": {"AddOrUpdateBehavior": "InheritFromTable"},
                },
            }
        ),
    }


def comparable_crawler(crawler: Mapping[str, Any]) -> dict[str, Any]:
    """A crawler's declared fields in a form where GetCrawler's answer and the declaration compare equal: GetCrawler
    adds empty target lists and S3 exclusions, may name the role without its ARN, and hands the configuration back as
    JSON in its own layout. Counting those as differences made every deploy update every crawler."""
    targets = crawler.get("Targets") or {}
    configuration = crawler.get("Configuration")
    return {
        "Role": str(crawler.get("Role", "")).rsplit("/", 1)[-1],
        "DatabaseName": crawler.get("DatabaseName"),
        "Targets": {
            "S3Targets": sorted(t["Path"] for t in targets.get("S3Targets", [])),
            **{kind: found for kind, found in targets.items() if found and kind != "S3Targets"},
        },
        "TablePrefix": crawler.get("TablePrefix"),
        "SchemaChangePolicy": crawler.get("SchemaChangePolicy"),
        "RecrawlPolicy": crawler.get("RecrawlPolicy"),
        "Configuration": json.loads(configuration) if configuration else None,
    }


def workgroup_configuration(settings: Settings, stage: Stage) -> WorkGroupConfigurationTypeDef:
    """The stage's Athena workgroup: result location and encryption, metrics, the bytes-scanned cutoff."""
    return {
        "ResultConfiguration": {
            "OutputLocation": f"s3://{stage.bucket}/{settings.zones.athena_results}",
            "EncryptionConfiguration": {"EncryptionOption": "SSE_S3"},
        },
        "EnforceWorkGroupConfiguration": True,
        "PublishCloudWatchMetricsEnabled": True,
        "BytesScannedCutoffPerQuery": settings.limits.athena_bytes_scanned_cutoff,
    }


DEPLOYMENTS = "deployments/"  # under the reports zone


def config_fingerprint(config_files: Mapping[str, str]) -> str:
    """One hash of the configuration a deployment declared (lakehouse.toml and the contracts)."""
    return hashlib.sha256(json.dumps(dict(sorted(config_files.items()))).encode()).hexdigest()


def deployments(s3: S3Client, settings: Settings, stage: Stage) -> list[dict[str, Any]]:
    """Recorded deployments, newest first."""
    prefix = f"{settings.zones.reports}{DEPLOYMENTS}"
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=stage.bucket, Prefix=prefix)
    keys = sorted((o["Key"] for page in pages for o in page.get("Contents", [])), reverse=True)
    return [json.loads(s3.get_object(Bucket=stage.bucket, Key=k)["Body"].read()) for k in keys]
