"""The pipeline end to end on moto server: the deployed state machine JSON run by the local executor, with the
Chalice handlers as its Lambdas, the glue_scripts as local processes, the local crawler and SNS."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from dataclasses import replace

import pytest
from lakehouse_etl import delta

from chalicelib import runtime
from chalicelib.aws import Clients, client
from chalicelib.ingest.events import ObjectRef
from chalicelib.ingest.ingestor import Ingestor
from chalicelib.ledger import Status
from chalicelib.names import RUN_SCRIPT, job_name, run_job, spark_job
from lakehouse.generate import generate
from lakehouse.jobs import rejected_rows_by_reason
from lakehouse.orchestration import GLUE_JOB_SYNC, START_CRAWLER, LocalServices, local_pipeline
from lakehouse.rejected import rejected_rows
from lakehouse.stepfunctions import TaskError

pytestmark = pytest.mark.e2e
DATASETS = ("orders", "order_items", "products")  # a foreign key, and an independent dataset


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sample")
    return folder, generate(folder, orders=150, anomaly_rate=0.04, seed=5)


@pytest.fixture
def lake(lake_job, sample, tmp_path):
    """A provisioned stage with the sample's orders, order_items and products accepted by the validator."""
    runtime.reset()
    accept_sample(lake_job, sample)
    yield lake_job, tmp_path
    runtime.reset()


def accept_sample(job, sample):
    folder, manifest = sample
    ingestor = Ingestor(job.settings, job.stage, job.s3, client("sqs"), job.ledger)
    for dataset in DATASETS:
        name = manifest["datasets"][dataset]["file"]
        key = f"raw/{dataset}/day=1/{name}"
        version = job.s3.put_object(Bucket=job.stage.bucket, Key=key, Body=(folder / name).read_bytes())
        record = ingestor.ingest(ObjectRef(job.stage.bucket, key, version["VersionId"]))
        assert record.status == Status.VALID, record


def per_dataset(job):
    """Plan every run with a Glue job per dataset, whatever its size (the path of big runs)."""
    pipeline = replace(job.settings.pipeline, single_job_bytes=1)
    job.settings = replace(job.settings, pipeline=pipeline)


MODES = pytest.mark.parametrize("mode", ["single", "per_dataset"])


def in_mode(lake, mode):
    if mode == "per_dataset":
        per_dataset(lake[0])
    return lake[0]


def run_once(lake, fail_jobs=None, wrap=None):
    job, tmp = lake
    with local_pipeline(job.settings, job.stage, tmp / "executions", fail_jobs) as (pipeline, orchestrator):
        if wrap:
            orchestrator.executor.dispatch = wrap(orchestrator.executor.dispatch)
        tick = pipeline.tick(force=True)
        return tick, orchestrator


def files(job):
    return {r.dataset: r for r in job.ledger.files()}


def table_rows(job, dataset):
    table = delta.open_table(job.lake.processed(dataset), job.lake.storage_options)
    return (
        None
        if table is None
        else (table.version(), delta.read(job.lake.processed(dataset), job.lake.storage_options).num_rows)
    )


def entered(record, state):
    """Whether the execution entered `state` (a state in a branch or map is labelled with its path)."""
    return any(e["event"] == "StateEntered" and e["state"].split(".")[-1] == state for e in record["history"])


def emf_metrics(record) -> dict[str, float]:
    """The CloudWatch metrics the Lambda steps wrote (EMF lines in their logs)."""
    out = {}
    for line in record["lambda_logs"]:
        if line.startswith('{"_aws"'):
            doc = json.loads(line)
            for metric in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                out[metric["Name"]] = out.get(metric["Name"], 0) + sum(doc[metric["Name"]])
    return out


