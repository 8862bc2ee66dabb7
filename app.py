"""Serverless Lakehouse: every Lambda, schedule and route. Thin: decode the event, call chalicelib, answer."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from chalice import Chalice, ChaliceViewError, IAMAuthorizer, Rate, Response

from chalicelib import APP_NAME, METRICS_NAMESPACE, runtime
from chalicelib.errors import BatchFailed, ConfigError, InvalidEvent, LakehouseError
from chalicelib.ingest.events import refs_from_notification
from chalicelib.pipeline.batching import BATCHER_MINUTES

if TYPE_CHECKING:
    from chalice.app import CloudWatchEvent, Request, SQSEvent

    from chalicelib.api.openapi import Route
    from chalicelib.pipeline.reports import RunFailed, RunFinished, TablesRefreshed

P = ParamSpec("P")
R = TypeVar("R")

app = Chalice(app_name=APP_NAME)
logger = Logger(service="lakehouse")
logging.getLogger("chalicelib")
copy_config_to_registered_loggers(source_logger=logger, include={"chalicelib"})  # JSON logs, same correlation id


def _ingest_queue() -> str:
    """The validator's trigger. `lakehouse deploy --stage S` writes it into .chalice/config.json (from config/, with
    the bucket's name): a `chalice deploy` before it would deploy Lambdas that find no configuration."""
    stage = os.environ.get("LAKEHOUSE_STAGE", "local")
    queue = os.environ.get("LAKEHOUSE_INGEST_QUEUE")
    if queue is None and stage != "local":
        raise ConfigError(
            ".chalice/config.json",
            f"stages.{stage}.environment_variables.LAKEHOUSE_INGEST_QUEUE",
            None,
            f"not written yet: run `lakehouse deploy --stage {stage}` before `chalice deploy --stage {stage}`",
        )
    return queue or "lakehouse-local-ingest"


INGEST_QUEUE = _ingest_queue()


def count(name: str, value: float, **dimensions: str) -> None:
    """One CloudWatch metric (EMF, through the log), with its own dimensions."""
    with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace=METRICS_NAMESPACE) as metric:
        for key, dimension in dimensions.items():
            metric.add_dimension(name=key, value=dimension)


# One file per invocation: a file may be 20 GiB after gunzip, and it gets the validator's whole 15 minutes (a batch
# of files shares one timeout, and a timed-out batch comes back whole). The queue's event source runs at most
# VALIDATE_CONCURRENCY validators at once, whatever the burst: the ledger and the account's concurrency are shared.
VALIDATE_CONCURRENCY = 20


@app.on_sqs_message(queue=INGEST_QUEUE, batch_size=1, name="validate", maximum_concurrency=VALIDATE_CONCURRENCY)
def validate(event: SQSEvent) -> dict[str, int]:
    """S3 ObjectCreated notifications (through the ingest queue) -> validated, de-duplicated ledger entries."""
    from aws_lambda_powertools.utilities.data_classes import SQSEvent

    ingestor = runtime.ingestor()
    failures: list[str] = []
    for message in SQSEvent(event.to_dict()).records:
        logger.set_correlation_id(message.message_id)
        try:
            for ref in refs_from_notification(json.loads(message.body)):
                record = ingestor.ingest(ref)
                if record is not None:
                    logger.info("file ingested", extra=record.public())
                    count(f"Files{record.status.title()}", 1, dataset=record.dataset or "none")
        except Exception as exc:  # keep going: one bad record must not hold up the others
            logger.exception("record failed")
            failures.append(f"{message.message_id}: {exc}")
    if failures:
        # Chalice's SQS event source cannot report partial batch failures, so fail the batch; the ledger
        # makes the records that did finish no-ops when the batch is delivered again.
        raise BatchFailed(f"{len(failures)} record(s) failed: {failures}")
    return {"processed": len(event.to_dict().get("Records", []))}


