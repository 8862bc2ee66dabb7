"""Shared fixtures. Unit tests use moto's in-process `mock_aws`; end-to-end tests use the local stage."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The suite's own configuration, a copy of config/ as it was: a user's change to config/ (a new dataset, the documented
# one-file change) breaks no test. LAKEHOUSE_CONFIG points the CLI at it, in this process and in the ones it starts.
CONFIG = ROOT / "tests" / "fixtures" / "config"
SHIPPED_CONFIG = ROOT / "config"  # only for the tests of the shipped configuration itself (see test_fixture_config.py)
os.environ["LAKEHOUSE_CONFIG"] = str(CONFIG)
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "glue_scripts"))

from chalicelib import aws  # noqa: E402
from chalicelib.aws import Clients  # noqa: E402
from chalicelib.config import config_files, load_settings  # noqa: E402
from chalicelib.ingest.ingestor import Ingestor  # noqa: E402
from chalicelib.ledger import DynamoDBLedger  # noqa: E402
from deploy.provision import provision  # noqa: E402

os.environ.setdefault("LAKEHOUSE_API_AUTH", "none")  # as the local stage's Chalice config says, before app.py loads


@pytest.fixture(scope="session")
def settings():
    return load_settings(CONFIG)


@pytest.fixture(scope="session")
def sail():
    """The Sail server of this test process, one for every test that uses Spark. Its tasks read S3 with credentials
    from its environment, taken when it starts (a Glue executor has its job's role): the local stage's, set here,
    since whichever test starts it first (test_delta_readers before test_spark) may have none set."""
    from lakehouse_etl import spark

    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        return spark.local_session()


@pytest.fixture
def aws_env(monkeypatch):
    """In-process moto with dummy credentials; no endpoint override."""
    from moto import mock_aws

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    aws.clear_cache()
    with mock_aws():
        yield
    aws.clear_cache()


@pytest.fixture
def stage(settings):
    return settings.stage("local")


@pytest.fixture
def provisioned(aws_env, settings, stage):
    """The local stage's resources, made by the real provisioning code, in in-process moto."""
    clients = Clients.for_stage(stage)
    provision(settings, stage, clients, config_files(CONFIG), progress=lambda _: None)
    return clients


@pytest.fixture
def client(provisioned):
    """The Chalice app's test client on the local stage's settings, over the provisioned (moto) stage."""
    from chalice.test import Client

    import app
    from chalicelib import runtime

    runtime.reset()
    with Client(app.app, stage_name="local", project_dir=str(ROOT)) as chalice_client:
        yield chalice_client
    runtime.reset()


@pytest.fixture
def api_url(provisioned, monkeypatch):
    """The API and dashboard served over HTTP by `lakehouse serve`'s server (Chalice's local server) in a
    thread, on the provisioned (moto) local stage."""
    import threading

    from chalicelib import runtime
    from deploy.chalice_project import chalice_stage_env
    from lakehouse.serve import api_server

    for name, value in chalice_stage_env("local").items():  # the server sets these too; monkeypatch puts them back
        monkeypatch.setenv(name, value)
    server = api_server("127.0.0.1", 0, "local")
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server.server_address[1]}"
    server.shutdown()
    thread.join(5)
    runtime.reset()


@pytest.fixture
def ingestor(provisioned, settings, stage):
    return Ingestor(
        settings,
        stage,
        provisioned.s3,
        provisioned.sqs,
        DynamoDBLedger(provisioned.dynamodb, stage.ledger_table, stage.lease_seconds),
    )


@pytest.fixture(scope="session")
def moto_endpoint():
    """moto in server mode in this process: a real HTTP endpoint, which delta-rs (Rust) needs. Served as
    the local stage serves it (DynamoDB requests serialised, so conditional writes are atomic)."""
    import socket

    from lakehouse.localstage import serve_moto

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = serve_moto(port)
    yield f"http://127.0.0.1:{port}"
    server.shutdown()


def fresh_stage(moto_endpoint, settings, stage):
    """Empty the moto server and provision the stage on it again (the environment points at it already)."""
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")).close()
    provision(settings, stage, Clients.for_stage(stage), config_files(CONFIG), progress=lambda _: None)


@pytest.fixture
def lake_job(moto_endpoint, monkeypatch, settings, stage):
    """A freshly provisioned local stage on the moto server, and an ETL Job on it."""
    from lakehouse_etl.processed import Job

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto_endpoint,
    }.items():
        monkeypatch.setenv(name, value)
    aws.clear_cache()
    fresh_stage(moto_endpoint, settings, stage)
    yield Job.for_stage(settings, "local")
    aws.clear_cache()


# Fixtures that start a local stage (moto in server mode, which delta-rs and the Glue job processes need) or a
# real HTTP server: a test that uses one is end-to-end, whatever its module says.
E2E_FIXTURES = {"moto_endpoint", "lake_job", "api_url"}


def pytest_collection_modifyitems(items):
    for item in items:
        if E2E_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)
    if os.environ.get("LAKEHOUSE_SKIP_E2E"):
        skip = pytest.mark.skip(reason="LAKEHOUSE_SKIP_E2E is set")
        for item in items:
            if "e2e" in item.keywords:
                item.add_marker(skip)
