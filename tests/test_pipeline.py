"""The batcher and the pipeline's Lambda steps, on the in-memory ledger with a recording orchestrator."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.errors import PipelineError
from chalicelib.ledger import FileRecord, InMemoryLedger, Status
from chalicelib.pipeline.batcher import Pipeline, StepFunctions
from chalicelib.pipeline.steps import RunSteps, describe_error

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class Orchestrator:
    """Records starts; `states` says what `status` answers (a started run is RUNNING unless told)."""

    def __init__(self):
        self.started: list[tuple[str, dict]] = []
        self.states: dict[str, str | None] = {}

    def start(self, name, input_):
        self.started.append((name, input_))
        self.states.setdefault(name, "RUNNING")

    def status(self, name):
        return self.states.get(name)


@pytest.fixture
def ledger():
    return InMemoryLedger()


def accept(ledger, dataset, name, at, size=100, layout="csv; columns a,b; folders ingest_date=*"):
    record = FileRecord(
        file_id=f"lake/raw/{dataset}/{name}#v1",
        bucket="lake",
        key=f"raw/{dataset}/{name}",
        version_id="v1",
        dataset=dataset,
        received_at=at.isoformat(),
        size=size,
    )
    return ledger.finish(ledger.claim(record, now=at).record, Status.VALID, layout=layout)


def pipeline_at(settings, stage, ledger, orchestrator, now, alerts=None):
    alerts = [] if alerts is None else alerts
    return Pipeline(settings, stage, ledger, orchestrator, alert=lambda s, m: alerts.append((s, m)), now=lambda: now)


def test_files_wait_for_the_window_then_go_into_one_run(settings, stage, ledger):
    orchestrator = Orchestrator()
    for i in range(30):
        accept(ledger, "orders", f"o{i}.csv", T0 + timedelta(seconds=i))
    accept(ledger, "order_items", "i0.csv", T0 + timedelta(seconds=40))
    accept(ledger, "products", "p0.jsonl", T0 + timedelta(seconds=50))

    early = pipeline_at(settings, stage, ledger, orchestrator, T0 + timedelta(seconds=299)).tick()
    assert (early.action, orchestrator.started) == ("waiting", [])
    assert "32 files waiting" in early.detail

    due = pipeline_at(settings, stage, ledger, orchestrator, T0 + timedelta(seconds=300)).tick()
    assert due.action == "started" and due.run == "run-000001"
    assert "window_seconds = 300" in due.detail
    ((name, plan),) = orchestrator.started
    assert name == "run-000001" and plan["run"] == name
    # foreign-key parents in an earlier level than their children; one batch (and Glue job run) per dataset
    assert [[b["dataset"] for b in level] for level in plan["levels"]] == [["orders", "products"], ["order_items"]]
    assert plan["levels"][0][0] == {
        "dataset": "orders",
        "batch": 1,
        "job": "lakehouse-local-process-orders",
        "worker_type": "G.1X",
        "workers": 2,  # the job's own two: a single-node batch does not scale out
    }
    assert plan["crawlers"] == ["lakehouse-local-raw-products"]  # orders and order_items: from their contracts
    run = ledger.get_run("run-000001")
    assert (run.status, run.files, run.bytes) == ("RUNNING", 32, 3200)
    # 3,200 bytes: one Glue job runs the whole run (Glue bills each job run a minute of two workers)
    assert (plan["mode"], plan["job"]) == ("single", "lakehouse-local-run-batch")
    assert plan["sizing"] == "3,200 bytes <= 268,435,456: one job"


def test_a_run_past_single_job_bytes_gets_a_job_per_dataset(settings, stage, ledger):
    orchestrator = Orchestrator()
    small = replace(settings, pipeline=replace(settings.pipeline, single_job_bytes=250))
    accept(ledger, "orders", "o.csv", T0, size=200)
    accept(ledger, "products", "p.jsonl", T0, size=100)
    pipeline_at(small, stage, ledger, orchestrator, T0).tick(force=True)
    ((_, plan),) = orchestrator.started
    assert plan["mode"] == "per_dataset" and "job" not in plan
    assert plan["sizing"] == "300 bytes > 250 (single_job_bytes): a job per dataset"
    assert plan["master_merge"] == {"worker_type": "G.1X", "workers": 2}  # what the state machine starts it on
    # the master merge reads what a run changed on one node: past one G.1X's disk, a G.2X, as a batch
    assert pipeline_at(small, stage, ledger, Orchestrator(), T0).sizing(11 * 2**30)["master_merge"] == {
        "worker_type": "G.2X",
        "workers": 2,
    }
    assert [b["job"] for b in plan["levels"][0]] == [
        "lakehouse-local-process-orders",
        "lakehouse-local-process-products",
    ]


def test_a_batch_runs_on_spark_past_spark_bytes_or_when_its_contract_or_the_run_says_so(settings, stage, ledger):
    """The engine is chosen per dataset batch: by size ([pipeline] spark_bytes), by contract (engine), or for the
    whole run (`lakehouse run --engine`); a run with a Spark batch gives every dataset its own job."""
    contracts = dict(settings.datasets, products=replace(settings.datasets["products"], engine="spark"))
    tuned = replace(settings, datasets=contracts, pipeline=replace(settings.pipeline, spark_bytes=150))
    accept(ledger, "orders", "o.csv", T0, size=200)
    accept(ledger, "products", "p.jsonl", T0, size=10)
    accept(ledger, "customers", "c.csv", T0, size=10)
    orchestrator = Orchestrator()
    pipeline_at(tuned, stage, ledger, orchestrator, T0).tick(force=True)
    ((_, plan),) = orchestrator.started
    jobs = {b["dataset"]: b["job"] for level in plan["levels"] for b in level}
    assert jobs == {
        "orders": "lakehouse-local-spark-orders",  # 200 bytes >= 150
        "products": "lakehouse-local-spark-products",  # its contract
        "customers": "lakehouse-local-process-customers",
    }
    assert plan["engines"]["orders"] == "spark (200 bytes >= spark_bytes 150), up to 2 G.1X workers"
    assert plan["engines"]["products"] == "spark (its contract's engine = 'spark'), up to 2 G.1X workers"
    assert plan["engines"]["customers"] == "single (10 bytes < spark_bytes 150)"
    assert plan["mode"] == "per_dataset" and "a dataset on Spark" in plan["sizing"]


def test_lakehouse_run_engine_puts_every_batch_on_that_engine(settings, stage, ledger):
    accept(ledger, "orders", "o.csv", T0, size=200)
    orchestrator = Orchestrator()
    pipeline_at(settings, stage, ledger, orchestrator, T0).tick(force=True, engine="spark")
    ((_, plan),) = orchestrator.started
    assert plan["levels"] == [
        [{"dataset": "orders", "batch": 1, "job": "lakehouse-local-spark-orders", "worker_type": "G.1X", "workers": 2}]
    ]
    assert plan["engines"] == {"orders": "spark (lakehouse run --engine), up to 2 G.1X workers"}


@pytest.mark.parametrize(
    ("size", "workers"),
    [
        (10, 2),  # a driver and one executor: Glue's least for G.1X
        (1000, 2),  # one executor's share (spark_worker_bytes = 1000)
        (1001, 3),
        (3500, 5),  # the driver and ceil(3.5) executors
        (10**9, 6),  # the ceiling: spark_max_workers
    ],
)
def test_a_spark_batch_gets_a_worker_per_spark_worker_bytes_up_to_spark_max_workers(
    settings, stage, ledger, size, workers
):
    """The state machine starts each dataset's job with the plan's NumberOfWorkers: a single-node job its two
    workers, a Spark job an executor per [pipeline] spark_worker_bytes of its batch and a driver."""
    tuned = replace(settings, pipeline=replace(settings.pipeline, spark_worker_bytes=1000, spark_max_workers=6))
    accept(ledger, "orders", "o.csv", T0, size=size)
    accept(ledger, "customers", "c.csv", T0, size=size)
    orchestrator = Orchestrator()
    contracts = dict(tuned.datasets, orders=replace(tuned.datasets["orders"], engine="spark"))
    pipeline_at(replace(tuned, datasets=contracts), stage, ledger, orchestrator, T0).tick(force=True)
    ((_, plan),) = orchestrator.started
    sized = {b["dataset"]: (b["worker_type"], b["workers"]) for level in plan["levels"] for b in level}
    assert sized == {"orders": ("G.1X", workers), "customers": ("G.1X", 2)}
    assert plan["engines"]["orders"].endswith(f"up to {workers} G.1X workers")


class ArchiveS3:
    """Just what FinishRun's archive copy calls: every copy lands whole."""

    def copy(self, source, bucket, key):
        pass

    def head_object(self, Bucket, Key):
        return {"ContentLength": 100, "VersionId": "v1"}

    def delete_object(self, Bucket, Key):
        pass