# -- the pipeline (statemachine/pipeline.asl.json) --------------------------------------------------------
@app.schedule(Rate(BATCHER_MINUTES, unit=Rate.MINUTES), name="batcher")  # batching.py says when runs start
def batcher(event: CloudWatchEvent) -> dict[str, str | None]:
    """Start a pipeline run when accepted files have waited long enough (or enough of them wait)."""
    freed = runtime.maintenance().settle()  # a housekeeping job run that ended gives the run lock back
    if freed:
        logger.info("run lock freed", extra={"holder": freed})
    tick = runtime.pipeline().tick()
    logger.info("batcher", extra={"action": tick.action, "run": tick.run, "detail": tick.detail})
    from chalicelib.pipeline.recovery import METRIC

    count(METRIC, tick.past_lease, stage=runtime.current().stage.name)  # files a dead validator left RECEIVED: alarmed
    if tick.announced:
        logger.warning("announced again", extra={"files": list(tick.announced)})
    return {"action": tick.action, "run": tick.run, "detail": tick.detail}


def _run_name(event: object) -> str:
    """The run a state machine step is for; a step invoked without one is a wiring error, said plainly."""
    name = event.get("run") if isinstance(event, dict) else None
    if not isinstance(name, str) or not name:
        raise InvalidEvent(f"the step's payload needs a 'run' name, got {event!r}")
    logger.append_keys(run=name)
    return name


@app.schedule("cron(0 2 * * ? *)", name="lifecycle_sync")  # [schedules] lifecycle_sync in lakehouse.toml
def lifecycle_sync(event: CloudWatchEvent) -> dict[str, Any]:
    """Nightly: the lake's lifecycle definitions applied to their buckets; problems go to the alerts topic."""
    from chalicelib.lifecycle.sync import LifecycleSync

    rt = runtime.current()
    report = LifecycleSync.for_stage(rt.settings, rt.stage).run(dry_run=False, who="lifecycle_sync schedule")
    count("LifecycleBucketsChanged", len(report.changed))
    count("LifecycleBucketsFailed", len(report.failed))
    troubles = [f"{c.bucket}: {c.error}" for c in report.failed] + [f"{k}: {v}" for k, v in report.problems.items()]
    if troubles:
        runtime.alert("lakehouse: lifecycle sync left buckets unsynced", "\n".join(troubles))
    return {"changed": [c.bucket for c in report.changed], "troubles": troubles, "missing": report.missing}


@app.schedule("cron(30 2 * * ? *)", name="drift_report")  # [schedules] drift_report in lakehouse.toml
def drift_report(event: CloudWatchEvent) -> dict[str, Any]:
    """Nightly: the declared setup against the live account; the report goes to reports/drift/, and a summary to
    the alerts topic when something drifted."""
    from chalicelib.stage.drift import run_report

    rt = runtime.current()
    report = run_report(rt.settings, rt.stage)
    count("DriftFindings", len(report.findings))
    if report.drifted:
        runtime.alert(f"lakehouse: {len(report.findings)} drift findings on {rt.stage.name}", report.summary())
    return {"drifted": report.drifted, "findings": len(report.findings), "report": report.keys[1]}


@app.schedule("cron(0 3 * * ? *)", name="start_housekeeping")  # [schedules] housekeeping in lakehouse.toml
def start_housekeeping(event: CloudWatchEvent) -> dict[str, Any]:
    """Nightly: compaction and VACUUM of every table, as one run of the housekeeping Glue job under the pipeline's
    run lock; skipped when a run holds the lock (the next night tries again). The job run's end frees the lock."""
    result = runtime.maintenance().housekeeping()
    logger.info("housekeeping", extra=result)
    count("HousekeepingStarted" if result["action"] == "started" else "HousekeepingSkipped", 1)
    return result


