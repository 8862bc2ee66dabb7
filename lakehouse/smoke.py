"""`lakehouse smoke --stage S`: prove a stage works end to end with a small generated set, then take it back.

Each step is timed; the first that fails stops the steps after it (cleanup always runs) and names itself. The set's
ids all start with a fresh tag (`SMOKE1A2B3C-`), so its rows never meet a lake's own: MERGE keys cannot collide,
and the cleanup deletes exactly them. What the cleanup leaves: the run in the pipeline's history (its record and
execution), and the deleted rows in the Delta tables' earlier versions until VACUUM (30 days of time travel).
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chalicelib.config import Settings, Stage, dataset_order
from chalicelib.errors import LakehouseError
from chalicelib.ledger import Run, Status, ledger_for
from lakehouse import localstage

if TYPE_CHECKING:
    from types_boto3_s3.type_defs import ObjectIdentifierTypeDef

RUN_TIMEOUT = 3600.0  # a first run on AWS waits for Glue's cold start and the crawlers


@dataclass(frozen=True)
class Step:
    name: str
    seconds: float
    ok: bool
    detail: str


class SmokeFailed(LakehouseError):
    """A smoke step failed: its name and why."""


class Smoke:
    """The steps of `lakehouse smoke` on one stage (the local one, or a deployed one with your credentials)."""

    def __init__(
        self,
        settings: Settings,
        stage: Stage,
        *,
        report: Callable[[Step], None] = lambda _: None,
        orders: int = 20,
        engine: str | None = None,
    ) -> None:
        self.settings, self.stage, self.report, self.orders = settings, stage, report, orders
        self.engine = engine  # every batch of the smoke's runs on this engine ("spark", "single"), as `run --engine`
        self.local = stage.name == localstage.STAGE
        self.tag = f"SMOKE{uuid.uuid4().hex[:6].upper()}-"
        self.ledger = ledger_for(stage)
        self.steps: list[Step] = []
        self.files: list[str] = []  # ledger file ids of what was dropped
        self.expected: dict[str, int] = {}  # dataset -> rows the set brings
        self.run_name = ""
        self.started = datetime.now(UTC)  # the Glue job runs and gate queries since are the smoke's

    def run(self) -> list[Step]:
        """Every step in order; raises SmokeFailed naming the first that failed (after cleaning up)."""
        try:
            for name, step in (
                ("drop", self.drop),
                ("verdicts", self.verdicts),
                ("run", self.pipeline),
                ("ledger", self.processed),
                ("tables", self.tables),
                ("query", self.query),
                ("costs", self.costs),
                ("api", self.api),
                *((("rollback", self.rollback),) if self.engine == "spark" else ()),
            ):
                self._step(name, step)
        finally:
            self._step("cleanup", self.cleanup, after_failure=any(not s.ok for s in self.steps))
        return self.steps

    def _step(self, name: str, step: Callable[[], str], *, after_failure: bool = False) -> None:
        start = time.monotonic()
        try:
            detail, ok = step(), True
        except Exception as exc:  # every failure is reported as the step's, with its reason
            detail, ok = f"{type(exc).__name__}: {exc}" if not isinstance(exc, LakehouseError) else str(exc), False
        self.steps.append(Step(name, time.monotonic() - start, ok, detail))
        self.report(self.steps[-1])
        if not ok and not after_failure:
            raise SmokeFailed(f"smoke step {name} failed: {detail}")

    # -- the steps --------------------------------------------------------------------------------
    def drop(self) -> str:
        from lakehouse.generate import generate
        from lakehouse.ops import drop_files

        folder = Path(tempfile.mkdtemp(prefix="lakehouse-smoke-"))
        manifest = generate(folder, orders=self.orders, anomaly_rate=0, seed=7, prefix=self.tag)
        datasets = manifest["datasets"]
        self.expected = {name: d["clean_rows"] for name, d in datasets.items()}
        self.files = drop_files(self.settings, self.stage, [(folder / d["file"], n) for n, d in datasets.items()])
        return f"{len(self.files)} files, {sum(self.expected.values())} rows, ids starting {self.tag}"

    def verdicts(self) -> str:
        from lakehouse.ops import wait_for

        done = wait_for(self.ledger, self.files, timeout=300)
        wrong = {r.key: f"{r.status} {r.reason or ''}".strip() for r in done.values() if r.status != Status.VALID}
        if wrong:
            raise LakehouseError(f"not VALID: {wrong}")
        return f"{len(done)} VALID"

    def pipeline(self) -> str:
        from chalicelib.ledger import now_iso

        since = now_iso()
        if self.local:
            from lakehouse.ops import run_pipeline

            executions = run_pipeline(self.settings, self.stage, engine=self.engine)
            if not executions or executions[-1]["status"] != "SUCCEEDED":
                last = executions[-1] if executions else {}
                raise LakehouseError(f"execution {last.get('name')} {last.get('status')}: {last.get('error')}")
            self.run_name = executions[-1]["name"]
            ran = f"{len(executions)} execution(s), the last {self.run_name} SUCCEEDED"
        else:
            ran = self._aws_run()
        return f"{ran}; {self._engines(since)}"

    def _engines(self, since: str) -> str:
        """The engine each dataset's batch ran on, from the plans of the runs since `since`; with an engine given,
        a batch on another fails the step (the plan says why it went there)."""
        plans = [run.plan for run in self.ledger.runs(20) if run.plan and run.started_at >= since]
        engines = {dataset: why for plan in plans for dataset, why in plan.get("engines", {}).items()}
        wrong = {d: why for d, why in engines.items() if self.engine and not why.startswith(self.engine)}
        if wrong:
            raise LakehouseError(f"asked for every batch on {self.engine}, but the plan put {wrong}")
        return "engines: " + (", ".join(f"{d} {why.split(' ', 1)[0]}" for d, why in sorted(engines.items())) or "-")

    def _aws_run(self, pipeline: Any = None, poll: float = 10.0) -> str:
        """Start runs (as `lakehouse run` does) until no smoke file waits and no run is in flight, then judge the
        runs that started since: a processed file records its batch, not its run."""
        runs = self._aws_runs(self.files, pipeline, poll)
        for run in runs:
            if run.status != "SUCCEEDED":
                raise LakehouseError(f"run {run.name} {run.status}: {run.error or ''} {run.cause or ''}".strip())
        self.run_name = runs[0].name  # the newest
        return f"run(s) {', '.join(r.name for r in reversed(runs))} SUCCEEDED"

    def _aws_runs(self, files: list[str], pipeline: Any, poll: float) -> list[Run]:
        """Start runs until none of `files` waits and no run is in flight; the runs since, newest first."""
        from chalicelib.ledger import now_iso
        from chalicelib.pipeline.batcher import Pipeline

        pipeline = pipeline or Pipeline.on_aws(self.settings, self.stage, self.ledger)
        since, deadline = now_iso(), time.monotonic() + RUN_TIMEOUT
        while time.monotonic() < deadline:
            waiting = [r for r in self.ledger.get_many(files) if r.status == Status.VALID]
            if not waiting and self.ledger.active_run() is None:
                break
            pipeline.tick(force=True, engine=self.engine)  # starts a run when none is in flight; else reports it
            time.sleep(poll)
        else:
            raise LakehouseError(f"the smoke files were not processed within {RUN_TIMEOUT:.0f} s")
        runs = [r for r in self.ledger.runs(20) if r.started_at >= since]
        if not runs:
            raise LakehouseError("no run took the smoke files")
        return runs

    def rollback(self, pipeline: Any = None, poll: float = 10.0) -> str:
        """`--engine spark`: write-audit-publish on the Spark jobs. Orders whose totals break the range rule (an
        error; the ETL itself only refuses negatives) pass validation and are merged; the gate must then fail the
        run, the rollback job take the batch back out of processed/orders, and its file end FAILED."""
        from lakehouse.ops import drop_files, wait_for

        tag = f"{self.tag}GATE-"  # under the smoke's tag: the cleanup finds these rows and files too
        files = drop_files(self.settings, self.stage, [(self._orders_over_the_range(tag), "orders")])
        self.files += files
        (record,) = wait_for(self.ledger, files, timeout=300).values()
        if record.status != Status.VALID:
            raise LakehouseError(f"the gate-failure file was {record.status}, not VALID: {record.reason}")
        if self.local:
            from lakehouse.ops import run_pipeline

            last = run_pipeline(self.settings, self.stage, engine=self.engine)[-1]
            return self._judge_rollback(files, tag, last["name"], last["status"], str(last.get("error")))
        run = self._aws_runs(files, pipeline, poll)[0]
        return self._judge_rollback(files, tag, run.name, run.status, str(run.error))

    def _judge_rollback(self, files: list[str], tag: str, name: str, status: str, error: str) -> str:
        if status != "FAILED" or error != "QualityCheckFailed":
            raise LakehouseError(f"run {name} {status} ({error}): the quality gate should have failed it")
        (after,) = self.ledger.get_many(files)
        if after.status != Status.FAILED:
            raise LakehouseError(f"run {name} failed the gate, but its file is {after.status}, not rolled back")
        left = self._tagged_rows("orders", "order_id", tag)
        if left:
            raise LakehouseError(f"run {name} failed the gate, but {left} of its orders are still in processed/")
        return f"run {name} failed the gate (QualityCheckFailed), its orders batch rolled back: file FAILED, 0 rows"

    def _orders_over_the_range(self, tag: str) -> Path:
        """A generated orders file whose totals exceed the range rule's max (config: orders.toml)."""
        import csv

        from lakehouse.generate import generate

        folder = Path(tempfile.mkdtemp(prefix="lakehouse-smoke-gate-"))
        manifest = generate(folder, orders=5, anomaly_rate=0, seed=11, prefix=tag)
        source, target = folder / manifest["datasets"]["orders"]["file"], folder / "smoke-gate-failure.csv"
        with source.open(newline="") as f:
            rows = list(csv.DictReader(f))
        with target.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows({**row, "total_amount": "2000000.00"} for row in rows)
        return target

    def _tagged_rows(self, dataset: str, key: str, tag: str) -> int:
        from lakehouse_etl.lake import Lake
        from lakehouse_etl.local_sql import duckdb_connection

        con = duckdb_connection(Lake.for_stage(self.settings, self.stage))
        return int(con.execute(f"SELECT count(*) FROM processed_{dataset} WHERE {key} LIKE '{tag}%'").fetchone()[0])

    def processed(self) -> str:
        records = self.ledger.get_many(self.files)
        left = {r.key: str(r.status) for r in records if r.status != Status.PROCESSED}
        if left or len(records) != len(self.files):
            raise LakehouseError(f"not PROCESSED: {left or 'records missing'}")
        return f"{len(records)} PROCESSED, archived: {sum(bool(r.archived_key) for r in records)}"

    def _count(self, sql_of: Callable[[str, str], str], run: Callable[[str], Any]) -> dict[str, int]:
        """Rows with the tag per processed table, by `run(sql)` of each dataset's counting query."""
        counts = {}
        for dataset in dataset_order(self.settings):
            key = self.settings.datasets[dataset].primary_key[0]
            counts[dataset] = int(run(sql_of(dataset, key)))
        return counts

    def tables(self) -> str:
        """Each processed/ Delta table holds the set's rows (read from the Delta log by DuckDB, not through SQL
        tables the catalog serves)."""
        from lakehouse_etl.lake import Lake
        from lakehouse_etl.local_sql import duckdb_connection

        con = duckdb_connection(Lake.for_stage(self.settings, self.stage))
        counts = self._count(
            lambda d, key: f"SELECT count(*) FROM processed_{d} WHERE {key} LIKE '{self.tag}%'",
            lambda sql: con.execute(sql).fetchone()[0],
        )
        if counts != self.expected:
            raise LakehouseError(f"rows by table {counts}, expected {self.expected}")
        return ", ".join(f"{d} {n}" for d, n in counts.items())

    def query(self) -> str:
        """One query through the stage's SQL engine (Athena on AWS, DuckDB here), as `lakehouse query` runs it."""
        from lakehouse.query import on_athena, on_duckdb

        sql = f"SELECT count(*) AS n FROM processed_orders WHERE order_id LIKE '{self.tag}%'"
        result = (
            on_duckdb(self.settings, self.stage, sql) if self.local else on_athena(self.settings, self.stage, sql, 300)
        )
        rows = int(result.rows[0][0])
        if rows != self.expected["orders"]:
            raise LakehouseError(f"{sql}: {rows}, expected {self.expected['orders']}")
        return f"processed_orders: {rows} rows, {result.bytes_scanned:,} bytes scanned"

    def costs(self) -> str:
        """Each Glue job run's time and DPU-seconds beside `lakehouse cost`'s assumption, and the bytes each quality
        gate query scanned against its table's size (lakehouse.smoke_costs); only an account reports them."""
        if self.local:
            return "not available on this stage: its Glue jobs run as local processes and DuckDB reports no bytes"
        from chalicelib.aws import ClientSettings, client
        from chalicelib.stage.declared import glue_jobs
        from lakehouse.smoke_costs import gate_scans, glue_job_runs

        config = ClientSettings.for_stage(self.stage)
        jobs = {name: job.spark for name, job in glue_jobs(self.settings, self.stage).items()}
        lines = glue_job_runs(client("glue", config), jobs, self.started)
        lines += gate_scans(client("athena", config), self.stage.athena_workgroup, self.started, self._table_bytes)
        return "; ".join(lines) or "no Glue job run or gate query since the smoke began"

    def _table_bytes(self, table: str) -> int | None:
        """The bytes of a processed_<dataset> table's current Delta files (None for another table)."""
        from lakehouse_etl import delta
        from lakehouse_etl.lake import Lake

        dataset = table.removeprefix("processed_")
        if dataset == table or dataset not in self.settings.datasets:
            return None
        lake = Lake.for_stage(self.settings, self.stage)
        opened = delta.open_table(lake.processed(dataset), lake.storage_options)
        if opened is None:
            return None
        return int(sum(opened.get_add_actions(flatten=True).column("size_bytes").to_pylist()))

    def api(self) -> str:
        """GET /status answers, and shows the smoke run."""
        status, body = self._get_status()
        if status != 200:
            raise LakehouseError(f"GET /status answered {status}: {body[:300]}")
        runs = {r["run"]: r["status"] for r in json.loads(body)["runs"]}
        if runs.get(self.run_name) != "SUCCEEDED":
            raise LakehouseError(f"GET /status does not show {self.run_name} SUCCEEDED: {runs}")
        return f"200, {self.run_name} SUCCEEDED"

    def _get_status(self) -> tuple[int, str]:
        if self.local:
            from chalice.test import Client

            import app
            from chalicelib import runtime

            runtime.reset()
            with (
                warnings.catch_warnings(),  # Chalice warns that it cannot check IAM locally: the local stage uses none
                Client(app.app, stage_name=self.stage.name, project_dir=str(localstage.PROJECT_DIR)) as client,
            ):
                warnings.filterwarnings("ignore", "IAMAuthorizer is not a supported in local mode")
                response = client.http.get("/status")
                return response.status_code, response.body.decode()
        return deployed_get(self.stage, "/status")

    def cleanup(self) -> str:
        """Delete the set's rows from processed/ and rebuild curated/ from what is left (one master merge job run under
        the run lock: a Glue job run on a deployed stage), the dropped files (every version, in raw/ and archive/) and
        their ledger records."""
        if not self.files:
            return "nothing was dropped"
        deleted = self._delete_rows()
        records = self.ledger.get_many(self.files)
        done = [r for r in records if r.status != Status.VALID]  # one still waiting for a run keeps its object
        keys = [r.key for r in done] + [r.archived_key for r in done if r.archived_key]
        objects = self._delete_objects(keys)
        forgotten = sum(self.ledger.forget(r.file_id) for r in done)
        left = f"; {len(records) - len(done)} files still wait for a run (kept)" if len(done) < len(records) else ""
        rebuilt = "; curated/ rebuilt" if self.run_name else ""
        return f"{deleted} rows, {objects} object versions, {forgotten} ledger records{rebuilt}{left}"

    def _delete_rows(self) -> str:
        """The master merge job with `--forget <tag>`, and `--rebuild` when a run merged the set (curated/ was
        published with it)."""
        from chalicelib.names import job_name
        from lakehouse.jobs import run_jobs

        arguments = {"--forget": self.tag, **({"--rebuild": "yes"} if self.run_name else {})}
        job = job_name(self.stage, "master_merge.py")
        ((run, report),) = run_jobs(self.settings, self.stage, "smoke cleanup", [(job, arguments)], local=self.local)
        if report is None:  # a Glue job run: its report is in its log
            return f"the rows (Glue job run {run.run_id})"
        return f"{sum(r.get('forgotten', 0) for r in report)} rows"

    def _delete_objects(self, keys: list[str]) -> int:
        from chalicelib.aws import ClientSettings, client

        s3, count = client("s3", ClientSettings.for_stage(self.stage)), 0
        for key in keys:
            versions = s3.list_object_versions(Bucket=self.stage.bucket, Prefix=key)
            doomed: list[ObjectIdentifierTypeDef] = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in versions.get("Versions", []) + versions.get("DeleteMarkers", [])
                if v["Key"] == key
            ]
            if doomed:
                s3.delete_objects(Bucket=self.stage.bucket, Delete={"Objects": doomed, "Quiet": True})
                count += len(doomed)
        return count


