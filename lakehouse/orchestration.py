"""The local stage's Step Functions: the deployed state machine's JSON, run by the local executor.

The definition is read back from the local stage's Step Functions API (provisioning put it there, with the
stage's names filled in), so what runs here is what `lakehouse deploy` deploys. Each Task goes to the
same code it reaches on AWS:

- `lambda:invoke`                  -> the Chalice handler, through `chalice.test.Client`;
- `glue:startJobRun.sync`          -> the job's glue_scripts/ entry point as a local process;
- `aws-sdk:glue:startCrawler/getCrawler` -> a local crawler that registers `raw_<dataset>` tables in the
  local stage's Glue catalog (moto keeps crawlers but never runs them);
- `sns:publish`                    -> the local stage's SNS.

Executions are kept as JSON files under the local stage's state directory, with their history, the Glue
runs they made and the messages they published. Unlike AWS, the executor lives in the process that runs
it: an execution whose process died is started again from the top (every step is idempotent).
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, redirect_stdout
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chalicelib.aws import account_id, acting_as, error_code
from chalicelib.config import Settings, Stage
from chalicelib.errors import LakehouseError
from chalicelib.names import job_kind, process_job, run_job
from chalicelib.stage.declared import glue_jobs, role_arn
from lakehouse import limits
from lakehouse.local_iam import credentials_for, environment_for
from lakehouse.stepfunctions import Execution, Executor, TaskError

if TYPE_CHECKING:
    from types_boto3_glue.type_defs import CrawlerTypeDef, TableInputTypeDef
    from types_boto3_stepfunctions import SFNClient
    from types_boto3_sts import STSClient

    from chalicelib.aws import Clients

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
GLUE_JOB_SYNC = "arn:aws:states:::glue:startJobRun.sync"
START_CRAWLER = "arn:aws:states:::aws-sdk:glue:startCrawler"
GET_CRAWLER = "arn:aws:states:::aws-sdk:glue:getCrawler"
SNS_PUBLISH = "arn:aws:states:::sns:publish"


def _aws_error(service: str, exc: Exception) -> TaskError:
    """A boto3 error as Step Functions names it for an SDK integration (`Glue.CrawlerRunningException`)."""
    code = error_code(exc)
    return TaskError(f"{service}.{code}" if code else type(exc).__name__, str(exc))


def _checked_workers(sized: dict[str, Any]) -> dict[str, Any]:
    """A job run's WorkerType and NumberOfWorkers, refused as Glue refuses them: one without the other, a type the
    project does not declare, a count outside the type's range (chalicelib/pipeline/engines.py cites the limits)."""
    from chalicelib.config.model import WORKER_LIMITS

    if not sized:
        return {}
    kind, count = sized.get("WorkerType"), sized.get("NumberOfWorkers")
    if kind is None or count is None:
        raise TaskError("Glue.InvalidInputException", "WorkerType and NumberOfWorkers are set together")
    if kind not in WORKER_LIMITS:
        raise TaskError("Glue.InvalidInputException", f"WorkerType {kind!r}: the local stage runs {[*WORKER_LIMITS]}")
    low, high = WORKER_LIMITS[kind]
    if isinstance(count, bool) or not isinstance(count, int) or not low <= count <= high:
        raise TaskError("Glue.InvalidInputException", f"NumberOfWorkers for {kind} is {low}-{high}, not {count!r}")
    return {"WorkerType": kind, "NumberOfWorkers": count}