@MODES
def test_a_run_processes_catalogues_archives_and_notifies(lake, sample, mode):
    job = in_mode(lake, mode)
    tick, orchestrator = run_once(lake)
    (record,) = orchestrator.finished
    assert (tick.action, record["status"]) == ("started", "SUCCEEDED"), record.get("cause")
    assert record["input"]["mode"] == mode
    if mode == "single":  # a small run: one Glue job run merges, audits and publishes it all
        assert [r["JobName"] for r in record["glue_runs"]] == [run_job(job.stage)]
        assert entered(record, "RunWholeBatch") and not entered(record, "PublishCurated")
    else:  # one Glue job run per dataset plus the master merge
        assert sorted(r["JobName"] for r in record["glue_runs"]) == sorted(
            [job_name(job.stage, f"process_{d}.py") for d in DATASETS] + [job_name(job.stage, "master_merge.py")]
        )
        sized = {(r.get("WorkerType"), r.get("NumberOfWorkers")) for r in record["glue_runs"]}
        assert sized == {("G.1X", 2)}  # each job, the master merge too, started on the workers its plan names
    for name in ("daily_sales_by_category", "customer_summary"):
        assert delta.open_table(job.lake.curated(name), job.lake.storage_options) is not None
    for dataset, f in files(job).items():
        clean = sample[1]["datasets"][dataset]["clean_rows"]
        assert (f.status, f.rows_merged) == (Status.PROCESSED, clean)
        assert f.archived_key == f.key.replace("raw/", "archive/", 1)
        assert job.s3.head_object(Bucket=f.bucket, Key=f.archived_key)["ContentLength"] == f.size
        # hidden from raw/ by a delete marker, never lost: the validated version is still there
        assert job.s3.list_objects_v2(Bucket=f.bucket, Prefix=f.key)["KeyCount"] == 0
        assert job.s3.head_object(Bucket=f.bucket, Key=f.key, VersionId=f.version_id)["ContentLength"] == f.size
    glue = runtime.current().client("glue")
    tables = {t["Name"]: t for t in glue.get_tables(DatabaseName=job.stage.glue_database)["TableList"]}
    assert tables["raw_orders"]["Parameters"]["classification"] == "csv"
    assert tables["raw_orders"]["Parameters"]["projection.enabled"] == "true"  # RefreshTables' own definition
    assert "order_id" in [c["Name"] for c in tables["raw_orders"]["StorageDescriptor"]["Columns"]]
    assert tables["raw_products"]["Parameters"]["classification"] == "json"
    assert tables["processed_orders"]["Parameters"]["table_type"] == "DELTA"
    assert tables["curated_daily_sales_by_category"]["StorageDescriptor"]["Location"].endswith(
        "/curated/daily_sales_by_category/"
    )
    ((notice),) = record["published"]
    assert notice["TopicArn"].endswith(":lakehouse-local-notifications")
    assert json.loads(notice["Message"])["files"] == 3
    assert job.ledger.get_run(tick.run).status == "SUCCEEDED" and job.ledger.active_run() is None
    metrics = emf_metrics(record)
    assert (metrics["PipelineRunsSucceeded"], metrics["FilesArchived"]) == (1, 3)
    # the quality report names every planted anomaly with the exact count the generator planted
    failed_checks = 0
    for dataset in DATASETS:
        ((result),) = job.ledger.quality_history(dataset)
        planted = sample[1]["datasets"][dataset]
        assert result["etl"]["rejected_by_reason"] == planted["rejected_by_reason"], dataset
        assert result["etl"]["duplicates_dropped"] == planted["duplicates"], dataset
        failed = {c["rule"]: c["observed"] for c in result["checks"] if not c["passed"]}
        assert failed == planted["rule_failures"], dataset
        assert result["status"] == ("WARN" if failed else "PASSED")  # the planted rule anomalies are warnings
        failed_checks += len(failed)
    assert sample[1]["datasets"]["orders"]["rule_failures"]["accepted_values(status)"] > 0
    assert metrics["QualityChecksFailed"] == failed_checks


@MODES
def test_a_glue_job_that_fails_once_is_retried(lake, mode):
    job = in_mode(lake, mode)
    orders_job = job_name(job.stage, "process_orders.py")
    _, orchestrator = run_once(lake, fail_jobs={orders_job: 1})
    (record,) = orchestrator.finished
    assert record["status"] == "SUCCEEDED"
    retries = [e for e in record["history"] if e["event"] == "TaskRetry"]
    assert [(e["error"], e["attempt"]) for e in retries] == [("States.TaskFailed", 1)]
    retried = orders_job if mode == "per_dataset" else run_job(job.stage)
    assert [r["JobRunState"] for r in record["glue_runs"] if r["JobName"] == retried] == ["FAILED", "SUCCEEDED"]
    assert {f.status for f in files(job).values()} == {Status.PROCESSED}