def deployed_get(stage: Stage, path: str) -> tuple[int, str]:
    """GET `path` of the stage's deployed API (its URL from Chalice's record), signed as the stage's
    LAKEHOUSE_API_AUTH asks: SigV4 for iam, and the API key too for iam+api_key."""
    import urllib.error
    import urllib.request

    import boto3
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    from chalicelib.names import api_key_name
    from deploy.chalice_project import chalice_stage_env, deployed_api_url

    url = deployed_api_url(stage.name)
    if url is None:
        raise LakehouseError(f"no API deployed for stage {stage.name}: chalice deploy --stage {stage.name}")
    url = url.rstrip("/") + path
    headers: dict[str, str] = {}
    auth = chalice_stage_env(stage.name).get("LAKEHOUSE_API_AUTH", "iam")
    session = boto3.Session(region_name=stage.region)
    if auth in ("iam", "iam+api_key"):
        request = AWSRequest(method="GET", url=url)
        credentials = session.get_credentials()
        if credentials is None:
            raise LakehouseError(f"no AWS credentials to sign the request to {url} with (the stage's API uses IAM)")
        SigV4Auth(credentials, "execute-api", stage.region).add_auth(request)
        headers = dict(request.headers)
    if auth == "iam+api_key":
        keys = session.client("apigateway").get_api_keys(nameQuery=api_key_name(stage), includeValues=True)
        headers["x-api-key"] = keys["items"][0]["value"]
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
