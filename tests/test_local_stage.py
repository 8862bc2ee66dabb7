"""End to end on the embedded local stage: the real CLI, moto server, S3 -> SQS -> validate."""

import json
import os
import subprocess
import sys
import threading
import time

import pytest
from conftest import ROOT

from lakehouse.localstage import s3_notification, wait_until_idle

pytestmark = pytest.mark.e2e

H = b"order_id,customer_id,order_ts,status,total_amount,currency,order_date\n"
R = b"O1,C1,2025-03-01T10:00:00Z,shipped,10.00,EUR,2025-03-01\n"


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("lakehouse-home")
    yield home
    lakehouse(home, "down")


def lakehouse(home, *args, check=True):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["LAKEHOUSE_HOME"] = str(home)
    result = subprocess.run(
        [sys.executable, "-m", "lakehouse.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"lakehouse {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


@pytest.fixture(scope="module")
def stage_env(home):
    first = lakehouse(home, "up")
    assert "local stage started" in first.stderr and "ledger table lakehouse-local-ledger" in first.stderr
    second = lakehouse(home, "up")  # idempotent
    assert "already running" in second.stderr
    exported = dict(line.removeprefix("export ").split("=", 1) for line in lakehouse(home, "env").stdout.splitlines())
    assert exported["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    return exported


def ledger(home):
    return json.loads(lakehouse(home, "ledger", "--json", "--limit", "0").stdout)


def wait_until(predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.3)
    raise AssertionError("timed out")


def test_drop_reports_each_verdict(home, stage_env, tmp_path):
    good, bad = tmp_path / "orders_good.csv", tmp_path / "orders_bad.csv"
    good.write_bytes(H + R * 2)
    bad.write_bytes(H)
    ok = lakehouse(home, "drop", str(good))
    assert "VALID" in ok.stdout and "orders_good.csv" in ok.stdout
    rejected = lakehouse(home, "drop", str(bad), "--dataset", "orders", check=False)
    assert rejected.returncode == 2 and "NO_DATA_ROWS" in rejected.stdout


def test_a_plain_boto3_client_with_lakehouse_env_is_processed_the_same_way(home, stage_env):
    script = (
        "import boto3, os; boto3.client('s3').put_object(Bucket=os.environ['LAKEHOUSE_BUCKET'], "
        "Key='raw/reviews/from boto3.csv', Body=b'review_id,product_id,customer_id,rating,review_ts,review_date\\n"
        "R9,P1,C1,4,2025-03-01T00:00:00Z,2025-03-01\\n')"
    )
    env = {"PATH": os.environ["PATH"], **stage_env}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)
    record = wait_until(
        lambda: next(
            (r for r in ledger(home) if r["key"] == "raw/reviews/from boto3.csv" and r["status"] != "RECEIVED"), None
        )
    )
    assert record["status"] == "VALID" and record["rows"] == 1 and record["dataset"] == "reviews"


def test_one_event_delivered_many_times_concurrently_gives_one_entry_and_one_acceptance(home, stage_env):
    import boto3

    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=stage_env["AWS_REGION"]
    )
    s3 = session.client("s3", endpoint_url=stage_env["AWS_ENDPOINT_URL"])
    sqs = session.client("sqs", endpoint_url=stage_env["AWS_ENDPOINT_URL"])
    bucket, key = stage_env["LAKEHOUSE_BUCKET"], "raw/orders/storm ü.csv"
    version = s3.put_object(Bucket=bucket, Key=key, Body=H + R * 7)["VersionId"]
    body = s3_notification(bucket, key, version)
    url = sqs.get_queue_url(QueueName="lakehouse-local-ingest")["QueueUrl"]
    threads = [
        threading.Thread(target=sqs.send_message, kwargs={"QueueUrl": url, "MessageBody": body}) for _ in range(20)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait_until_idle(sqs, "lakehouse-local-ingest", timeout=120)
    entries = [r for r in ledger(home) if r["key"] == key]
    assert len(entries) == 1 and entries[0]["status"] == "VALID" and entries[0]["rows"] == 7
    accepted_url = sqs.get_queue_url(QueueName="lakehouse-local-accepted.fifo")["QueueUrl"]
    announced = []
    while batch := sqs.receive_message(QueueUrl=accepted_url, MaxNumberOfMessages=10).get("Messages"):
        announced += [json.loads(m["Body"])["key"] for m in batch]
        sqs.delete_message_batch(
            QueueUrl=accepted_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )
    assert announced.count(key) == 1


def test_ledger_lists_newest_first(home, stage_env):
    records = ledger(home)
    times = [r["received_at"] for r in records]
    assert len(records) >= 3 and times == sorted(times, reverse=True)


def test_etl_runs_the_glue_scripts_and_tables_can_be_read_now_and_as_they_were(home, stage_env, tmp_path):
    lakehouse(home, "generate", str(tmp_path / "set"), "--orders", "200", "--anomaly-rate", "0.05", "--seed", "3")
    manifest = json.loads((tmp_path / "set" / "manifest.json").read_text())
    lakehouse(home, "drop", str(tmp_path / "set" / "orders.csv"))
    first = lakehouse(home, "etl", "--dataset", "orders", "--no-curated")
    planted = manifest["datasets"]["orders"]
    assert "orders" in first.stdout and "delta version" in first.stdout
    (record,) = [r for r in ledger(home) if r["key"].endswith("/orders.csv")]
    assert record["status"] == "PROCESSED" and record["rows_merged"] == planted["clean_rows"]
    assert record["rows_rejected"] == sum(planted["rejected_by_reason"].values())
    for name in ("order_items.csv", "products.jsonl", "customers.csv", "clickstream.jsonl", "reviews.csv"):
        lakehouse(home, "drop", str(tmp_path / "set" / name), check=False)
    second = lakehouse(home, "etl")
    assert "curated: daily_sales_by_category" in second.stdout
    listing = lakehouse(home, "table", "list").stdout
    assert "processed/orders" in listing and "curated/clickstream_sessions" in listing
    history = lakehouse(home, "table", "history", "processed/orders").stdout
    assert "WRITE" in history or "MERGE" in history
    now = lakehouse(home, "table", "show", "processed/orders", "--limit", "1")
    assert "order_id" in now.stdout and "rows, first 1 shown" in now.stderr
    before = lakehouse(home, "table", "show", "processed/orders", "--version", "0")
    assert "0 rows" in before.stderr  # the table as created, before the first batch
    missing = lakehouse(home, "table", "show", "processed/nope", check=False)
    assert missing.returncode == 2 and "no table 'processed/nope'" in missing.stderr
    # the contracts' rules on the tables now: exactly the planted rule anomalies warn, nothing errs
    checked = lakehouse(home, "quality", "check")
    warnings = sum(len(d["rule_failures"]) for d in manifest["datasets"].values())
    assert warnings and f" {warnings} warnings, 0 errors in 6 tables" in checked.stdout
    assert "latest batch" in checked.stdout  # the gate's reading: what each latest batch wrote
    full = lakehouse(home, "quality", "check", "--full")  # whole tables: each holds only its one batch here
    assert f" {warnings} warnings, 0 errors in 6 tables" in full.stdout and "processed tables now" in full.stdout
    assert "no quality results yet" in lakehouse(home, "quality", "report").stderr  # no pipeline run kept any
    unknown = lakehouse(home, "quality", "check", "invoices", check=False)
    assert unknown.returncode == 2 and "not datasets: invoices" in unknown.stderr
    tidy = lakehouse(home, "table", "housekeeping")
    assert "processed/orders" in tidy.stdout or "lakehouse-local-lake/processed/orders" in tidy.stdout


def test_lifecycle_and_drift_commands(home, stage_env, tmp_path):
    before = lakehouse(home, "drift", check=False)  # `lakehouse etl` (above) does not catalog its tables
    assert "processed_orders" in before.stdout and "lifecycle rules" not in before.stdout
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.toml").write_text(
        '[[buckets."@lake".rules]]\nid = "r"\ntransitions = [{ days = 1, storage_class = "STANDARD_IA" }]\n'
    )
    refused = lakehouse(home, "lifecycle", "push", "--from", str(bad), check=False)
    assert refused.returncode == 1 and "at least 30" in refused.stderr and "nothing uploaded" in refused.stderr
    assert "config: 1 of 1 files uploaded" in lakehouse(home, "lifecycle", "push").stderr
    dry = lakehouse(home, "lifecycle", "sync", "--dry-run").stdout
    assert "would put" in dry and "1 buckets would change" in dry
    drifted = lakehouse(home, "drift", check=False)  # pushed, not yet synced
    assert drifted.returncode == 1 and "lifecycle rules" in drifted.stdout
    assert "1 buckets changed" in lakehouse(home, "lifecycle", "sync").stdout
    (recorded,) = json.loads(lakehouse(home, "lifecycle", "history", "--json").stdout)
    change = recorded["id"]
    assert recorded["reason"] == "sync" and "lake.toml" in recorded["definition_files"]
    undone = lakehouse(home, "lifecycle", "rollback", change)
    assert "lakehouse-local-lake: delete" in undone.stderr  # back to no lifecycle configuration at all
    missing = lakehouse(home, "lifecycle", "rollback", "lakehouse-local-lake/nope", check=False)
    assert missing.returncode == 1 and "no recorded lifecycle change" in missing.stderr


def test_down_is_idempotent_and_commands_then_say_the_stage_is_not_running(home, stage_env):
    assert "local stage stopped" in lakehouse(home, "down").stderr
    assert "was not running" in lakehouse(home, "down").stderr
    gone = lakehouse(home, "env", check=False)
    assert gone.returncode == 1 and "the local stage is not running: start it with `lakehouse up`" in gone.stderr