def finish_run(settings, stage, ledger, orchestrator, name):
    """The run's jobs merged its batches and FinishRun closed it."""
    for batch in ledger.get_run(name).batches:
        ledger.close_batch(ledger.open_batch(batch["dataset"]), 1, {}, {})  # resumes the run's open batch
    RunSteps(settings, stage, ledger).finish(name, ArchiveS3())
    orchestrator.states[name] = "SUCCEEDED"


def test_a_dataset_is_crawled_only_when_its_batch_brings_a_new_raw_layout(settings, stage, ledger):
    orchestrator = Orchestrator()
    accept(ledger, "products", "p1.csv", T0)  # products and reviews: CSV or JSON lines, catalogued by a crawler
    accept(ledger, "reviews", "r1.csv", T0)
    first = pipeline_at(settings, stage, ledger, orchestrator, T0).tick(force=True)
    plan = orchestrator.started[-1][1]
    assert sorted(plan["crawlers"]) == ["lakehouse-local-raw-products", "lakehouse-local-raw-reviews"]
    assert plan["crawl_reasons"] == {"products": "never crawled", "reviews": "never crawled"}
    finish_run(settings, stage, ledger, orchestrator, first.run)
    assert ledger.crawled_layouts("products") == {"csv; columns a,b; folders ingest_date=*"}

    accept(ledger, "products", "p2.csv", T0)  # the same layout, other rows
    accept(ledger, "reviews", "r2.csv", T0, layout="csv; columns a,b,c; folders ingest_date=*")  # a new column
    second = pipeline_at(settings, stage, ledger, orchestrator, T0).tick(force=True)
    plan = orchestrator.started[-1][1]
    assert plan["crawlers"] == ["lakehouse-local-raw-reviews"]
    assert plan["crawl_reasons"]["products"] == "skipped: the 1 files have layouts crawled before"
    assert plan["crawl_reasons"]["reviews"] == "new raw layout: csv; columns a,b,c; folders ingest_date=*"
    assert plan["layouts"] == {"reviews": ["csv; columns a,b,c; folders ingest_date=*"]}
    finish_run(settings, stage, ledger, orchestrator, second.run)
    assert ledger.crawled_layouts("reviews") == {
        "csv; columns a,b; folders ingest_date=*",
        "csv; columns a,b,c; folders ingest_date=*",
    }

    accept(ledger, "products", "p3.csv", T0, layout=None)  # validated before layouts were kept: crawled to be safe
    accept(ledger, "reviews", "r3.csv", T0)
    pipeline_at(settings, stage, ledger, orchestrator, T0).tick(force=True)
    plan = orchestrator.started[-1][1]
    assert plan["crawlers"] == ["lakehouse-local-raw-products"]
    assert plan["crawl_reasons"]["products"].startswith("new raw layout: unknown")