@MODES
def test_a_glue_job_that_keeps_failing_fails_its_files_alerts_and_spares_the_others(lake, sample, mode):
    job = in_mode(lake, mode)
    orders_job = job_name(job.stage, "process_orders.py")
    # as if an attempt had written the batch's rejected rows and then failed in the MERGE
    leftover = job.settings.zones.rejected_rows("orders", 1)
    job.s3.put_object(Bucket=job.stage.bucket, Key=leftover, Body=b"rows of a failed attempt")
    tick, orchestrator = run_once(lake, fail_jobs={orders_job: 99})
    (record,) = orchestrator.finished
    assert record["status"] == "FAILED"
    assert record["failed_state"].endswith("RunJob" if mode == "per_dataset" else "RunWholeBatch")
    state = files(job)
    # the dataset's own error: the job run's state, or the exception its step raised in the job of the whole run
    error = "States.TaskFailed" if mode == "per_dataset" else "PipelineError"
    assert (state["orders"].status, state["orders"].reason_code) == (Status.FAILED, error)
    assert "forced failure" in state["orders"].reason
    assert (state["order_items"].status, state["order_items"].reason_code) == (Status.FAILED, "NotRun")
    # products ran in the same level as orders: merged, and its table is whole
    assert state["products"].status == Status.PROCESSED
    assert table_rows(job, "products")[1] == sample[1]["datasets"]["products"]["clean_rows"]
    assert state["products"].archived_key and not state["orders"].archived_key  # merged files are archived
    assert table_rows(job, "orders") is None and not entered(record, "PublishCurated")
    ((alert),) = record["published"]
    assert alert["TopicArn"].endswith(":lakehouse-local-alerts") and "FAILED" in alert["Subject"]
    assert "forced failure" in alert["Message"]
    run = job.ledger.get_run(tick.run)
    assert (run.status, run.error) == ("FAILED", "DatasetJobFailed")
    metrics = emf_metrics(record)
    assert (metrics["PipelineRunsFailed"], metrics["FilesFailed"]) == (1, 2)

    # nothing was lost: once the cause is gone, requeued files go through the next run
    for f in (state["orders"], state["order_items"]):
        assert job.ledger.requeue(f.file_id)
    assert job.s3.list_objects_v2(Bucket=job.stage.bucket, Prefix=leftover)["KeyCount"] == 0
    tick2, orchestrator2 = run_once(lake)
    assert orchestrator2.finished[0]["status"] == "SUCCEEDED" and tick2.run != tick.run
    assert {f.status for f in files(job).values()} == {Status.PROCESSED}
    assert table_rows(job, "orders")[1] == sample[1]["datasets"]["orders"]["clean_rows"]
    # every rejected row once: the failed batch left no copy of its own
    rejected = rejected_rows_by_reason(job.s3, job.settings, job.stage)
    for dataset in DATASETS:
        assert dict(rejected.get(dataset, {})) == sample[1]["datasets"][dataset]["rejected_by_reason"]