# -- the HTTP API (its OpenAPI document: GET /openapi.json, chalicelib/openapi.py) ---------------------------
def _api_auth(mode: str) -> dict[str, Any]:
    """How a stage's API routes are protected (`LAKEHOUSE_API_AUTH` in .chalice/config.json, read when `chalice
    deploy` or `chalice package` loads this file): IAM (SigV4-signed requests), IAM with an API key as well (the key
    only throttles, through its usage plan), or none (the local stage, on loopback). A key alone is refused: anyone
    holding it could read the ledger, and API Gateway says a key is for usage plans, not authorization."""
    if mode == "iam":
        return {"authorizer": IAMAuthorizer()}
    if mode == "iam+api_key":
        return {"authorizer": IAMAuthorizer(), "api_key_required": True}
    if mode == "none":
        return {}
    why = "an API key is not authorization (API Gateway, usage plans); " if mode == "api_key" else ""
    raise ConfigError(".chalice/config.json", "LAKEHOUSE_API_AUTH", mode, f"{why}must be iam, iam+api_key or none")


API_AUTH_MODE = os.environ.get("LAKEHOUSE_API_AUTH", "iam")  # unset: the safe default
API_AUTH = _api_auth(API_AUTH_MODE)


class ServiceUnavailableError(ChaliceViewError):
    STATUS_CODE = 503


def _request() -> Request:
    """The request a route's view is answering (Chalice sets it before calling the view)."""
    if app.current_request is None:
        raise RuntimeError("no current request: only a route's view can read it")
    return app.current_request


def _aws_errors(view: Callable[P, R]) -> Callable[P, R]:
    """Every error behind a route answers with a status and a JSON body, never Chalice's bare 500: the project's
    own errors with their `http_status` (a parameter the caller can fix is a 4xx; a ledger that cannot be read, a
    failed query, a broken published configuration a 503 naming it), and an AWS error (a missing permission,
    throttling beyond the client's retries) a 503 naming the call."""
    from functools import wraps

    @wraps(view)
    def answer(*args: P.args, **kwargs: P.kwargs) -> R:
        from botocore.exceptions import BotoCoreError, ClientError
        from chalice import BadRequestError, NotFoundError

        try:
            return view(*args, **kwargs)
        except LakehouseError as exc:
            if exc.http_status < 500:
                answer_with = {404: NotFoundError}.get(exc.http_status, BadRequestError)
                raise answer_with(str(exc)) from None
            logger.exception("%s behind %s", type(exc).__name__, _request().path)
            raise ServiceUnavailableError(f"{type(exc).__name__}: {exc}") from None
        except (BotoCoreError, ClientError) as exc:
            logger.exception("AWS error behind %s", _request().path)
            raise ServiceUnavailableError(f"AWS: {exc}") from None

    return answer


_DATA_VIEWS: set[str] = set()


def data_route(path: str, method: str) -> Callable[[Callable[[], R]], Callable[[], R]]:
    """A route that answers with data: the stage's authorization (API_AUTH), and every error as a 4xx or 503."""

    def register(view: Callable[[], R]) -> Callable[[], R]:
        _DATA_VIEWS.add(view.__name__)
        guarded = _aws_errors(view)
        app.route(path, methods=[method], **API_AUTH)(guarded)  # registers it (Chalice hands a view back as it is)
        return guarded

    return register


def openapi_routes() -> list[Route]:
    """Every route of the app, for its OpenAPI document: the document is generated from these."""
    from chalicelib.api.openapi import Route

    return [
        Route(path, method, (entry.view_function.__doc__ or "").strip().split("\n")[0], entry.view_name in _DATA_VIEWS)
        for path, methods in app.routes.items()
        for method, entry in methods.items()
    ]


@app.route("/", methods=["GET"])
def dashboard() -> Response:
    """The dashboard page for people: static, its data comes from /status and /cost (which are protected)."""
    from pathlib import Path

    page = Path(__file__).with_name("chalicelib").joinpath("api", "dashboard.html").read_text()
    return Response(body=page, status_code=200, headers={"Content-Type": "text/html; charset=utf-8"})


@app.route("/openapi.json", methods=["GET"])
def openapi() -> dict[str, Any]:
    """The API's OpenAPI document, built from the app's routes and the code they call."""
    from chalicelib.api.openapi import document

    return document(API_AUTH_MODE, openapi_routes())