def test_a_dataset_catalogued_from_its_contract_is_never_crawled_even_when_asked(settings, stage, ledger):
    """orders is CSV only: raw_orders is written from its contract with every column the validator accepts, and a
    crawler told to update it would replace it with its own guess."""
    orchestrator = Orchestrator()
    accept(ledger, "orders", "o1.csv", T0, layout="csv; columns a,b,c; folders ingest_date=*")  # never crawled
    accept(ledger, "products", "p1.csv", T0)
    pipeline_at(settings, stage, ledger, orchestrator, T0).tick(force=True, crawl=True)
    plan = orchestrator.started[-1][1]
    assert plan["crawlers"] == ["lakehouse-local-raw-products"]
    assert plan["crawl_reasons"] == {
        "orders": "skipped: raw_orders is written from its contract",
        "products": "crawl asked for (lakehouse run --crawl)",
    }
    assert "orders" not in plan["layouts"]


def test_a_failed_run_leaves_its_layouts_uncrawled_and_crawl_forces_every_crawler(settings, stage, ledger):
    orchestrator = Orchestrator()
    accept(ledger, "products", "p1.csv", T0)
    first = pipeline_at(settings, stage, ledger, orchestrator, T0).tick(force=True)
    RunSteps(settings, stage, ledger).fail(first.run, "States.TaskFailed", "the crawler failed")
    orchestrator.states[first.run] = "FAILED"
    assert ledger.crawled_layouts("products") is None  # the next run crawls again
    ledger.requeue(ledger.files()[0].file_id)
    second = pipeline_at(settings, stage, ledger, orchestrator, T0).tick(force=True)
    assert orchestrator.started[-1][1]["crawl_reasons"] == {"products": "never crawled"}
    finish_run(settings, stage, ledger, orchestrator, second.run)

    accept(ledger, "products", "p2.csv", T0)
    pipeline_at(settings, stage, ledger, orchestrator, T0).tick(force=True, crawl=True)
    plan = orchestrator.started[-1][1]
    assert plan["crawlers"] == ["lakehouse-local-raw-products"]
    assert plan["crawl_reasons"] == {"products": "crawl asked for (lakehouse run --crawl)"}