@MODES
def test_a_quality_error_stops_the_run_before_curated_rolls_back_and_alerts(lake, sample, mode):
    job = in_mode(lake, mode)
    shipped = job.s3.get_object(Bucket=job.stage.bucket, Key="config/lakehouse.toml")["Body"].read().decode()
    strict = shipped.replace("max_rejected_percent = 10", "max_rejected_percent = 1")
    job.s3.put_object(Bucket=job.stage.bucket, Key="config/lakehouse.toml", Body=strict.encode())
    runtime.reset()  # the Lambdas read the configuration published in the bucket
    tick, orchestrator = run_once(lake)
    (record,) = orchestrator.finished
    assert (record["status"], record["error"], record["failed_state"]) == (
        "FAILED",
        "QualityCheckFailed",
        "QualityGate",
    )
    assert not entered(record, "PublishCurated")
    assert delta.open_table(job.lake.curated("daily_sales_by_category"), job.lake.storage_options) is None
    ((alert),) = record["published"]
    assert "QualityCheckFailed" in alert["Message"] and "rejected_rows: " in alert["Message"]
    assert job.ledger.get_run(tick.run).error == "QualityCheckFailed"
    # write-audit-publish: the failing batches were taken back out of processed/, their files are FAILED
    planted = sample[1]["datasets"]
    rejected = {d: sum(planted[d]["rejected_by_reason"].values()) for d in DATASETS}
    failing = {d for d in DATASETS if 100 * rejected[d] / (rejected[d] + planted[d]["clean_rows"]) > 1}
    assert failing and failing < set(DATASETS)  # this sample: some datasets fail the gate, some pass
    assert failing == {d for d in DATASETS if job.ledger.quality_history(d)[0]["status"] == "ERROR"}
    assert all(f"ERROR {d} rejected_rows" in record["cause"] for d in failing)
    rolled_back = [r for r in record["glue_runs"] if "--rollback" in r["Arguments"]]
    assert sorted(r["JobName"] for r in rolled_back) == sorted(job_name(job.stage, f"process_{d}.py") for d in failing)
    for dataset, f in files(job).items():
        if dataset in failing:
            assert (f.status, f.reason_code, f.run) == (Status.FAILED, "QualityCheckFailed", tick.run), dataset
            assert table_rows(job, dataset) == (2, 0)  # 0 created, 1 the batch, 2 restored to 0
        else:  # passed its audit: stays in processed/, published by the next curated rebuild
            assert f.status == Status.PROCESSED and table_rows(job, dataset)[1] == planted[dataset]["clean_rows"]
    # the rolled-back batches' rejected rows stay readable, marked, and the cause ends with the command listing them
    assert record["cause"].endswith(f"lakehouse rejected --run {tick.run}")
    listed = rejected_rows(job.s3, job.settings, job.stage, job.ledger, run=tick.run, limit=10**6)
    assert {d: sum(r["dataset"] == d for r in listed) for d in DATASETS} == rejected
    assert {r["dataset"] for r in listed if r["rolled_back"]} == failing
    # nothing is lost: with the threshold back, the requeued files go through, each rejected row once
    job.s3.put_object(Bucket=job.stage.bucket, Key="config/lakehouse.toml", Body=shipped.encode())
    runtime.reset()
    for dataset in failing:
        assert job.ledger.requeue(files(job)[dataset].file_id)
    _, again = run_once(lake)
    assert again.finished[0]["status"] == "SUCCEEDED"
    rejected = rejected_rows_by_reason(job.s3, job.settings, job.stage)
    for dataset in DATASETS:
        assert table_rows(job, dataset)[1] == sample[1]["datasets"][dataset]["clean_rows"]
        assert dict(rejected.get(dataset, {})) == sample[1]["datasets"][dataset]["rejected_by_reason"]


def test_a_scan_athena_refuses_stops_the_run_before_curated_rolls_back_and_alerts(lake, monkeypatch):
    """Issue 27, defect 2: a scan refused with a ClientError (Athena's InvalidRequestException for a query past its
    length) crashed the gate's Lambda; the run failed with its batches merged and unaudited, and a later master merge
    published them. Now it is a failed scan: the run stops before curated/, the batches are rolled back, and the
    alert says why."""
    from botocore.exceptions import ClientError
    from lakehouse_etl.local_sql import DuckDBEngine

    job = in_mode(lake, "per_dataset")  # the gate as its own Lambda step, in this process
    run_sql = DuckDBEngine.run

    def refuse_scans(self, sql, timeout=300.0):
        if 'FROM processed_orders WHERE "' in sql:  # the orders batch's scan (only it selects from the table so)
            error = {"Code": "InvalidRequestException", "Message": "queryString: Member must have length <= 262144"}
            raise ClientError({"Error": error}, "StartQueryExecution")
        return run_sql(self, sql, timeout)

    monkeypatch.setattr(DuckDBEngine, "run", refuse_scans)
    tick, orchestrator = run_once(lake)
    (record,) = orchestrator.finished
    assert (record["status"], record["error"], record["failed_state"]) == (
        "FAILED",
        "QualityCheckFailed",
        "QualityGate",
    )
    assert not entered(record, "PublishCurated") and job.ledger.get_run(tick.run).error == "QualityCheckFailed"
    assert delta.open_table(job.lake.curated("daily_sales_by_category"), job.lake.storage_options) is None
    ((alert),) = record["published"]
    assert "ERROR orders scan: the quality query was refused: InvalidRequestException" in alert["Message"]
    assert [r["JobName"] for r in record["glue_runs"] if "--rollback" in r["Arguments"]] == [
        job_name(job.stage, "process_orders.py")
    ]
    assert table_rows(job, "orders") == (2, 0)  # 0 created, 1 the batch, 2 restored: nothing unaudited stays
    assert files(job)["orders"].status == Status.FAILED and files(job)["products"].status == Status.PROCESSED


