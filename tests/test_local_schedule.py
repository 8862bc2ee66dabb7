"""The local stage plays the batcher schedule: accepted files go through the pipeline with nobody running it."""

import json
import os

import pytest
from test_local_stage import H, R, lakehouse, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_BATCHER_SECONDS", "1")
    monkeypatch.setenv("LAKEHOUSE_CONFIG_TTL_SECONDS", "1")  # see the pushed configuration at once
    yield tmp_path
    lakehouse(tmp_path, "down")


def test_dropped_files_are_processed_by_the_schedule_once_the_window_closes(home, tmp_path):
    import boto3

    lakehouse(home, "up")
    env = dict(line.removeprefix("export ").split("=", 1) for line in lakehouse(home, "env").stdout.splitlines())
    s3 = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    # the schedule reads the configuration published in the bucket, as the batcher Lambda does
    bucket = env["LAKEHOUSE_BUCKET"]
    config = s3.get_object(Bucket=bucket, Key="config/lakehouse.toml")["Body"].read().decode()
    s3.put_object(
        Bucket=bucket, Key="config/lakehouse.toml", Body=config.replace("window_seconds = 300", "window_seconds = 2")
    )
    orders = tmp_path / "orders_scheduled.csv"
    orders.write_bytes(H + R)
    lakehouse(home, "drop", str(orders))

    def archived():  # the run's last step archives the file
        files = json.loads(lakehouse(home, "ledger", "--json").stdout)
        return [f for f in files if f["status"] == "PROCESSED" and f.get("archived_key")]

    (done,) = wait_until(archived, timeout=120)
    assert done["archived_key"].startswith("archive/orders/")
    (run,) = json.loads(lakehouse(home, "executions", "--json").stdout)
    assert run["status"] == "SUCCEEDED" and run["pid"] != os.getpid()
    assert "window_seconds = 2" in (home / "local.log").read_text()
