"""The local stage keeps its data: `down` then `up` brings back every object version, ledger item, Delta table
version, catalog table and run; a stage killed with SIGKILL comes back with everything it acknowledged (its last
snapshot and its journal) and says so; a snapshot that is corrupt or from another version is refused with what to
do, and left as it is."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from conftest import ROOT
from test_local_stage import H, R, lakehouse

pytestmark = pytest.mark.e2e

# What the stage holds, counted through the public clients (each answer is compared before and after).
INVENTORY = """
import json, boto3, lakehouse
lake = lakehouse.connect("local")
s3 = boto3.client("s3")
versions = [(v["Key"], v["VersionId"], v["Size"]) for page in s3.get_paginator("list_object_versions").paginate(
    Bucket=lake.stage.bucket) for v in page.get("Versions", [])]
files = lake.files(limit=None)
orders = {}
if "processed/orders" in lake.tables():  # the table at every version, read back
    from deltalake import DeltaTable
    latest = DeltaTable(lake.lake.processed("orders"), storage_options=lake.lake.storage_options).version()
    orders = {v: len(lake.table("processed/orders", version=v)) for v in range(latest + 1)}
tables = sorted(t["Name"] for t in boto3.client("glue").get_tables(DatabaseName=lake.stage.glue_database)["TableList"])
print(json.dumps({"versions": sorted(versions), "files": sorted(zip(files.get("file_id", []), files.get("status", []))),
                  "orders_by_version": orders, "catalog": tables}))
"""


def inventory(home) -> dict:
    env = {**os.environ, "LAKEHOUSE_HOME": str(home)}
    env = {k: v for k, v in env.items() if not k.startswith("AWS_")}
    done = subprocess.run(
        [sys.executable, "-c", INVENTORY], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def drop(home, tmp_path, name: str, body: bytes):
    path = tmp_path / name
    path.write_bytes(body)
    return lakehouse(home, "drop", str(path), "--dataset", "orders")


def test_down_and_up_bring_back_every_version_item_table_and_run(tmp_path):
    home = tmp_path / "home"
    lakehouse(home, "up")
    try:
        drop(home, tmp_path, "a.csv", H + R)
        drop(home, tmp_path, "b.csv", H + R.replace(b"O1", b"O2"))
        lakehouse(home, "run")
        before = inventory(home)
        assert before["orders_by_version"]["1"] == 2  # the table at version 1, read after the restore too
        assert len(before["files"]) == 2 and len(before["versions"]) > 10 and "raw_orders" in before["catalog"]
        stopped = lakehouse(home, "down")
        assert "its data kept in" in stopped.stderr
        started = lakehouse(home, "up")
        assert "restored its data as of" in started.stderr and "killed" not in started.stderr
        after = inventory(home)
        added = {tuple(v) for v in after.pop("versions")} - {tuple(v) for v in before.pop("versions")}
        assert after == before  # every ledger record, table version and catalog table
        # every object version is back; `up` provisions again, which records the deployment (and nothing else)
        assert {key.rsplit("/", 1)[0] for key, _, _ in added} <= {"reports/deployments"}, added
        assert "run-000001" in lakehouse(home, "executions").stdout  # the runs are kept too
        drop(home, tmp_path, "c.csv", H + R.replace(b"O1", b"O3"))  # and the stage goes on from there
    finally:
        lakehouse(home, "down", "--discard")
    lakehouse(home, "up")
    try:
        assert inventory(home)["files"] == []  # --discard forgot it
    finally:
        lakehouse(home, "down", "--discard")


def test_a_stage_killed_between_two_drops_comes_back_with_everything_it_acknowledged(tmp_path, monkeypatch):
    """The first drop is in a snapshot; the second drop and a pipeline run after it are only in the journal when
    the stage is killed (a power loss: no `down`, no last snapshot). Both come back as they were."""
    monkeypatch.setenv("LAKEHOUSE_SNAPSHOT_SECONDS", "3600")  # no periodic snapshot during the test
    home = tmp_path / "home"
    lakehouse(home, "up")
    try:
        drop(home, tmp_path, "a.csv", H + R)
        lakehouse(home, "down")  # the snapshot holds the first drop
        lakehouse(home, "up")
        drop(home, tmp_path, "b.csv", H + R.replace(b"O1", b"O2"))
        lakehouse(home, "run")
        before = inventory(home)
        assert len(before["files"]) == 2 and before["orders_by_version"]
        pid = json.loads((home / "local.json").read_text())["pid"]
        os.killpg(pid, signal.SIGKILL)
        started = lakehouse(home, "up")
        said = " ".join(started.stderr.split())
        assert "stopped without `lakehouse down`" in said and "were applied again from its journal" in said, said
        assert "not restored" not in said
        after = inventory(home)
        added = {tuple(v) for v in after.pop("versions")} - {tuple(v) for v in before.pop("versions")}
        assert after == before  # both drops' ledger records, the run's table versions, the catalog
        assert {key.rsplit("/", 1)[0] for key, _, _ in added} <= {"reports/deployments"}, added
        drop(home, tmp_path, "c.csv", H + R.replace(b"O1", b"O3"))  # and the stage goes on from there
    finally:
        lakehouse(home, "down", "--discard")


def test_a_corrupt_or_foreign_snapshot_is_refused_with_what_to_do_and_left_alone(tmp_path):
    home = tmp_path / "home"
    lakehouse(home, "up")
    drop(home, tmp_path, "a.csv", H + R)
    lakehouse(home, "down")
    manifest_path = home / "snapshot" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    state = home / "snapshot" / manifest["state"]
    state.write_bytes(state.read_bytes()[:-10] + b"0123456789")  # ten bytes at the end changed
    broken = state.read_bytes()
    refused = lakehouse(home, "up", check=False)
    said = " ".join(refused.stderr.split())  # as one line (the console wraps it)
    assert refused.returncode == 1 and "missing or corrupt (checksum)" in said
    assert "`lakehouse down --discard` forgets it" in said
    assert state.read_bytes() == broken and manifest_path.exists()  # the data beside it untouched
    manifest_path.write_text(json.dumps({**manifest, "format": 0}))
    older = lakehouse(home, "up", check=False)
    assert older.returncode == 1 and "was made by another version (format 0" in " ".join(older.stderr.split())
    lakehouse(home, "down", "--discard")
    lakehouse(home, "up")
    try:
        assert inventory(home)["files"] == []
    finally:
        lakehouse(home, "down", "--discard")