@dataclass
class LocalServices:
    """Performs the Tasks of the pipeline on the local stage. `fail_jobs` makes a Glue job's next runs
    fail (job name -> how many), to show and test the failure paths."""

    settings: Settings
    stage: Stage
    clients: Clients  # deploy.provision.Clients
    invoke: Any  # chalice.test.Client().lambda_.invoke
    app_name: str
    fail_jobs: dict[str, int] = field(default_factory=dict)
    glue_runs: list[dict[str, Any]] = field(default_factory=list)
    published: list[dict[str, str]] = field(default_factory=list)
    lambda_logs: list[str] = field(default_factory=list)  # what the Lambda steps printed (CloudWatch Logs on AWS)
    _crawls: dict[str, dict[str, Any]] = field(default_factory=dict)  # crawler -> its local crawl state
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def clients_of(self, component: str) -> Clients:
        """The stage's clients as `component` makes them: with its role's credentials when the stage enforces IAM."""
        from chalicelib.aws import Clients

        with acting_as(credentials_for(component, self.stage)):
            return Clients.for_stage(self.stage)

    def __call__(self, resource: str, params: Any) -> Any:
        if resource == LAMBDA_INVOKE:
            return self.invoke_lambda(params["FunctionName"], params.get("Payload", {}))
        if resource == GLUE_JOB_SYNC:
            sized = {k: params[k] for k in ("WorkerType", "NumberOfWorkers") if k in params}
            return self.run_job(params["JobName"], params.get("Arguments", {}), **sized)
        if resource == START_CRAWLER:
            return self.start_crawler(params["Name"])
        if resource == GET_CRAWLER:
            return self.get_crawler(params["Name"])
        if resource == SNS_PUBLISH:
            return self.publish(params)
        raise TaskError("States.Runtime", f"the local stage has no integration for {resource}")

    def invoke_lambda(self, function_arn: str, payload: Any) -> dict[str, Any]:
        name = function_arn.rsplit(":", 1)[-1]
        prefix = f"{self.app_name}-{self.stage.name}-"  # Chalice names a function <app>-<stage>-<name>
        if not name.startswith(prefix):
            raise TaskError("Lambda.ResourceNotFoundException", f"{function_arn} is not a function of this app")
        try:  # Lambda's 6 MB synchronous payload, each way (lakehouse/limits.py)
            limits.lambda_request(payload)
        except limits.LimitExceeded as exc:  # Invoke refused it: a service error, the function never ran
            raise TaskError(f"Lambda.{exc.code}", exc.message) from exc
        output = io.StringIO()
        function = name.removeprefix(prefix)
        try:  # the function runs as its role (lakehouse/local_iam.py); its printed output (EMF metrics) goes to its log
            with redirect_stdout(output), acting_as(credentials_for(f"lambda:{function}", self.stage)):
                result = self.invoke(function, payload).payload
            limits.lambda_response(result)
        except limits.LimitExceeded as exc:  # the function ran; Lambda reports its result as a function error
            raise TaskError(exc.code, json.dumps({"errorType": exc.code, "errorMessage": exc.message})) from exc
        except Exception as exc:  # as Lambda reports a function error: the exception's type and message
            cause = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
            raise TaskError(type(exc).__name__, json.dumps(cause)) from exc
        finally:
            with self._lock:
                self.lambda_logs.extend(line for line in output.getvalue().splitlines() if line)
        return {"StatusCode": 200, "ExecutedVersion": "$LATEST", "Payload": result}

    def run_job(self, job: str, arguments: dict[str, str], **sized: Any) -> dict[str, Any]:
        """StartJobRun and wait for it, as `.sync` does; `sized` is the run's WorkerType and NumberOfWorkers, refused
        as Glue refuses them (one without the other, a type or count Glue does not run)."""
        from lakehouse.jobs import run_script

        glue_job = glue_jobs(self.settings, self.stage).get(job)
        if glue_job is None:
            raise TaskError("Glue.EntityNotFoundException", f"no Glue job named {job}")
        run: dict[str, Any] = {
            "Id": f"jr_{uuid.uuid4().hex}",
            "JobName": job,
            "Arguments": arguments,
            **_checked_workers(sized),
        }
        run["StartedOn"] = time.time()
        with self._lock:
            self.glue_runs.append(run)
            forced = self.fail_jobs.get(job, 0) > 0
            if forced:
                self.fail_jobs[job] -= 1
            # the job that runs a run whole fails, inside it, the datasets whose own job is to fail
            failing = [d for d in self.settings.datasets if self.fail_jobs.get(process_job(self.stage, d), 0) > 0]
            failing = failing if job == run_job(self.stage) else []
            for dataset in failing:
                self.fail_jobs[process_job(self.stage, dataset)] -= 1
        try:
            if forced:
                raise LakehouseError(f"{job} failed: forced failure (lakehouse run --fail-job {job})")
            given = {**glue_job.arguments, **arguments}  # a run's arguments over the job's defaults, as on Glue
            env = {"LAKEHOUSE_FAIL_DATASETS": ",".join(failing)} if failing else {}
            # the job runs as its kind's role, as on AWS
            env.update(environment_for(f"glue:{job_kind(glue_job.script)}", self.stage))
            run_script(glue_job.script, self.stage, [arg for pair in given.items() for arg in pair], env)
        except LakehouseError as exc:  # the .sync integration fails the Task with the job run as its cause
            run.update(JobRunState="FAILED", ErrorMessage=str(exc)[-2000:])
            raise TaskError("States.TaskFailed", json.dumps(run)) from exc
        run.update(JobRunState="SUCCEEDED", ExecutionTime=round(time.time() - run["StartedOn"]))
        return run

    # -- the local crawler ---------------------------------------------------------------------------
    def start_crawler(self, name: str) -> dict[str, Any]:
        """Crawl now; `getCrawler` then reports the crawler RUNNING once more (with the previous crawl as its
        LastCrawl, or none on the first), as a real crawl that takes a while, so the polling loop is run."""
        try:  # the state machine's call, as its role
            crawler = self.clients_of("states").glue.get_crawler(Name=name)["Crawler"]
        except Exception as exc:
            raise _aws_error("Glue", exc) from exc
        with self._lock:
            state = self._crawls.setdefault(name, {"last": None, "previous": None, "polls": 0, "busy": False})
            if state["busy"] or state["polls"]:
                raise TaskError("Glue.CrawlerRunningException", f"Crawler with name {name} has already started")
            state["busy"] = True
        try:
            seen = state.setdefault("folders", set())
            tables = [self._crawl(crawler, t["Path"], seen) for t in crawler["Targets"].get("S3Targets", [])]
            last = {"Status": "SUCCEEDED", "Tables": [t for t in tables if t]}
        except Exception as exc:  # a crawl that fails is reported by getCrawler, as on AWS
            last = {"Status": "FAILED", "ErrorMessage": str(exc)}
        with self._lock:
            state.update(previous=state["last"], last=last, polls=1, busy=False)
        return {}

    def get_crawler(self, name: str) -> dict[str, Any]:
        try:
            crawler = self.clients_of("states").glue.get_crawler(Name=name)["Crawler"]
        except Exception as exc:
            raise _aws_error("Glue", exc) from exc
        with self._lock:
            state = self._crawls.get(name, {"last": None, "previous": None, "polls": 0})
            running = state["polls"] > 0
            if running:
                state["polls"] -= 1
            last = state["previous"] if running else state["last"]
        out = {
            "Name": crawler["Name"],
            "State": "RUNNING" if running else "READY",
            "DatabaseName": crawler["DatabaseName"],
        }
        return {"Crawler": {**out, **({"LastCrawl": last} if last else {})}}

    def _crawl(self, crawler: CrawlerTypeDef, path: str, seen: set[str]) -> str | None:
        """Catalogue one S3 folder as a Glue crawler does raw text files: each file's columns from its header (CSV)
        or first line (JSON lines), all strings, merged in order of appearance (CombineCompatibleSchemas), with the
        first file's classification. As the crawler's policies say (AWS Glue docs, "Scheduling incremental crawls",
        "Preventing a crawler from changing an existing schema"): under CRAWL_NEW_FOLDERS_ONLY the folders of earlier
        crawls (`seen`) are not read again; an existing table is left as it is under UpdateBehavior LOG, gains only
        the new columns under MergeNewColumns, and takes the crawled ones otherwise."""
        bucket, _, prefix = path.removeprefix("s3://").partition("/")
        clients = self.clients_of(f"crawler:{crawler['Name']}")  # a crawler runs as its role (the Glue role)
        pages = clients.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        objects = [o for page in pages for o in page.get("Contents", []) if o["Size"] > 0]
        if crawler.get("RecrawlPolicy", {}).get("RecrawlBehavior") == "CRAWL_NEW_FOLDERS_ONLY":
            objects = [o for o in objects if o["Key"].rsplit("/", 1)[0] not in seen]
        seen.update(o["Key"].rsplit("/", 1)[0] for o in objects)
        if not objects:
            return None
        names: list[str] = []
        for found in (self._columns(clients.s3, bucket, o["Key"]) for o in objects):
            names += [n for n in found if n not in names]
        table: TableInputTypeDef = {
            "Name": crawler.get("TablePrefix", "") + prefix.rstrip("/").rsplit("/", 1)[-1],
            "TableType": "EXTERNAL_TABLE",
            "Parameters": {
                "classification": "json" if ".json" in objects[0]["Key"] else "csv",
                "crawler": crawler["Name"],
            },
            "StorageDescriptor": {"Location": path, "Columns": [{"Name": n, "Type": "string"} for n in names]},
        }
        glue, database = clients.glue, crawler["DatabaseName"]
        try:
            glue.create_table(DatabaseName=database, TableInput=table)
        except glue.exceptions.AlreadyExistsException:
            if crawler.get("SchemaChangePolicy", {}).get("UpdateBehavior") == "LOG":
                return None  # like a Glue crawler told to log schema changes: the table is left as it is
            output = json.loads(crawler.get("Configuration") or "{}").get("CrawlerOutput", {})
            if output.get("Tables", {}).get("AddOrUpdateBehavior") == "MergeNewColumns":
                live = glue.get_table(DatabaseName=database, Name=table["Name"])["Table"]["StorageDescriptor"]
                types = {c["Name"]: c.get("Type", "string") for c in live.get("Columns", [])}
                merged = [*types, *(n for n in names if n not in types)]
                table["StorageDescriptor"]["Columns"] = [{"Name": n, "Type": types.get(n, "string")} for n in merged]
            glue.update_table(DatabaseName=database, TableInput=table)
        return table["Name"]

    def _columns(self, s3: Any, bucket: str, key: str) -> list[str]:
        """A raw file's column names, lower-cased as a crawler writes them: its CSV header or first JSON line's keys."""
        body = s3.get_object(Bucket=bucket, Key=key, Range="bytes=0-1048575")["Body"].read()
        if key.endswith(".gz"):
            body = gzip.GzipFile(fileobj=io.BytesIO(body)).read(1048576)
        line = body.decode("utf-8", "replace").lstrip("\ufeff").splitlines()[0]
        names = list(json.loads(line)) if ".json" in key else [c.strip().strip('"') for c in line.split(",")]
        return [n.lower() for n in names]

    def publish(self, params: dict[str, Any], component: str = "states") -> dict[str, Any]:
        try:
            response = self.clients_of(component).sns.publish(**params)
        except Exception as exc:
            raise _aws_error("SNS", exc) from exc
        with self._lock:
            self.published.append({k: params[k] for k in ("TopicArn", "Subject", "Message") if k in params})
        return {"MessageId": response["MessageId"]}