def test_a_run_starts_early_when_enough_files_or_bytes_wait(settings, stage, ledger):
    few = replace(settings, pipeline=replace(settings.pipeline, start_files=5))
    for i in range(5):
        accept(ledger, "orders", f"o{i}.csv", T0)
    tick = pipeline_at(few, stage, ledger, Orchestrator(), T0 + timedelta(seconds=1)).tick()
    assert tick.action == "started" and "5 files waiting (start_files = 5)" in tick.detail

    ledger2 = InMemoryLedger()
    accept(ledger2, "orders", "big.csv", T0, size=settings.pipeline.start_bytes)
    tick = pipeline_at(settings, stage, ledger2, Orchestrator(), T0 + timedelta(seconds=1)).tick()
    assert tick.action == "started" and "bytes waiting" in tick.detail


def test_force_starts_now_and_nothing_waiting_is_idle(settings, stage, ledger):
    orchestrator = Orchestrator()
    assert pipeline_at(settings, stage, ledger, orchestrator, T0).tick(force=True).action == "idle"
    accept(ledger, "orders", "o.csv", T0)
    assert pipeline_at(settings, stage, ledger, orchestrator, T0).tick(force=True).action == "started"


def test_one_run_in_flight_and_a_file_is_in_exactly_one_run(settings, stage, ledger):
    orchestrator = Orchestrator()
    late = T0 + timedelta(hours=1)
    accept(ledger, "orders", "a.csv", T0)
    first = pipeline_at(settings, stage, ledger, orchestrator, late).tick()
    accept(ledger, "orders", "b.csv", T0 + timedelta(seconds=1))  # arrives while run 1 is in flight
    busy = pipeline_at(settings, stage, ledger, orchestrator, late).tick(force=True)
    assert (busy.action, busy.run, len(orchestrator.started)) == ("busy", first.run, 1)

    # run 1 finishes: its batch closes (the Glue job's work) and the run ends (the FinishRun step's)
    ledger.close_batch(ledger.open_batch("orders"), 1, {})
    ledger.end_run(first.run, "SUCCEEDED")
    orchestrator.states[first.run] = "SUCCEEDED"
    second = pipeline_at(settings, stage, ledger, orchestrator, late).tick(force=True)
    assert second.action == "started" and second.run == "run-000002"
    batches = [ledger.get_run(r).batches for r in (first.run, second.run)]
    assert [b["batch"] for b in batches[0]] == [1] and [b["batch"] for b in batches[1]] == [2]
    assert ledger.batch_state("orders")["files"] == ["lake/raw/orders/b.csv#v1"]


