"""CLI commands that need no running stage, and the demo itself (the README's promise)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import ROOT

from lakehouse.cli import main

H = b"order_id,customer_id,order_ts,status,total_amount,currency,order_date\n"
R = b"O1,C1,2025-03-01T10:00:00Z,shipped,10.00,EUR,2025-03-01\n"


def test_check_validates_a_local_file_like_the_lambda(tmp_path):
    good, bad = tmp_path / "orders_1.csv", tmp_path / "whatever.csv"
    good.write_bytes(H + R)
    bad.write_bytes(H.replace(b",", b";") + R)
    ok = CliRunner().invoke(main, ["check", str(good)])
    assert ok.exit_code == 0 and json.loads(ok.output)["rows"] == 1
    rejected = CliRunner().invoke(main, ["check", str(bad), "--dataset", "orders"])
    assert rejected.exit_code == 2 and json.loads(rejected.output)["code"] == "WRONG_DELIMITER"


def test_check_says_which_datasets_exist_when_it_cannot_tell(tmp_path):
    path = tmp_path / "inventory.csv"
    path.write_bytes(b"sku\nA\n")
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.exit_code == 2 and "pass --dataset (one of clickstream, customers" in result.output


@pytest.mark.e2e
def test_the_demo_runs_end_to_end_and_passes(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["LAKEHOUSE_HOME"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "lakehouse.cli", "demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "summary: 2 duplicate, 12 rejected, 9 valid" in result.stdout
    assert "no new entry, no second acceptance" in result.stderr and "demo passed" in result.stderr
    assert "every planted anomaly was rejected with its reason, and nothing else was" in result.stderr
    assert not (tmp_path / "local.json").exists()  # it stopped the stage it started


@pytest.mark.e2e
def test_chalice_package_wires_the_sqs_trigger_and_stays_small(tmp_path):
    """`chalice package` (not only `chalice deploy`) must produce the validator with its queue trigger."""
    import zipfile

    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    subprocess.run(
        [str(Path(sys.executable).parent / "chalice"), "package", "--stage", "prod", str(tmp_path / "pkg")],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    template = json.loads((tmp_path / "pkg" / "sam.json").read_text())
    function = template["Resources"]["Validate"]["Properties"]
    (event,) = function["Events"].values()
    assert event["Type"] == "SQS" and "lakehouse-prod-ingest" in event["Properties"]["Queue"]["Fn::Sub"]
    assert function["Environment"]["Variables"]["LAKEHOUSE_STAGE"] == "prod"
    with zipfile.ZipFile(tmp_path / "pkg" / "deployment.zip") as package:
        unzipped = sum(info.file_size for info in package.infolist())
        names = set(package.namelist())
    assert "app.py" in names and "chalicelib/validation.py" in names
    assert not any(n.startswith(("pyarrow/", "pandas/", "deltalake/", "moto/")) for n in names)
    assert unzipped < 30 * 1024**2  # the rest of Lambda's 250 MB is for the pyarrow layer