class ExecutionStore:
    """Local executions as JSON files (the local stage's `ListExecutions` and `GetExecutionHistory`)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, name: str) -> Path:
        return self.root / f"{name}.json"

    def get(self, name: str) -> dict[str, Any] | None:
        path = self._path(name)
        return json.loads(path.read_text()) if path.is_file() else None

    def put(self, record: dict[str, Any]) -> None:
        tmp = self._path(record["name"]).with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1, default=str))
        tmp.replace(self._path(record["name"]))  # atomic: a reader never sees half a record

    def all(self) -> list[dict[str, Any]]:
        records = [json.loads(p.read_text()) for p in self.root.glob("*.json")]
        return sorted(records, key=lambda r: r["started_at"], reverse=True)


def failed_state(history: list[dict[str, Any]]) -> str | None:
    """Where a failed run went wrong: the pipeline catches errors and fails at its end, so the origin is the
    first state whose error was caught, or else the Choice that routed the run to the failure step (the
    quality gate)."""
    for i, event in enumerate(history):
        if event["event"] in ("StateCaught", "StateFailed"):
            state: str = event["state"]
            return state
        if event["event"] == "StateEntered" and event["state"] == "HandleFailure":
            choices: list[str] = [e["state"] for e in history[:i] if e["event"] == "StateExited" and "next" in e]
            return choices[-1] if choices else None
    return None


class LocalOrchestrator:
    """The pipeline's orchestrator on the local stage: `start` runs the execution to its end, here."""

    def __init__(self, definition: dict[str, Any], services: LocalServices, store: ExecutionStore) -> None:
        # Waits and retry back-offs are not waited for: the local crawler and jobs are done when they return.
        # $$.StateMachine.Id and $$.Execution.RoleArn name the stage's state machine and role, as on AWS.
        stage = services.stage
        account = stage.account or account_id(services.clients.sts)
        self.executor = Executor(
            definition,
            services,
            sleep=lambda _: None,
            state_machine_arn=stage.state_machine_arn(account),
            role_arn=role_arn(stage.pipeline_role or "local-pipeline", account),
        )
        self.services, self.store = services, store
        self.finished: list[dict[str, Any]] = []

    def status(self, name: str) -> str | None:
        record = self.store.get(name)
        if record is None:
            return None
        if record["status"] == "RUNNING" and not alive(record["pid"]):
            return None  # its process died: not running anywhere, so `start` runs it again
        status: str = record["status"]
        return status

    def start(self, name: str, input_: Mapping[str, Any]) -> None:
        earlier = self.store.get(name)
        if earlier is not None and self.status(name) is not None:
            return  # started already (running elsewhere, or finished): same name, same execution
        services = self.services
        before = len(services.glue_runs), len(services.published), len(services.lambda_logs)
        record = {
            "name": name,
            "status": "RUNNING",
            "input": input_,
            "pid": os.getpid(),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "restarts": (earlier or {}).get("restarts", -1) + 1,
        }
        self.store.put(record)
        execution: Execution = self.executor.run(name, input_)
        if execution.status == "FAILED":
            execution.failed_state = failed_state(execution.history) or execution.failed_state
        record.update(
            {k: v for k, v in asdict(execution).items() if k not in ("name", "started_at")},
            glue_runs=services.glue_runs[before[0] :],
            published=services.published[before[1] :],
            lambda_logs=services.lambda_logs[before[2] :],
        )
        self.store.put(record)
        self.finished.append(record)