def test_two_batchers_at_once_start_one_run(settings, stage, ledger):
    from concurrent.futures import ThreadPoolExecutor

    orchestrator = Orchestrator()
    for i in range(20):
        accept(ledger, "orders", f"o{i}.csv", T0)
    pipeline = pipeline_at(settings, stage, ledger, orchestrator, T0 + timedelta(hours=1))
    with ThreadPoolExecutor(8) as pool:
        ticks = list(pool.map(lambda _: pipeline.tick(), range(8)))
    assert sum(t.action == "started" for t in ticks) == 1
    assert {name for name, _ in orchestrator.started} == {"run-000001"}


def test_a_batcher_that_died_half_way_is_finished_by_the_next_tick(settings, stage, ledger):
    orchestrator = Orchestrator()
    accept(ledger, "orders", "o.csv", T0)
    ledger.begin_run()  # named, never planned nor started
    tick = pipeline_at(settings, stage, ledger, orchestrator, T0).tick()
    assert (tick.action, tick.run) == ("started", "run-000001")
    assert orchestrator.started[0][1]["levels"][0][0]["batch"] == 1

    orchestrator.states["run-000001"] = None  # planned, but the start call was lost
    again = pipeline_at(settings, stage, ledger, orchestrator, T0).tick()
    assert again.action == "started" and [n for n, _ in orchestrator.started] == ["run-000001", "run-000001"]


def test_an_execution_that_ended_without_its_failure_step_fails_the_run_and_alerts(settings, stage, ledger):
    orchestrator, alerts = Orchestrator(), []
    accept(ledger, "orders", "o.csv", T0)
    pipeline = pipeline_at(settings, stage, ledger, orchestrator, T0 + timedelta(hours=1), alerts)
    run = pipeline.tick().run
    orchestrator.states[run] = "ABORTED"  # someone stopped it in the console
    accept(ledger, "orders", "later.csv", T0 + timedelta(seconds=5))
    tick = pipeline.tick()
    assert ledger.get_run(run).status == "FAILED" and "ended ABORTED" in ledger.get_run(run).cause
    assert ledger.get("lake/raw/orders/o.csv#v1").status == Status.FAILED
    assert alerts and "run-000001 FAILED" in alerts[0][0]
    assert tick.action == "started" and tick.run == "run-000002"  # the pipeline is not stuck


def test_failure_step_marks_each_dataset_with_its_own_cause(settings, stage, ledger):
    orchestrator = Orchestrator()
    for dataset in ("orders", "products", "order_items"):
        accept(ledger, dataset, f"{dataset}.csv", T0)
    pipeline = pipeline_at(settings, stage, ledger, orchestrator, T0)
    run = pipeline.tick(force=True).run
    ledger.close_batch(ledger.open_batch("products"), 3, {})  # products' job finished
    glue_cause = json.dumps({"JobRunState": "FAILED", "ErrorMessage": "process_orders.py failed: disk full"})
    cause = json.dumps([{"dataset": "orders", "Error": "States.TaskFailed", "Cause": glue_cause}])

    steps = RunSteps(settings, stage, ledger)
    assert steps.fail(run, "DatasetJobFailed", cause) == {"run": run, "files_failed": 2, "archived": 0}
    orders, items, products = (ledger.get(f"lake/raw/{d}/{d}.csv#v1") for d in ("orders", "order_items", "products"))
    assert (orders.status, orders.reason_code, orders.reason) == (
        Status.FAILED,
        "States.TaskFailed",
        "process_orders.py failed: disk full",
    )
    assert (items.status, items.reason_code) == (Status.FAILED, "NotRun")
    assert products.status == Status.PROCESSED
    assert ledger.get_run(run).status == "FAILED" and ledger.active_run() is None

    # the cause fixed, the files go back in the queue and into the next run's new batches
    assert ledger.requeue(orders.file_id) and ledger.requeue(items.file_id)
    assert not ledger.requeue(products.file_id)
    again = pipeline.tick(force=True)
    plan = ledger.get_run(again.run).plan
    assert {b["dataset"]: b["batch"] for level in plan["levels"] for b in level} == {"orders": 2, "order_items": 2}


