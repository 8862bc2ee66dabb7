"""`lakehouse demo` (what `make demo` runs): ingest, then the pipeline, end to end on a fresh local stage."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from chalicelib.aws import client
from chalicelib.config import Settings, Stage
from chalicelib.ledger import DynamoDBLedger, Status, ledger_for
from lakehouse import localstage
from lakehouse.generate import generate
from lakehouse.jobs import rejected_rows_by_reason
from lakehouse.ops import (
    drop_files,
    fail_jobs,
    local_lake_rules,
    project_settings,
    run_pipeline,
    start_local_stage,
    wait_for,
)
from lakehouse.output import console, out, print_records, print_what_if
from lakehouse.samples import write_ingest_samples


def _pipeline(
    settings: Settings, stage: Stage, ledger: DynamoDBLedger, fail_job: str | None, run: int, dropped: list[str]
) -> bool:
    """Steps 5-7: a generated sample set with planted anomalies, the pipeline, the Delta tables. `dropped`: the
    files this demo run dropped so far (on a stage in use, the others are not the demo's to judge)."""
    from lakehouse_etl.lake import Lake
    from lakehouse_etl.local_sql import duckdb_connection

    console.rule("5. generate a sample set of every dataset (2% of rows with one planted anomaly) and drop it")
    s3 = client("s3")
    rejected_before = rejected_rows_by_reason(s3, settings, stage)  # a stage in use holds earlier runs' rejects
    manifest = generate(localstage.STATE_DIR / "generated", orders=2000, anomaly_rate=0.02, seed=7 + 1000 * run)
    planted = {name: d["rejected_by_reason"] for name, d in manifest["datasets"].items()}
    folder = localstage.STATE_DIR / "generated"
    ids = drop_files(settings, stage, [(folder / d["file"], name) for name, d in manifest["datasets"].items()])
    wait_for(ledger, ids, timeout=120)
    ours = {*dropped, *ids}
    failure_ok, earlier = True, []
    if fail_job:
        console.rule(f"6a. run the pipeline with the {fail_job} Glue job failing for good (--fail-job)")
        earlier = run_pipeline(settings, stage, fail_jobs(stage, (fail_job,)))
        failed = [r for r in ledger.files() if r.file_id in ours and r.status == Status.FAILED]
        print_records(failed)
        alerts = [m for e in earlier for m in e["published"] if m["TopicArn"].endswith(f":{stage.alerts_topic}")]
        failure_ok = earlier[-1]["status"] == "FAILED" and bool(alerts) and bool(failed)
        console.print(f"  {len(failed)} files FAILED, alert sent: {bool(alerts)}; requeue them (the cause is gone)")
        for record in failed:
            ledger.requeue(record.file_id)
    console.rule(
        "6. run the pipeline on every accepted file: crawl, Glue jobs, quality gate, curated, catalog, archive"
    )
    executions = run_pipeline(settings, stage)
    every = earlier + executions
    console.print(f"  executions: {len(every)}, Glue job runs: {sum(len(e['glue_runs']) for e in every)}")
    pipeline_ok = bool(executions) and all(e["status"] == "SUCCEEDED" for e in executions)
    waiting = [r for r in ledger.files() if r.file_id in ours and r.status in (Status.VALID, Status.FAILED)]
    if waiting:
        console.print(f"[red]files not processed:[/red] {len(waiting)}")
    console.rule("7. every Delta table, read by DuckDB")
    con = duckdb_connection(Lake.for_stage(settings, stage))
    views = [r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1").fetchall()]
    for view in views:
        out.print(f"  {view}: {con.execute(f'SELECT count(*) FROM {view}').fetchone()[0]} rows")
    after = rejected_rows_by_reason(s3, settings, stage)
    rejected = {name: after[name] - rejected_before.get(name, Counter()) for name in after}
    # Every other file the demo dropped is clean, so the rejected rows are exactly the planted anomalies.
    missed = [
        f"{n}: planted {p}, rejected {dict(rejected.get(n, {}))}"
        for n, p in planted.items()
        if dict(rejected.get(n, {})) != p
    ]
    for line in missed:
        console.print(f"[red]planted and rejected differ:[/red] {line}")
    if not missed:
        console.print("  every planted anomaly was rejected with its reason, and nothing else was")
    quality_ok = _quality_report(settings, ledger, manifest, run != 0)
    queries_ok = _example_queries(settings, stage)
    return len(views) == 10 and not missed and pipeline_ok and failure_ok and not waiting and quality_ok and queries_ok


def _quality_report(settings: Settings, ledger: DynamoDBLedger, manifest: dict[str, Any], in_use: bool) -> bool:
    """Step 8: the quality gate's latest results; the rule failures must be exactly the planted ones. On a stage in
    use, the checks judged from earlier loads (volume) are left out: those loads are not the demo's."""
    from chalicelib.quality.checks import CHECKS
    from lakehouse.quality_report import level, print_report

    console.rule("8. the quality gate's report (lakehouse quality report): rules of the contracts, one scan per table")
    results = [h for d in sorted(settings.datasets) for h in ledger.quality_history(d, 1)]
    print_report(out, results, "latest quality of each dataset")
    ok = True
    from_history = {name for name, check in CHECKS.items() if not check.scanned} if in_use else set()
    for result in results:
        planted = manifest["datasets"][result["dataset"]]["rule_failures"]
        judged = [c for c in result["checks"] if c["check"] not in from_history]
        found = {c["rule"]: c["observed"] for c in judged if level(c) != "PASSED"}
        if found != planted:
            console.print(f"[red]{result['dataset']}: planted {planted}, the rules found {found}[/red]")
            ok = False
    if ok:
        console.print("  every planted rule anomaly was reported with its exact count, and nothing else failed")
    # Every dataset the demo generated was judged; a contract a user added has no demo data, so no result.
    return ok and {r["dataset"] for r in results} == set(manifest["datasets"])


def _example_queries(settings: Settings, stage: Stage) -> bool:
    """Step 8: the shipped example queries (the same SQL runs on Athena for a deployed stage)."""
    from rich.table import Table

    from lakehouse.query import as_text, examples, on_duckdb

    console.rule("9. the example queries of chalicelib/queries/, on DuckDB (lakehouse query --example NAME)")
    ok = True
    for name, path in examples().items():
        result = on_duckdb(settings, stage, path.read_text())
        out.print(f"{name}: {len(result.rows)} rows (first 5)", highlight=False)
        table = Table(*result.columns)
        for row in result.rows[:5]:
            table.add_row(*(as_text(v) for v in row))
        out.print(table)
        ok = ok and bool(result.rows)
    return ok


def _update_batch(settings: Settings, stage: Stage, ledger: DynamoDBLedger, run: int) -> bool:
    """Step 9b: a second, small delivery as a day brings it: orders the lake holds already, now on other dates (and
    their items and clicks). The run skips the crawlers (no new raw layout), moves each changed order to its new
    date (one row per key), and merges only the touched groups into curated/."""
    from lakehouse_etl import delta
    from lakehouse_etl.curated import CURATED
    from lakehouse_etl.lake import Lake
    from lakehouse_etl.local_sql import duckdb_connection

    console.rule(
        "9b. an update batch: 50 orders again, on other dates; one Glue job, crawlers skipped, curated/ merged, "
        "rows moved"
    )
    folder = localstage.STATE_DIR / "update"
    manifest = generate(folder, orders=50, anomaly_rate=0, seed=8 + 1000 * run)
    lake = Lake.for_stage(settings, stage)
    query = "SELECT order_id, order_date FROM processed_orders"  # no string filter: chalicelib.quality.checks.listed
    before = {k: v for k, v in duckdb_connection(lake).execute(query).fetchall() if k <= "O00000050"}
    names = ("orders", "order_items", "clickstream")
    ids = drop_files(settings, stage, [(folder / manifest["datasets"][n]["file"], n) for n in names])
    wait_for(ledger, ids, timeout=120)
    executions = run_pipeline(settings, stage)
    last: dict[str, Any] = executions[-1] if executions else {"status": "none", "input": {}, "history": []}
    # No file brings a new layout: a crawler runs only for a dataset no successful run has crawled yet (with
    # --fail-job, the first run failed, so the datasets it finished were never recorded as crawled).
    reasons = last["input"].get("crawl_reasons", {})
    crawled = sorted(d for d, r in reasons.items() if not r.startswith("skipped"))
    no_new_layout = all(r.startswith("skipped") or r == "never crawled" for r in reasons.values())
    skip_state = any(e["state"].endswith("CrawlSkipped") for e in last["history"])
    skipped = no_new_layout and (skip_state or bool(crawled))
    operations = {t: delta.read_history(lake.curated(t), lake.storage_options)[0]["operation"] for t in CURATED}
    con = duckdb_connection(lake)
    after = dict(con.execute(query).fetchall())
    moved = sorted(k for k in before if after.get(k) != before[k])
    rows, keys = con.execute("SELECT count(*), count(DISTINCT order_id) FROM processed_orders").fetchone()
    one_job = last["input"].get("mode") == "single" and len(last.get("glue_runs", [])) == 1
    console.print(
        f"  glue job runs: {len(last.get('glue_runs', []))} ({last['input'].get('sizing')}); "
        f"crawlers: {('ran for ' + ', '.join(crawled) + ' (never crawled)') if crawled else 'skipped'}"
        f"{'' if no_new_layout else ' UNEXPECTED'}; curated/: "
        + ", ".join(f"{t} {op}" for t, op in operations.items())
        + f"; orders moved to another date: {len(moved)} (e.g. {', '.join(moved[:3])}); "
        f"processed_orders: {rows} rows, {keys} order ids",
        highlight=False,
    )
    return (
        last["status"] == "SUCCEEDED"
        and one_job
        and skipped
        and set(operations.values()) == {"MERGE"}
        and bool(moved)
        and rows == keys
    )


def _lifecycle_and_drift(settings: Settings, stage: Stage) -> bool:
    """Steps 10-11: the nightly jobs by hand: lifecycle rules from config/lifecycle/ (a dry run, then applied),
    and the drift report, after two planted changes made outside the lakehouse."""
    from chalicelib.lifecycle.rules import parse_definitions
    from chalicelib.lifecycle.sync import LifecycleSync
    from chalicelib.stage.drift import run_report
    from deploy.provision import upload_config
    from lakehouse.ops import definition_files
    from lakehouse.output import print_drift, print_sync

    console.rule("10. lifecycle rules from config/lifecycle/ (lakehouse lifecycle push, sync --dry-run, sync)")
    sync = LifecycleSync.for_stage(settings, stage)
    files = definition_files()
    assert not parse_definitions(files, stage.bucket).problems
    console.print(f"  {upload_config(sync.s3, stage.bucket, sync.definitions_prefix, files)}", highlight=False)
    dry = sync.run(dry_run=True, who="demo")
    print_sync(out, dry)
    applied = sync.run(dry_run=False, who="demo")
    print_sync(out, applied)
    again = sync.run(dry_run=True, who="demo")
    console.print(f"  a second dry run: {len(again.changed)} buckets would change")

    console.rule("11. the drift report (lakehouse drift), after two changes made outside the lakehouse")
    s3 = sync.s3
    rules = s3.get_bucket_lifecycle_configuration(Bucket=stage.bucket)["Rules"]
    for rule in rules:  # someone shortens the rejected/ retention in the console ...
        if rule["ID"] == "rejected-expire":
            rule["Expiration"] = {"Days": 30}
    s3.put_bucket_lifecycle_configuration(Bucket=stage.bucket, LifecycleConfiguration={"Rules": rules})
    tags = s3.get_bucket_tagging(Bucket=stage.bucket)["TagSet"]  # ... and re-tags the bucket
    s3.put_bucket_tagging(
        Bucket=stage.bucket, Tagging={"TagSet": [{**t, "Value": "sandbox"} if t["Key"] == "stage" else t for t in tags]}
    )
    report = run_report(settings, stage)
    print_drift(report)
    console.print(f"  report: s3://{stage.bucket}/{report.keys[1]} (and .json)", highlight=False)
    found = {(f.resource, f.property) for f in report.findings}
    planted = {(f"s3://{stage.bucket}", "lifecycle rules"), (f"s3://{stage.bucket}", "tags")}
    return (
        dry.dry_run
        and {c.bucket for c in dry.changed} == {stage.bucket}
        and len(applied.changed) == 1
        and not again.changed
        and found == planted
    )


def _cost_estimate(settings: Settings) -> None:
    """Step 12: what this configuration would cost on AWS a month (lakehouse cost; GET /cost)."""
    from chalicelib.cost import estimate as cost

    console.rule("12. what this configuration would cost on AWS a month (lakehouse cost, GET /cost)")
    estimate = cost.estimate_for(settings, None, {}, local_lake_rules(settings))
    for service, amount in sorted(estimate["by_service"].items(), key=lambda kv: -kv[1]):
        out.print(f"  {service:16} {amount:>12,.2f} {estimate['currency']}", highlight=False)
    out.print(f"  {'total':16} {estimate['monthly_total']:>12,.2f} {estimate['currency']} a month", highlight=False)
    runs = estimate["usage"]["pipeline_runs_per_day"]
    out.print(
        f"  (prices of {estimate['prices_as_of']}; up to {runs:g} pipeline runs a day with window_seconds = "
        f"{settings.pipeline.window_seconds}: `lakehouse cost --set pipeline_runs_per_day=24` shows fewer)",
        highlight=False,
    )
    print_what_if(estimate)


def _announcements(stage: Stage) -> int:
    """Messages on the accepted-files queue: one per file accepted (announced once, however often S3 redelivers)."""
    sqs = client("sqs")
    url = sqs.get_queue_url(QueueName=stage.accepted_queue)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def run_demo(keep_running: bool = False, fail_job: str | None = None, fresh: bool = False) -> int:
    settings = project_settings()
    stage = settings.stage(localstage.STAGE)
    reuse = not fresh and localstage.in_use()
    aside = None if reuse else localstage.set_aside(f"before-demo-{time.strftime('%Y%m%dT%H%M%S')}")
    # The demo's files differ on every run over a stage in use (its seed), so they are new files, not duplicates of
    # an earlier run's; its keys are the same, so the processed tables update those rows rather than grow.
    run = int(time.time()) if reuse else 0
    console.rule("1. start the local stage and provision it")
    if reuse:
        console.print(
            "  the local stage holds data: the demo adds its files to it and judges only those "
            "(`lakehouse demo --fresh` runs it on an empty stage, your data set aside)",
            highlight=False,
        )
    if aside:
        console.print(
            f"  your local stage's data is kept in {aside}: to bring it back, `lakehouse down --discard`, then move "
            f"its snapshot/ and executions/ back into {localstage.STATE_DIR}",
            highlight=False,
        )
    start_local_stage(settings)
    announced_before = _announcements(stage)  # a stage in use holds earlier runs' announcements
    try:
        samples = write_ingest_samples(localstage.STATE_DIR / "demo", run=run)
        ledger = ledger_for(stage)
        first = [s for s in samples if s.status != "DUPLICATE"]
        again = [s for s in samples if s.status == "DUPLICATE"]
        console.rule(f"2. drop {len(first)} files (valid ones and bad inputs) into raw/")
        ids = drop_files(settings, stage, [(s.path, s.dataset) for s in first])
        records = wait_for(ledger, ids, timeout=120)
        console.rule(f"3. drop {len(again)} files whose content is already in the lake")
        ids_again = drop_files(settings, stage, [(s.path, s.dataset) for s in again])
        records.update(wait_for(ledger, ids_again, timeout=120))
        console.rule("4. deliver one S3 event three more times (S3 delivers at least once)")
        entries = len(ledger.files())
        sqs = client("sqs")
        ingest_url = sqs.get_queue_url(QueueName=stage.ingest_queue)["QueueUrl"]
        bucket_key, version = ids[0].rsplit("#", 1)
        bucket, key = bucket_key.split("/", 1)
        for _ in range(3):
            sqs.send_message(QueueUrl=ingest_url, MessageBody=localstage.s3_notification(bucket, key, version))
        localstage.wait_until_idle(sqs, stage.ingest_queue)
        listed = ledger.files()
        after = [r for r in listed if r.file_id in records]
        announced = _announcements(stage) - announced_before
        valid = sum(r.status == "VALID" for r in after)
        redelivery_ok = len(listed) == entries and announced == valid
        console.print(
            f"  ledger entries: {len(after)} for {len(records)} files; announcements: {announced} for {valid} "
            f"valid files: {'no new entry, no second acceptance' if redelivery_ok else 'UNEXPECTED'}"
        )

        console.rule("ledger")
        all_ids = ids + ids_again
        print_records([records[i] for i in all_ids])
        counts = Counter(r.status for r in after)
        out.print("summary: " + ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())))
        reasons = Counter(r.reason_code for r in after if r.status == "REJECTED")
        out.print("rejected by reason: " + ", ".join(f"{c} x{n}" for c, n in sorted(reasons.items())))
        rejected = [r for r in after if r.rejected_key]
        out.print(
            f"quarantined copies with reasons under s3://{stage.bucket}/{settings.zones.rejected}: {len(rejected)}"
        )
        wrong = []
        for sample, file_id in zip(first + again, all_ids, strict=True):
            got = records[file_id]
            if got.status != sample.status or (sample.code and got.reason_code != sample.code):
                wrong.append(
                    f"{sample.path.name}: expected {sample.status} {sample.code or ''}, "
                    f"got {got.status} {got.reason_code or ''}"
                )
        for line in wrong:
            console.print(f"[red]mismatch:[/red] {line}")
        etl_ok = _pipeline(settings, stage, ledger, fail_job, run, list(records)) and _update_batch(
            settings, stage, ledger, run
        )
        nightly_ok = _lifecycle_and_drift(settings, stage)
        _cost_estimate(settings)
        ok = not wrong and redelivery_ok and etl_ok and nightly_ok
        console.print("[green]demo passed[/green]" if ok else "[red]demo failed[/red]")
        if keep_running:
            local = localstage.require()
            out.print(
                f"\nThe local stage keeps the demo's data (moto at {local.endpoint}); the API and dashboard show it:\n"
                "  make serve        # http://127.0.0.1:8000/ until Ctrl-C; `lakehouse down` stops the stage",
                highlight=False,
            )
        return 0 if ok else 1
    finally:
        if not keep_running:
            localstage.down(discard=not reuse)  # a stage in use keeps its data (and the demo's); a fresh one goes