def deployed_definition(sfn: SFNClient, sts: STSClient, stage: Stage) -> dict[str, Any]:
    """The state machine definition as provisioned on the stage."""
    arn = stage.state_machine_arn(account_id(sts))
    try:
        definition: dict[str, Any] = json.loads(sfn.describe_state_machine(stateMachineArn=arn)["definition"])
        return definition
    except Exception as exc:
        raise LakehouseError(f"state machine {stage.state_machine} is not provisioned: {exc}") from exc


class _CurrentStdout:
    """A stream that is whatever sys.stdout is now: log handlers made at import time follow redirect_stdout."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def _logs_follow_stdout() -> None:
    """The app's log handlers write to the current stdout, so a Lambda step's log lines land in its log."""
    for name in (
        "lakehouse",
        "chalicelib",
        *(n for n in logging.root.manager.loggerDict if n.startswith("chalicelib.")),
    ):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.__stdout__, sys.stdout):
                handler.setStream(_CurrentStdout())


@contextmanager
def local_pipeline(
    settings: Settings, stage: Stage, executions_dir: Path, fail_jobs: dict[str, int] | None = None
) -> Iterator[tuple[Any, LocalOrchestrator]]:
    """The stage's Pipeline driving the local executor, with the Chalice app's handlers as its Lambdas."""
    from chalice.test import Client

    import app as lakehouse_app
    from chalicelib.aws import Clients
    from chalicelib.ledger import ledger_for
    from chalicelib.pipeline.batcher import Pipeline
    from deploy.chalice_project import PROJECT_DIR
    from lakehouse.query import serve_duckdb_to_local_lambdas

    _logs_follow_stdout()
    serve_duckdb_to_local_lambdas()
    clients = Clients.for_stage(stage)
    definition = deployed_definition(clients.stepfunctions, clients.sts, stage)
    alerts = stage.topic_arn(stage.alerts_topic, account_id(clients.sts))
    batcher = credentials_for("lambda:batcher", stage)  # the tick is the batcher Lambda's: it runs as its role
    with (
        Client(lakehouse_app.app, stage_name=stage.name, project_dir=str(PROJECT_DIR)) as chalice_client,
        acting_as(batcher),
    ):
        services = LocalServices(
            settings, stage, clients, chalice_client.lambda_.invoke, lakehouse_app.app.app_name, dict(fail_jobs or {})
        )
        orchestrator = LocalOrchestrator(definition, services, ExecutionStore(executions_dir))

        def alert(subject: str, message: str) -> None:  # the batcher's alert, published as its role
            services.publish({"TopicArn": alerts, "Subject": subject[:100], "Message": message}, "lambda:batcher")

        yield Pipeline(settings, stage, ledger_for(stage), orchestrator, alert), orchestrator


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