def test_the_failure_step_finds_each_dataset_s_cause_in_the_error_of_a_whole_run_job(settings, stage, ledger):
    orchestrator = Orchestrator()
    for dataset in ("orders", "products", "order_items"):
        accept(ledger, dataset, f"{dataset}.csv", T0)
    run = pipeline_at(settings, stage, ledger, orchestrator, T0).tick(force=True).run
    ledger.close_batch(ledger.open_batch("products"), 3, {})  # merged by the job before orders failed
    failed = [{"dataset": "orders", "Error": "TableError", "Cause": "orders: the MERGE failed"}]
    # the job run as the .sync Task's cause, its message in Glue's words around the job's own
    message = f"Error Category: UNCLASSIFIED_ERROR; DatasetJobFailed: DatasetJobFailed: {json.dumps(failed)}"
    cause = json.dumps({"JobName": "lakehouse-local-run-batch", "JobRunState": "FAILED", "ErrorMessage": message})
    assert RunSteps(settings, stage, ledger).fail(run, "States.TaskFailed", cause)["files_failed"] == 2
    orders, items, products = (ledger.get(f"lake/raw/{d}/{d}.csv#v1") for d in ("orders", "order_items", "products"))
    assert (orders.status, orders.reason_code, orders.reason) == (
        Status.FAILED,
        "TableError",
        "orders: the MERGE failed",
    )
    assert (items.status, items.reason_code) == (Status.FAILED, "NotRun")
    assert products.status == Status.PROCESSED
    assert ledger.get_run(run).error == "DatasetJobFailed"
    assert (
        describe_error("States.TaskFailed", cause) == "DatasetJobFailed: orders: TableError: orders: the MERGE failed"
    )


def test_a_whole_run_job_error_without_its_datasets_fails_every_batch_with_it(settings, stage, ledger):
    orchestrator = Orchestrator()
    accept(ledger, "orders", "orders.csv", T0)
    run = pipeline_at(settings, stage, ledger, orchestrator, T0).tick(force=True).run
    cause = json.dumps({"JobRunState": "FAILED", "ErrorMessage": "DatasetJobFailed: [truncated"})
    RunSteps(settings, stage, ledger).fail(run, "States.TaskFailed", cause)
    orders = ledger.get("lake/raw/orders/orders.csv#v1")
    assert (orders.status, orders.reason_code, orders.reason) == (
        Status.FAILED,
        "States.TaskFailed",
        "DatasetJobFailed: [truncated",
    )


def test_quality_gate_errors_on_too_many_rejected_rows(settings, stage, ledger):
    from dataclasses import replace

    from chalicelib.ledger import FileResult

    class NoTables:  # the contracts' rules are tested in test_quality; here only the ETL's rejections count
        name = "none"

        def tables(self):
            return set()

    bare = replace(settings, datasets={n: replace(c, rules=()) for n, c in settings.datasets.items()})
    accept(ledger, "orders", "good.csv", T0)
    accept(ledger, "products", "bad.csv", T0)
    pipeline = pipeline_at(bare, stage, ledger, Orchestrator(), T0)
    run = pipeline.tick(force=True).run
    ledger.close_batch(
        ledger.open_batch("orders"),
        1,
        {"lake/raw/orders/good.csv#v1": FileResult(95, 5)},
        {"rejected_by_reason": {"REQUIRED": 5}},
    )
    ledger.close_batch(ledger.open_batch("products"), 1, {"lake/raw/products/bad.csv#v1": FileResult(80, 20)})
    result = RunSteps(bare, stage, ledger).quality(run, NoTables())
    assert result["status"] == "ERROR" and result["datasets"] == {"orders": "PASSED", "products": "ERROR"}
    assert [b["dataset"] for b in result["rollback"]] == ["products"]
    checks = {r["dataset"]: r["checks"][0] for r in result["results"]}
    assert (checks["orders"]["observed"], checks["orders"]["passed"]) == (5.0, True)
    assert checks["orders"]["detail"] == "5 of 100 rows rejected (REQUIRED 5)"
    assert (checks["products"]["observed"], checks["products"]["passed"]) == (20.0, False)
    assert "ERROR products rejected_rows: 20 of 100 rows rejected (expected at most 10%)" in result["summary"]
    assert [h["status"] for h in ledger.quality_history("products")] == ["ERROR"]  # kept as history

    class Unreachable:  # judged once: the gate step after the job that ran the run whole reads what it recorded
        name = "unreachable"

        def tables(self):
            raise AssertionError("a batch this run judged already was judged again")

    again = RunSteps(bare, stage, ledger).quality(run, Unreachable())
    assert again == result and len(ledger.quality_history("products")) == 1