def test_the_job_of_a_whole_run_run_again_changes_nothing(lake):
    """Step Functions retries a failed job run, and a job can die after any commit: run again, the job that runs a
    run whole skips the committed batches, reuses the gate's results and finds curated/ up to date."""
    from lakehouse.jobs import run_script

    job, _ = lake
    tick, orchestrator = run_once(lake)
    assert orchestrator.finished[0]["status"] == "SUCCEEDED"
    curated_tables = ("daily_sales_by_category", "product_performance", "customer_summary")

    def versions():
        tables = {d: table_rows(job, d) for d in DATASETS}
        for name in curated_tables:
            tables[name] = delta.open_table(job.lake.curated(name), job.lake.storage_options).version()
        return tables

    before, results = versions(), {d: job.ledger.quality_history(d) for d in DATASETS}
    (report,) = run_script(RUN_SCRIPT, job.stage, ["--run", tick.run])
    assert (report["run"], report["batches"], report["quality"]) == (tick.run, [], "WARN")
    assert {c["table"]: c["mode"] for c in report["curated"] if c["table"] in curated_tables} == dict.fromkeys(
        curated_tables, "unchanged"
    )
    assert versions() == before and {d: job.ledger.quality_history(d) for d in DATASETS} == results


def _throttling(times):
    from botocore.awsrequest import AWSResponse

    class Raw:
        def stream(self, **_):
            yield b'{"__type": "ThrottlingException", "message": "Rate exceeded"}'

    left = {"n": times}

    def handler(request, **_):
        if left["n"] > 0:
            left["n"] -= 1
            return AWSResponse(request.url, 400, {"x-amzn-errortype": "ThrottlingException"}, Raw())
        return None

    return handler, left


def test_throttling_is_absorbed_by_botocore_and_then_by_the_state_machine_retry(lake):

    job, _ = lake

    handler, left = _throttling(2)  # the SDK's retry mode absorbs these
    glue_clients = Clients.for_stage(job.stage).glue
    glue_clients.meta.events.register("before-send.glue.GetCrawler", handler)
    asl_throttles = {"n": 1}  # ... and a throttle that outlived the SDK's attempts reaches the ASL Retry

    def wrap(dispatch):
        def throttled(resource, params):
            if resource == START_CRAWLER and asl_throttles["n"]:
                asl_throttles["n"] -= 1
                raise TaskError("Glue.ThrottlingException", "Rate exceeded")
            return dispatch(resource, params)

        return throttled

    try:
        _, orchestrator = run_once(lake, wrap=wrap)
    finally:
        glue_clients.meta.events.unregister("before-send.glue.GetCrawler", handler)
    (record,) = orchestrator.finished
    assert record["status"] == "SUCCEEDED"
    assert left["n"] == 0 and asl_throttles["n"] == 0
    assert [e["error"] for e in record["history"] if e["event"] == "TaskRetry"] == ["Glue.ThrottlingException"]


@pytest.mark.parametrize(
    ("sized", "refused"),
    [
        ({"WorkerType": "G.1X"}, "set together"),
        ({"NumberOfWorkers": 4}, "set together"),
        ({"WorkerType": "G.1X", "NumberOfWorkers": 1}, "2-299, not 1"),
        ({"WorkerType": "G.1X", "NumberOfWorkers": 300}, "2-299, not 300"),
        ({"WorkerType": "G.2X", "NumberOfWorkers": 150}, "2-149, not 150"),
        ({"WorkerType": "G.1X", "NumberOfWorkers": "4"}, "not '4'"),
        ({"WorkerType": "Z.9X", "NumberOfWorkers": 2}, "WorkerType 'Z.9X'"),
    ],
)
def test_a_job_run_on_workers_glue_would_refuse_fails_as_on_glue(lake, sized, refused):
    """StartJobRun's WorkerType and NumberOfWorkers go together, within the type's range (299 G.1X, 149 G.2X):
    the local stage refuses what Glue refuses, before the job runs."""
    job, _ = lake
    services = LocalServices(job.settings, job.stage, clients=None, invoke=None, app_name="lakehouse")
    with pytest.raises(TaskError, match=refused) as caught:
        services(GLUE_JOB_SYNC, {"JobName": job_name(job.stage, RUN_SCRIPT), **sized})
    assert caught.value.error == "Glue.InvalidInputException" and services.glue_runs == []


