"""Strict types (issue 26, item 7): what the checker made explicit, held at run time."""

import pytest

from chalicelib.aws import ClientSettings, clear_cache, client
from chalicelib.errors import ConfigError


def test_an_unknown_retry_mode_in_the_environment_is_refused_naming_it(monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_RETRY_MODE", "agressive")
    with pytest.raises(ConfigError, match=r"LAKEHOUSE_RETRY_MODE = 'agressive': must be one of standard, adaptive"):
        ClientSettings.from_env("us-east-1")


def test_clients_keep_boto3s_customisations():
    """Clients come from the botocore session boto3 set up: S3's transfer methods are there."""
    clear_cache()
    s3 = client("s3", ClientSettings(region="eu-west-1"))
    assert callable(s3.upload_file) and s3.meta.region_name == "eu-west-1"
    assert client("s3", ClientSettings(region="eu-west-1")) is s3


def test_the_catalog_needs_s3_for_the_delta_tables_but_not_for_the_raw_ones(settings):
    from chalicelib.stage.catalog import declared_tables

    stage = settings.stage("local")
    assert {t["Name"] for t in declared_tables(settings, stage, None, ("raw",))} >= {"raw_orders"}
    with pytest.raises(ValueError, match="the processed tables are found by listing the bucket"):
        declared_tables(settings, stage, None, ("processed",))


def test_an_athena_engine_without_glue_says_it_cannot_list_tables():
    from chalicelib.athena import Athena, QueryError

    with pytest.raises(QueryError, match="without a Glue client"):
        Athena(object(), "db", "wg", "s3://b/r/").tables()


def test_a_view_helper_outside_a_request_says_so(monkeypatch):
    import app

    monkeypatch.setattr(app.app, "current_request", None, raising=False)  # an earlier test may have left one
    with pytest.raises(RuntimeError, match="no current request"):
        app._request()


def test_a_signed_request_without_aws_credentials_says_so(monkeypatch, settings):
    """SigV4 with no credentials was botocore's NoCredentialsError from inside the signer."""
    import deploy.chalice_project as project
    from chalicelib.errors import LakehouseError
    from lakehouse.smoke import deployed_get

    monkeypatch.setattr(project, "deployed_api_url", lambda stage: "https://example.invalid/api/")
    monkeypatch.setattr(project, "chalice_stage_env", lambda stage: {"LAKEHOUSE_API_AUTH": "iam"})
    for var in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(LakehouseError, match="no AWS credentials to sign the request"):
        deployed_get(settings.stage("local"), "/status")


def _states(machine):
    for name, state in machine["States"].items():
        yield name, state
        for inner in [state.get("ItemProcessor") or state.get("Iterator") or {}, *state.get("Branches", [])]:
            if inner:
                yield from _states(inner)


def test_the_state_machine_reads_only_what_the_steps_answer():
    """Each `$.Payload.<key>` a step's ResultSelector reads is a key of the TypedDict its Lambda returns, and
    the roll-back Map reads only keys of a planned batch: the types and the definition cannot drift apart."""
    import json
    import re
    from pathlib import Path
    from typing import get_type_hints

    from chalicelib.ledger.records import PlannedBatch
    from chalicelib.pipeline import reports

    answers = {
        "${QualityCheckFunctionArn}": reports.QualityReport,
        "${RefreshTablesFunctionArn}": reports.TablesRefreshed,
        "${FinishRunFunctionArn}": reports.RunFinished,
        "${FailRunFunctionArn}": reports.RunFailed,
    }
    machine = json.loads((Path(__file__).parent.parent / "statemachine" / "pipeline.asl.json").read_text())
    seen = set()
    for name, state in _states(machine):
        function = state.get("Parameters", {}).get("FunctionName")
        if function in answers:
            seen.add(function)
            read = {m for v in state.get("ResultSelector", {}).values() for m in re.findall(r"\$\.Payload\.(\w+)", v)}
            assert read <= set(get_type_hints(answers[function])), name
        if name == "RollBackBatch":
            read = set(re.findall(r"(?<!\$)\$\.(\w+)", json.dumps(state["Parameters"])))
            assert read == {"job", "batch"} and read <= set(get_type_hints(PlannedBatch)), read
    assert seen == set(answers)