def _one_state_machine():
    """A state machine of one Succeed state, in moto: its client and ARN."""
    import boto3

    sfn = boto3.client("stepfunctions")
    arn = sfn.create_state_machine(
        name="p",
        definition=json.dumps({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}),
        roleArn="arn:aws:iam::123456789012:role/r",
    )["stateMachineArn"]
    return sfn, arn


def test_step_functions_start_is_idempotent_by_name(aws_env):
    sfn, arn = _one_state_machine()
    orchestrator = StepFunctions(sfn, arn)
    assert orchestrator.status("run-000001") is None
    orchestrator.start("run-000001", {"run": "run-000001"})
    orchestrator.start("run-000001", {"run": "run-000001"})
    assert len(sfn.list_executions(stateMachineArn=arn)["executions"]) == 1
    assert orchestrator.status("run-000001") in ("RUNNING", "SUCCEEDED")
    # a ledger from before epochs, recreated: its run-000001 is another run, which cannot start, and says why
    with pytest.raises(PipelineError, match="execution name run-000001 was used by another run"):
        orchestrator.start("run-000001", {"run": "run-000001", "levels": []})


def test_a_recreated_ledger_names_its_executions_apart_from_the_old_ledgers(aws_env):
    """Step Functions keeps execution names for 90 days; a new ledger numbers its runs from run-000001 again."""
    from chalicelib.ledger import InMemoryLedger

    sfn, arn = _one_state_machine()
    old, new = InMemoryLedger(), InMemoryLedger()
    assert old.epoch() == old.epoch() != new.epoch()  # made once per ledger, kept
    for ledger in (old, new):
        run = ledger.begin_run()
        assert run.name == "run-000001"
        StepFunctions(sfn, arn, ledger.epoch()).start(run.name, {"run": run.name, "levels": [[id(ledger)]]})
    names = sorted(e["name"] for e in sfn.list_executions(stateMachineArn=arn)["executions"])
    assert names == sorted(f"run-000001-{ledger.epoch()}" for ledger in (old, new))
    assert StepFunctions(sfn, arn, new.epoch()).status("run-000001") in ("RUNNING", "SUCCEEDED")


def test_on_aws_a_stopped_execution_fails_its_run_and_alerts_the_topic(provisioned, settings, stage):
    from chalicelib.ledger import DynamoDBLedger

    ledger = DynamoDBLedger(provisioned.dynamodb, stage.ledger_table)
    accept(ledger, "orders", "o.csv", T0)
    inbox = provisioned.sqs.create_queue(QueueName="alerts-inbox")["QueueUrl"]
    inbox_arn = provisioned.sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]
    topic = stage.topic_arn(stage.alerts_topic, "123456789012")
    provisioned.sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn["QueueArn"])

    pipeline = Pipeline.on_aws(settings, stage, ledger)
    run = pipeline.tick(force=True).run
    execution = pipeline.orchestrator.execution_arn(run)
    assert provisioned.stepfunctions.describe_execution(executionArn=execution)["status"] == "RUNNING"
    provisioned.stepfunctions.stop_execution(executionArn=execution)  # someone stopped it in the console

    assert pipeline.tick().action == "idle"
    assert ledger.get_run(run).status == "FAILED" and "ended ABORTED" in ledger.get_run(run).cause
    (message,) = provisioned.sqs.receive_message(QueueUrl=inbox).get("Messages", [])
    assert f"run {run} FAILED" in json.loads(message["Body"])["Subject"]