def test_the_same_run_started_twice_runs_once(lake):
    job, _ = lake
    tick, orchestrator = run_once(lake)
    (record,) = orchestrator.finished
    with local_pipeline(job.settings, job.stage, lake[1] / "executions") as (pipeline, again):
        again.start(tick.run, record["input"])  # e.g. a retried StartExecution
        assert again.finished == [] and again.services.glue_runs == []
        assert pipeline.tick(force=True).action == "idle"


def test_an_interrupted_run_started_again_gives_the_same_result(lake, sample):
    job, tmp = lake
    per_dataset(job)
    merge_job = job_name(job.stage, "master_merge.py")

    def crash_before_curated(dispatch):
        def crashing(resource, params):
            if resource == GLUE_JOB_SYNC and params["JobName"] == merge_job:
                raise KeyboardInterrupt  # the process dies: not a Task failure the state machine sees
            return dispatch(resource, params)

        return crashing

    with pytest.raises(KeyboardInterrupt):
        run_once(lake, wrap=crash_before_curated)
    versions = {d: table_rows(job, d) for d in DATASETS}
    (stored,) = (tmp / "executions").glob("*.json")
    record = json.loads(stored.read_text())
    assert record["status"] == "RUNNING"
    # the process that ran it is gone: the next look at the ledger starts the same execution again
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stored.write_text(json.dumps({**record, "pid": int(dead.stdout)}))
    tick, orchestrator = run_once(lake)
    (again,) = orchestrator.finished
    assert (tick.run, again["status"], again["restarts"]) == (record["name"], "SUCCEEDED", 1)
    # the dataset jobs found their batches closed and changed nothing; curated/ was built this time
    assert {d: table_rows(job, d) for d in DATASETS} == versions
    for dataset in DATASETS:
        assert versions[dataset][1] == sample[1]["datasets"][dataset]["clean_rows"]
    assert delta.open_table(job.lake.curated("daily_sales_by_category"), job.lake.storage_options) is not None
    assert {f.status for f in files(job).values()} == {Status.PROCESSED}


def test_a_crawl_that_fails_fails_the_run_with_the_crawler_s_error(lake):

    job, _ = lake
    glue = Clients.for_stage(job.stage).glue
    name = "lakehouse-local-raw-products"  # CSV or JSON lines: catalogued by its crawler (orders: from its contract)
    crawler = glue.get_crawler(Name=name)["Crawler"]
    glue.delete_crawler(Name=name)  # moto has no UpdateCrawler
    glue.create_crawler(
        Name=name,
        Role=crawler["Role"],
        DatabaseName=crawler["DatabaseName"],
        Targets={"S3Targets": [{"Path": "s3://no-such-bucket-anywhere/raw/products/"}]},
    )
    tick, orchestrator = run_once(lake)
    (record,) = orchestrator.finished
    assert (record["status"], record["error"]) == ("FAILED", "CrawlerFailed")
    assert "NoSuchBucket" in record["cause"] and not entered(record, "PublishCurated")
    # the crawl failed in its branch, which AWS would let stop the Delta merges half-way: they all finished first
    assert entered(record, "CrawlFailed") and entered(record, "CrawlFailedAfterMerges")
    stopped = {e["state"] for e in record["history"] if e["event"] == "BranchStopped"}  # sibling crawls may be
    assert not any(s.startswith("CrawlAndProcess.1.") for s in stopped)  # the processing branch never is
    assert all(table_rows(job, d) for d in DATASETS)
    polls = Counter(
        e["state"].rsplit(".", 1)[0]
        for e in record["history"]
        if e["event"] == "StateEntered" and e["state"].endswith(".GetCrawler")
    )  # per crawler; the failed one's siblings may be stopped before their second poll, as on AWS
    assert max(polls.values()) >= 2  # RUNNING, then READY: the failed crawler's Wait/Choice loop went round
    ((alert),) = record["published"]
    assert "CrawlerFailed" in alert["Message"]
    assert job.ledger.get_run(tick.run).error == "CrawlerFailed"