def _cost(params: Mapping[str, Any]) -> dict[str, Any]:
    from chalicelib.cost import estimate as cost

    params = dict(params or {})
    return cost.estimate_for(runtime.current().settings, params.pop("scenario", None), params, runtime.lake_rules())


@data_route("/cost", "GET")
def cost_get() -> dict[str, Any]:
    """Monthly cost estimate; query parameters: `scenario` (light, medium, heavy) and any usage figure."""
    return _cost(_request().query_params or {})


@data_route("/cost", "POST")
def cost_post() -> dict[str, Any]:
    """The same, with a JSON object body (`storage_split` as an object)."""
    from chalice import BadRequestError

    try:
        body = _request().json_body
    except BadRequestError:
        raise BadRequestError("body: not valid JSON") from None
    if body is not None and not isinstance(body, dict):
        raise BadRequestError("body: must be a JSON object of usage figures")
    return _cost(body or {})


@data_route("/status", "GET")
def status_get() -> dict[str, Any]:
    """The pipeline at a glance, from summaries only; `files` (1-200, default 20) recent files."""
    from datetime import UTC, datetime

    from chalice import BadRequestError

    from chalicelib.api.status import status

    params: Mapping[str, str] = _request().query_params or {}
    raw = params.get("files", "20")
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 200:  # "²".isdigit() is True
        raise BadRequestError(f"files: must be a whole number from 1 to 200, not {raw!r}")
    rt = runtime.current()
    return status(rt.settings, rt.stage, rt.ledger, rt.client("s3"), datetime.now(UTC), int(raw), rt.client("sqs"))


@app.lambda_function(name="quality_check")
def quality_check(event: dict[str, Any], context: object) -> dict[str, Any]:
    """The quality gate. Its answer (status, readable summary, batches to roll back) drives the state
    machine's QualityGate; an error-level failure is alerted by the run's failure path with this summary,
    warnings alone are alerted here."""
    name = _run_name(event)
    rt, steps = runtime.current(), runtime.steps()
    steps.refresh_tables(rt.client("s3"), rt.client("glue"), ("processed",))  # Athena finds tables in the catalog
    report = steps.quality(name, runtime.sql_engine())
    for result in report["results"]:
        failed = [c for c in result["checks"] if not c["passed"]]
        count("QualityChecksPassed", len(result["checks"]) - len(failed), Dataset=result["dataset"])
        for severity in ("warn", "error"):
            count(
                "QualityChecksFailed",
                sum(c["severity"] == severity for c in failed),
                Dataset=result["dataset"],
                Severity=severity,
            )
    logger.info("quality of run %s: %s", name, report["status"], extra={"datasets": report["datasets"]})
    if report["status"] == "WARN":
        runtime.alert(f"lakehouse: run {name} passed with quality warnings", report["summary"])
    return {
        "status": report["status"],
        "summary": report["summary"],
        "rollback": report["rollback"],
        "datasets": report["datasets"],
    }


@app.lambda_function(name="refresh_tables")
def refresh_tables(event: dict[str, Any], context: object) -> TablesRefreshed:
    _run_name(event)
    rt = runtime.current()
    return runtime.steps().refresh_tables(rt.client("s3"), rt.client("glue"))


@app.lambda_function(name="finish_run")
def finish_run(event: dict[str, Any], context: object) -> RunFinished:
    summary = runtime.steps().finish(_run_name(event), runtime.current().client("s3"))
    count("PipelineRunsSucceeded", 1)
    count("FilesArchived", summary["archived"])
    return summary


@app.lambda_function(name="fail_run")
def fail_run(event: dict[str, Any], context: object) -> RunFailed:
    name = _run_name(event)
    error = event.get("error") or {}
    cause = str(error.get("Cause", ""))
    result = runtime.steps().fail(name, str(error.get("Error", "Unknown")), cause, runtime.current().client("s3"))
    count("PipelineRunsFailed", 1)
    count("FilesFailed", result["files_failed"])
    return result