def test_a_batch_past_one_g1x_s_disk_runs_on_g2x_workers_on_one_node(settings):
    """Scratch space grows with a batch (docs/etl.md, "Memory"): a single-node batch past 10 GiB gets a G.2X."""
    from chalicelib.pipeline.engines import choose

    single = replace(
        settings, datasets=dict(settings.datasets, orders=replace(settings.datasets["orders"], engine="single"))
    )
    assert (choose(single, "orders", 10 * 2**30).worker_type, choose(single, "orders", 10 * 2**30 + 1).worker_type) == (
        "G.1X",
        "G.2X",
    )
    assert choose(single, "orders", 11 * 2**30).why == "single (its contract's engine = 'single'), on G.2X workers"
    assert choose(single, "orders", 11 * 2**30).workers == 2


# A plan as the planner wrote it before runs were sized (commit 3f27759^): no mode, no master merge, no workers.
PLAN_BEFORE_SIZING = {
    "crawlers": [],
    "crawl_reasons": {"orders": "skipped: the 1 files have layouts crawled before"},
    "layouts": {},
    "levels": [[{"dataset": "orders", "batch": 1, "job": "lakehouse-local-process-orders"}]],
}


def _run_the_state_machine(plan):
    """The pipeline's definition run on `plan`, every Task answered as if it succeeded."""
    from deploy.provision import STATE_MACHINE_FILE
    from lakehouse.stepfunctions import Executor

    def dispatch(resource, params):
        if "startJobRun" in resource:
            return {"Id": "jr_1", "JobRunState": "SUCCEEDED"}
        if "lambda:invoke" in resource:
            payload = {"status": "PASSED", "summary": "", "datasets": [], "rollback": [], "tables": []}
            return {"Payload": {**payload, "files_failed": 0}}
        if "getCrawler" in resource:
            return {"Crawler": {"State": "READY", "LastCrawl": {"Status": "SUCCEEDED"}}}
        return {}

    definition = json.loads(STATE_MACHINE_FILE.read_text())
    return Executor(definition, dispatch, sleep=lambda s: None, parallel_threads=False).run("run-000001", plan)


@pytest.mark.parametrize(
    "old",
    [
        PLAN_BEFORE_SIZING,
        # sized, but before the master merge and the batches had their workers (commit 62e1613^)
        {**PLAN_BEFORE_SIZING, "mode": "per_dataset", "sizing": "a job per dataset"},
        # before crawl reasons were kept (commit 81db233^): every dataset crawled
        {"crawlers": ["lakehouse-local-raw-orders"], "levels": PLAN_BEFORE_SIZING["levels"]},
    ],
)
def test_a_resumed_plan_of_an_older_shape_gets_today_s_fields_and_runs_through(settings, stage, ledger, old):
    orchestrator = Orchestrator()
    accept(ledger, "orders", "o.csv", T0, size=3 * 1024**3)
    run = ledger.begin_run()
    ledger.open_batch("orders")
    ledger.save_plan(run, {"run": run.name, **old}, files=1, bytes_=3 * 1024**3)
    assert _run_the_state_machine(ledger.get_run(run.name).plan).error == "States.Runtime"  # what tick used to start

    tick = pipeline_at(settings, stage, ledger, orchestrator, T0).tick()  # planned, never started: resumed
    assert (tick.action, tick.run) == ("started", run.name)
    ((_, plan),) = orchestrator.started
    assert plan["mode"] == "per_dataset" and plan["master_merge"] == {"worker_type": "G.1X", "workers": 2}
    assert plan["levels"] == [[{**old["levels"][0][0], "worker_type": "G.1X", "workers": 2}]]
    assert {k: plan[k] for k in old} == {**old, "levels": plan["levels"]}  # what it had is kept
    execution = _run_the_state_machine(plan)
    assert (execution.status, execution.error) == ("SUCCEEDED", None)


def test_a_resumed_plan_keeps_the_sizing_it_was_given(settings, stage, ledger):
    orchestrator = Orchestrator()
    accept(ledger, "orders", "o.csv", T0)
    pipeline_at(settings, stage, ledger, orchestrator, T0).tick(force=True)
    ((name, planned),) = orchestrator.started
    orchestrator.states[name] = None  # the start call was lost
    pipeline_at(settings, stage, ledger, orchestrator, T0).tick()
    assert orchestrator.started[-1] == (name, planned)  # today's plan comes back as it was
