"""Nothing stays stuck after a crash: the local stage killed with SIGKILL during a burst of uploads (8 at a time) comes
back with every acknowledged upload, and every file ends judged once and every row loads once. A validator killed
mid-file leaves its ledger record RECEIVED, and the queue message it held went with the process: `up` and the
batcher's tick announce such a file again once its lease and the queue's visibility timeout have passed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from conftest import ROOT
from test_local_stage import H, lakehouse, wait_until

pytestmark = pytest.mark.e2e

BUCKET, LEDGER = "lakehouse-local-lake", "lakehouse-local-ledger"
SMALL, ROWS = 60, 20  # the burst: small files of ROWS rows ...
BIG_ROWS = 60_000  # ... and two big ones, whose validation takes long enough for the kill to interrupt
FINAL = {"VALID", "REJECTED", "DUPLICATE", "GONE", "PROCESSED", "FAILED"}

TABLE_ROWS = """
import json, lakehouse
lake = lakehouse.connect("local")
orders = lake.table("processed/orders", columns=["order_id"])
print(json.dumps({"rows": len(orders), "distinct": int(orders["order_id"].nunique())}))
"""


def body(name: str, rows: int) -> bytes:
    lines = (f"{name}-{i},C1,2025-03-01T10:00:00Z,shipped,10.00,EUR,2025-03-01\n" for i in range(rows))
    return H + "".join(lines).encode()


def clients(home):
    exported = dict(line.removeprefix("export ").split("=", 1) for line in lakehouse(home, "env").stdout.splitlines())
    settings = {
        "endpoint_url": exported["AWS_ENDPOINT_URL"],
        "region_name": exported["AWS_REGION"],
        "aws_access_key_id": exported["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": exported["AWS_SECRET_ACCESS_KEY"],
    }
    return boto3.client("s3", **settings), boto3.client("dynamodb", **settings)


def received(dynamodb) -> list[str]:
    page = dynamodb.scan(
        TableName=LEDGER,
        FilterExpression="#s = :r",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":r": {"S": "RECEIVED"}},
    )
    return [i["key"]["S"] for i in page["Items"]]


def burst_then_kill(home, s3, dynamodb) -> dict[str, int]:
    """Upload the burst 8 at a time; SIGKILL the stage while a file is being validated (its record RECEIVED).
    Returns the acknowledged uploads' keys with their rows."""
    files = [(f"S{i}", ROWS) for i in range(SMALL)]
    files[SMALL // 2 : SMALL // 2] = [("B1", BIG_ROWS), ("B2", BIG_ROWS)]
    acknowledged: dict[str, int] = {}
    killed = threading.Event()
    pid = json.loads((home / "local.json").read_text())["pid"]

    def upload(name: str, rows: int) -> None:
        key = f"raw/orders/ingest_date=2025-03-01/{name}.csv"
        if killed.is_set():
            return
        try:
            s3.put_object(Bucket=BUCKET, Key=key, Body=body(name, rows))
        except Exception:  # the stage is gone: never acknowledged
            return
        acknowledged[key] = rows

    def killer() -> None:  # as soon as a validator holds a file (its record RECEIVED)
        try:
            wait_until(lambda: len(acknowledged) >= SMALL // 3 and received(dynamodb), timeout=300)
        finally:
            os.killpg(pid, signal.SIGKILL)
            killed.set()

    watcher = threading.Thread(target=killer)
    watcher.start()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda f: upload(*f), files))
    watcher.join()
    assert killed.is_set()
    return acknowledged


@pytest.mark.timeout(900)
def test_a_stage_killed_during_a_burst_of_uploads_leaves_no_file_received(tmp_path, monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_SNAPSHOT_SECONDS", "3600")  # only the journal holds the burst
    monkeypatch.setenv("LAKEHOUSE_BATCHER_SECONDS", "5")  # the batcher's tick, often (its window keeps runs away)
    home = tmp_path / "home"
    lakehouse(home, "up")
    try:
        s3, dynamodb = clients(home)
        acknowledged = burst_then_kill(home, s3, dynamodb)
        lakehouse(home, "up")
        s3, dynamodb = clients(home)
        versions = [
            v
            for page in s3.get_paginator("list_object_versions").paginate(Bucket=BUCKET, Prefix="raw/orders/")
            for v in page.get("Versions", [])
        ]
        assert set(acknowledged) <= {v["Key"] for v in versions}  # every acknowledged upload survived
        assert len(versions) == len({v["Key"] for v in versions})  # each once
        file_ids = [f"{BUCKET}/{v['Key']}#{v['VersionId']}" for v in versions]

        def statuses() -> dict[str, str]:
            found = {}
            for file_id in file_ids:
                item = dynamodb.get_item(TableName=LEDGER, Key={"pk": {"S": f"file#{file_id}"}}).get("Item")
                found[file_id] = item["status"]["S"] if item else "unknown"
            return found

        # the killed validators' files wait for their lease (30 s on the local stage) and the queue's visibility
        deadline = time.monotonic() + 240
        while (open_ := [f for f, s in statuses().items() if s not in FINAL]) and time.monotonic() < deadline:
            time.sleep(1)
        assert not open_, f"files not judged after the restart: {open_}"
        announced_again = [
            f
            for f in file_ids
            if "reannounced" in dynamodb.get_item(TableName=LEDGER, Key={"pk": {"S": f"file#{f}"}})["Item"]
        ]
        assert announced_again  # the kill did leave files RECEIVED, and the tick announced them again
        lakehouse(home, "run")
        assert set(statuses().values()) == {"PROCESSED"}  # each judged VALID once, none a duplicate of itself
        done = subprocess.run(
            [sys.executable, "-c", TABLE_ROWS],
            cwd=ROOT,
            env={**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, "LAKEHOUSE_HOME": str(home)},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        expected = sum(BIG_ROWS if v["Key"].split("/")[-1].startswith("B") else ROWS for v in versions)
        assert json.loads(done.stdout) == {"rows": expected, "distinct": expected}  # every row loaded once
    finally:
        lakehouse(home, "down", "--discard")
