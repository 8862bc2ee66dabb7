"""What a Lambda needs at run time, built once per container from its environment.

The stage's environment (`.chalice/config.json`) names the stage, the lake bucket and the account; everything
else is read from the configuration that provisioning published under the bucket's `config/` prefix, re-read at
most every `CONFIG_TTL_SECONDS` so a pushed contract takes effect without a redeploy.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast, overload

from chalicelib.aws import ClientSettings, Credentials, acting, client
from chalicelib.config import Settings, Stage, load_settings_from_s3
from chalicelib.errors import LakehouseError
from chalicelib.ingest.ingestor import Ingestor
from chalicelib.ledger import Ledger, ledger_for

if TYPE_CHECKING:
    from types_boto3_glue import GlueClient
    from types_boto3_s3 import S3Client
    from types_boto3_sns import SNSClient
    from types_boto3_sqs import SQSClient
    from types_boto3_sts import STSClient

    from chalicelib.pipeline.batcher import Pipeline
    from chalicelib.pipeline.maintenance import Maintenance
    from chalicelib.pipeline.steps import RunSteps
    from chalicelib.quality.gate import SqlEngine

T = TypeVar("T")
CONFIG_TTL_SECONDS = float(os.environ.get("LAKEHOUSE_CONFIG_TTL_SECONDS", "60"))


@dataclass(frozen=True)
class Runtime:
    """The stage's settings and ledger as one Lambda container sees them."""

    settings: Settings
    stage: Stage
    ledger: Ledger

    # typed per service, as `chalicelib.aws.client` is, for the services the Lambdas call
    @overload
    def client(self, service: Literal["s3"]) -> S3Client: ...
    @overload
    def client(self, service: Literal["sqs"]) -> SQSClient: ...
    @overload
    def client(self, service: Literal["sns"]) -> SNSClient: ...
    @overload
    def client(self, service: Literal["glue"]) -> GlueClient: ...
    @overload
    def client(self, service: Literal["sts"]) -> STSClient: ...
    def client(self, service: Literal["s3", "sqs", "sns", "glue", "sts"]) -> Any:
        """A cached client for `service`, with the stage's region and retry policy."""
        return client(service, ClientSettings.for_stage(self.stage))


_lock = threading.RLock()  # re-entrant: building one cached value may read another
_cache: dict[tuple[str, Credentials | None], tuple[float, Any]] = {}


def _fresh(name: str, build: Callable[[], T]) -> T:
    """`build()`, kept for CONFIG_TTL_SECONDS per container. On AWS a container has one role; the local stage runs
    every Lambda in one process, each as its own role (lakehouse/local_iam.py): one cache per role, as per container."""
    key = (name, acting())
    with _lock:
        hit = _cache.get(key)
        if hit is None or time.monotonic() - hit[0] > CONFIG_TTL_SECONDS:
            hit = _cache[key] = (time.monotonic(), build())
        return cast("T", hit[1])  # each name is only ever built by its one `build`


def _runtime() -> Runtime:
    bucket = os.environ["LAKEHOUSE_BUCKET"]
    prefix = os.environ.get("LAKEHOUSE_CONFIG_PREFIX", "config/")
    settings = load_settings_from_s3(client("s3"), bucket, prefix)
    if account := os.environ.get("LAKEHOUSE_ACCOUNT"):  # completes default bucket names (lakehouse deploy sets it)
        settings = settings.for_account(account)
    stage = settings.stage(os.environ["LAKEHOUSE_STAGE"])
    return Runtime(settings, stage, ledger_for(stage))


def current() -> Runtime:
    """The container's runtime, rebuilt from the published configuration at most every CONFIG_TTL_SECONDS."""
    return _fresh("runtime", _runtime)


def ingestor() -> Ingestor:
    """The validator's Ingestor on the stage's clients and ledger."""
    rt = current()
    return Ingestor(rt.settings, rt.stage, rt.client("s3"), rt.client("sqs"), rt.ledger)


def pipeline() -> Pipeline:
    """The stage's pipeline, starting executions of its Step Functions state machine."""
    from chalicelib.pipeline.batcher import Pipeline

    rt = current()
    return Pipeline.on_aws(rt.settings, rt.stage, rt.ledger)


def maintenance() -> Maintenance:
    """The stage's maintenance Glue job runs (housekeeping), under the pipeline's run lock."""
    from chalicelib.pipeline.maintenance import AwsGlueRuns, Maintenance

    rt = current()
    return Maintenance(rt.stage, rt.ledger, AwsGlueRuns(rt.client("glue")))


def steps() -> RunSteps:
    """The state machine's Lambda steps for the stage."""
    from chalicelib.pipeline.steps import RunSteps

    rt = current()
    return RunSteps(rt.settings, rt.stage, rt.ledger)


# Where a stage's SQL runs, by `LAKEHOUSE_SQL_ENGINE` (.chalice/config.json): Athena on AWS. The local stage's
# Lambdas run in the `lakehouse` process, which adds "duckdb" (DuckDB over the Delta tables, in lakehouse_etl)
# before it invokes them: the Lambda core never imports the Glue core.
SQL_ENGINES: dict[str, Callable[[Settings, Stage], SqlEngine]] = {}


def sql_engine() -> SqlEngine:
    """The stage's SQL engine (the quality gate's scans run on it)."""
    from chalicelib.athena import Athena

    name = os.environ.get("LAKEHOUSE_SQL_ENGINE", "athena")
    factory = {"athena": Athena.for_stage, **SQL_ENGINES}.get(name)
    if factory is None:
        raise LakehouseError(f"LAKEHOUSE_SQL_ENGINE = {name!r}: not available in this process (athena always is)")
    rt = current()
    return factory(rt.settings, rt.stage)


def lake_rules() -> list[dict[str, Any]] | None:
    """The lake bucket's lifecycle rules as pushed to `config/lifecycle/` (None if none are defined), for the
    cost API's what-if; re-read at most every CONFIG_TTL_SECONDS like the configuration."""

    def read() -> list[dict[str, Any]] | None:
        from chalicelib.lifecycle.rules import lake_rules as rules_of
        from chalicelib.lifecycle.sync import LifecycleSync

        rt = current()
        texts, _ = LifecycleSync.for_stage(rt.settings, rt.stage).definition_files()
        return rules_of(texts, rt.stage.bucket)

    return _fresh("lake_rules", read)


def alert(subject: str, message: str) -> None:
    """Publish to the stage's alerts topic."""
    from chalicelib.aws import account_id

    rt = current()
    topic = rt.stage.topic_arn(rt.stage.alerts_topic, account_id(rt.client("sts")))
    rt.client("sns").publish(TopicArn=topic, Subject=subject[:100], Message=message)


def reset() -> None:
    """Forget the cached runtime (tests, and the local stage after re-provisioning)."""
    with _lock:
        _cache.clear()