def test_a_crawler_that_never_finishes_fails_the_run_after_its_polls(lake):
    from lakehouse.orchestration import GET_CRAWLER

    def stuck(dispatch):
        def always_running(resource, params):
            out = dispatch(resource, params)
            if resource == GET_CRAWLER:
                out = {"Crawler": {**out["Crawler"], "State": "RUNNING"}}
            return out

        return always_running

    _, orchestrator = run_once(lake, wrap=stuck)
    (record,) = orchestrator.finished
    assert (record["status"], record["error"]) == ("FAILED", "CrawlerTimedOut")
    assert "still running after 60 polls" in record["cause"]


def test_lakehouse_run_waits_for_a_run_in_flight_then_gives_up_clearly(lake, monkeypatch):
    import os

    from chalicelib.errors import LakehouseError
    from lakehouse import localstage, ops
    from lakehouse.orchestration import ExecutionStore

    job, tmp = lake
    run = job.ledger.begin_run()
    job.ledger.save_plan(run, {"run": run.name, "crawlers": [], "levels": []}, files=0, bytes_=0)
    # the local stage's schedule is running it, in a process that is alive (this one stands in for it)
    ExecutionStore(tmp / "executions").put(
        {"name": run.name, "status": "RUNNING", "pid": os.getpid(), "started_at": "2026-11-25T00:00:00Z"}
    )
    monkeypatch.setattr(localstage, "EXECUTIONS_DIR", tmp / "executions")
    monkeypatch.setattr(ops, "BUSY_WAIT_SECONDS", 0)
    monkeypatch.setattr(ops.time, "sleep", lambda s: None)
    with pytest.raises(LakehouseError, match=f"{run.name} has been running for over 0 minutes"):
        ops.run_pipeline(job.settings, job.stage)


def test_both_engines_give_the_same_quality_results_and_the_same_processed_and_curated_tables(
    lake, sample, moto_endpoint
):
    """The sample set with its planted anomalies, run once on one node and once on a fresh stage with every batch on
    Spark (Sail): the same quality results check by check (the gate judged inside the whole-run job on one, by its
    own Lambda step on the other), the same processed rows and the same curated tables."""
    from conftest import fresh_stage

    job, tmp = lake
    outcomes = {}
    for engine in ("single", "spark"):
        if engine == "spark":  # the same files on an empty stage
            fresh_stage(moto_endpoint, job.settings, job.stage)
            accept_sample(job, sample)
        with local_pipeline(job.settings, job.stage, tmp / engine) as (pipeline, orchestrator):
            pipeline.tick(force=True, engine=engine)
        (record,) = orchestrator.finished
        assert record["status"] == "SUCCEEDED", record.get("cause")
        ran = {r["JobName"] for r in record["glue_runs"]}
        assert ran == (
            {spark_job(job.stage, d) for d in DATASETS} | {job_name(job.stage, "master_merge.py")}
            if engine == "spark"
            else {run_job(job.stage)}
        ), ran
        outcomes[engine] = _outcome(job)
    assert outcomes["spark"] == outcomes["single"]


def _outcome(job):
    """What a run left, without what differs by nature (file ids, versions, times): each dataset's quality result,
    check by check, its processed rows, and every curated table."""
    from lakehouse_etl.curated import CURATED

    def rows(uri):
        table = delta.read(uri, job.lake.storage_options)
        kept = [c for c in table.column_names if c != "_source_file"]
        return sorted(table.select(kept).to_pylist(), key=repr)

    quality = {}
    for dataset in DATASETS:
        (result,) = job.ledger.quality_history(dataset, 1)
        checks = [(c["rule"], c["passed"], c["observed"], sorted(c["sample"])) for c in result["checks"]]
        quality[dataset] = (result["status"], result["rows"], result["rows_loaded"], checks)
    processed = {d: rows(job.lake.processed(d)) for d in DATASETS}
    curated = {name: rows(job.lake.curated(name)) for name in CURATED}
    return quality, processed, curated
