"""Least privilege per function (chalicelib/stage/roles.py): a role per Lambda, per Glue job kind and for the state
machine, each allowing what its code calls and no more. Handlers run on moto with every call recorded and held
against their own role's policy (tests/policy_calls.py); the documents are checked for what must never be there."""

from __future__ import annotations

import json

import pytest
from conftest import CONFIG
from moto.iam.access_control import IAMPolicy, PermissionResult
from policy_calls import Places, Recorder, denied

import app
from chalicelib.lifecycle.rules import definition_text
from chalicelib.names import GLUE_KINDS, LAMBDA_FUNCTIONS
from chalicelib.stage import roles

ACCOUNT = "123456789012"  # moto's
WRITES = ("Put", "Delete", "Update", "Create", "Start", "Send", "Publish", "Copy", "Abort", "Tag", "Batch")


def _lifecycle(stage) -> list[str]:
    files = {p.name: definition_text(p.read_bytes()) for p in sorted((CONFIG / "lifecycle").glob("*.toml"))}
    return roles.lifecycle_buckets(files, stage.bucket)


def _policies(settings, stage) -> dict[str, dict]:
    return roles.lambda_policies(settings, stage, ACCOUNT, _lifecycle(stage))


def _allows(policy, action: str, resource: str) -> bool:
    return IAMPolicy(json.dumps(policy)).is_action_permitted(action, resource) == PermissionResult.PERMITTED


def _actions(policy) -> set[str]:
    return {a for st in policy["Statement"] for a in st["Action"]}


def test_a_role_for_every_lambda_of_the_app_named_as_chalice_names_it(stage):
    chalice = app.app
    functions = {f.name for f in chalice.pure_lambda_functions} | {e.name for e in chalice.event_sources}
    assert set(LAMBDA_FUNCTIONS) == functions | {"api_handler"}  # every route is the one API handler
    assert roles.role_name(stage, "api_handler") == "serverless-lakehouse-local-api_handler"  # `api` in it
    assert roles.role_name(stage, "process") == f"{stage.glue_role}-process"
    assert roles.role_name(stage, "state_machine") == stage.pipeline_role
    with pytest.raises(ValueError, match="no role for component 'etl': known are validate, batcher"):
        roles.role_name(stage, "etl")


def test_every_component_has_its_role_name_trust_and_policy_for_the_local_stage(settings, stage):
    components = roles.component_roles(settings, stage, ACCOUNT)
    assert list(components) == [*LAMBDA_FUNCTIONS, *GLUE_KINDS, "state_machine"]
    services = {"state_machine": "states.amazonaws.com", **dict.fromkeys(GLUE_KINDS, "glue.amazonaws.com")}
    for component, (name, trust, policy) in components.items():
        assert name == roles.role_name(stage, component)
        assert trust["Statement"][0]["Principal"] == {"Service": services.get(component, "lambda.amazonaws.com")}
        assert policy["Statement"], component


def test_a_stage_that_brings_its_glue_role_runs_every_kind_as_it_and_deploy_makes_none(settings, stage):
    from dataclasses import replace

    brought = replace(stage, glue_role="arn:aws:iam::123456789012:role/ops/our-glue")
    assert {roles.role_name(brought, k) for k in GLUE_KINDS} == {"our-glue"}
    assert set(roles.declared_roles(settings, brought, ACCOUNT)) == {stage.pipeline_role}


def test_the_api_may_only_read(settings, stage):
    """The internet-facing API: the ledger's summaries, the latest reports, the configuration. Nothing it may
    write, delete, start or publish (its logs aside)."""
    api = _policies(settings, stage)["api_handler"]
    verbs = {a: a.split(":")[1] for a in _actions(api) if not a.startswith("logs:")}
    writes = {a for a, verb in verbs.items() if verb.startswith(WRITES) and not verb.startswith("BatchGet")}
    assert writes == set()
    lake = f"arn:aws:s3:::{stage.bucket}"
    for action, resource in (
        ("s3:PutObject", f"{lake}/raw/orders/a.csv"),
        ("s3:DeleteObject", f"{lake}/raw/orders/a.csv"),
        ("s3:GetObject", f"{lake}/processed/orders/part-0.parquet"),  # the data itself: not the API's business
        ("dynamodb:PutItem", f"arn:aws:dynamodb:{stage.region}:{ACCOUNT}:table/{stage.ledger_table}"),
        ("states:StartExecution", stage.state_machine_arn(ACCOUNT)),
    ):
        assert not _allows(api, action, resource), action


def test_lifecycle_rules_only_on_the_buckets_the_definitions_name(settings, stage):
    named = ["lakehouse-local-lake", "partner-exports"]
    policy = roles.lambda_policies(settings, stage, ACCOUNT, named)["lifecycle_sync"]
    (statement,) = [st for st in policy["Statement"] if "s3:PutLifecycleConfiguration" in st["Action"]]
    assert statement["Resource"] == [f"arn:aws:s3:::{b}" for b in named]
    assert not _allows(policy, "s3:PutLifecycleConfiguration", "arn:aws:s3:::someone-elses-bucket")
    everyone = roles.lambda_policies(settings, stage, ACCOUNT, named)
    for function, other in everyone.items():  # nobody else touches lifecycle rules, and nobody on every bucket
        assert "arn:aws:s3:::*" not in json.dumps(other), function
        if function not in ("lifecycle_sync", "drift_report"):
            assert not {"s3:GetLifecycleConfiguration", "s3:PutLifecycleConfiguration"} & _actions(other), function
    # the shipped definitions name the lake alone
    assert _lifecycle(stage) == [stage.bucket]
    nothing = roles.lambda_policies(settings, stage, ACCOUNT, [])["lifecycle_sync"]
    assert "s3:PutLifecycleConfiguration" not in _actions(nothing)  # an empty Resource list is invalid IAM


def test_only_the_batcher_starts_runs_and_only_the_archivers_delete(settings, stage):
    policies = _policies(settings, stage)
    starters = {f for f, p in policies.items() if "states:StartExecution" in _actions(p)}
    deleters = {f for f, p in policies.items() if "s3:DeleteObject" in _actions(p)}
    assert (starters, deleters) == ({"batcher"}, {"finish_run", "fail_run"})
    assert not any("dynamodb:DeleteItem" in _actions(p) for p in policies.values())  # only the CLI forgets files
    lake = f"arn:aws:s3:::{stage.bucket}"
    fail = policies["fail_run"]
    assert _allows(fail, "s3:DeleteObject", f"{lake}/{settings.zones.rejected_rows('orders', 3)}")
    assert not _allows(fail, "s3:DeleteObject", f"{lake}/rejected/orders/a.csv")  # a rejected file stays
    for kind in GLUE_KINDS:
        glue = roles.glue_policy(settings, stage, ACCOUNT, kind)
        assert not _allows(glue, "s3:DeleteObject", f"{lake}/raw/orders/a.csv"), kind
        assert _allows(glue, "s3:GetObject", f"{lake}/raw/orders/a.csv") == (kind != "housekeeping"), kind


def _held(recorder: Recorder, policy, stage) -> list[str]:
    assert recorder.calls, "nothing was recorded"
    return denied(policy, recorder.calls, Places(stage.region, ACCOUNT, stage.athena_workgroup))


def test_the_api_handlers_calls_are_all_its_role_allows(client, settings, stage):
    recorder = Recorder.of_every_new_client()
    assert client.http.get("/status").status_code == 200
    assert client.http.get("/cost?scenario=light").status_code == 200
    assert _held(recorder, _policies(settings, stage)["api_handler"], stage) == []


def test_the_validator_and_the_batchers_calls_are_all_their_roles_allow(client, provisioned, settings, stage):
    from test_app import H, R, sqs_event

    from lakehouse.localstage import s3_notification

    good = provisioned.s3.put_object(Bucket=stage.bucket, Key="raw/orders/a.csv", Body=H + R)["VersionId"]
    bad = provisioned.s3.put_object(Bucket=stage.bucket, Key="raw/orders/b.csv", Body=b"x")["VersionId"]
    notifications = [s3_notification(stage.bucket, f"raw/orders/{k}.csv", v) for k, v in (("a", good), ("b", bad))]
    policies = _policies(settings, stage)
    recorder = Recorder.of_every_new_client()
    client.lambda_.invoke("validate", sqs_event(*notifications))  # a valid file and a rejected one
    assert {"sqs:SendMessage", "s3:PutObject", "s3:CopyObject"} <= recorder.operations()  # announced, rejected
    assert _held(recorder, policies["validate"], stage) == []
    recorder = Recorder.of_every_new_client()
    tick = client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event", detail={}, resources=[])
    assert client.lambda_.invoke("batcher", tick).payload["action"] in ("started", "waiting")
    assert _held(recorder, policies["batcher"], stage) == []


def test_the_nightly_lambdas_calls_are_all_their_roles_allow(client, provisioned, settings, stage):
    for path in sorted((CONFIG / "lifecycle").glob("*.toml")):  # `lakehouse lifecycle push`
        provisioned.s3.put_object(Bucket=stage.bucket, Key=f"config/lifecycle/{path.name}", Body=path.read_bytes())
    policies = _policies(settings, stage)
    tick = client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event", detail={}, resources=[])
    for function in ("lifecycle_sync", "drift_report"):
        recorder = Recorder.of_every_new_client()
        client.lambda_.invoke(function, tick)
        if function == "lifecycle_sync":
            assert {"s3:GetBucketLifecycleConfiguration", "s3:PutBucketLifecycleConfiguration"} <= recorder.operations()
        assert _held(recorder, policies[function], stage) == [], function


def test_the_run_steps_calls_are_all_their_roles_allow(client, provisioned, settings, stage):
    """A run failed (its batch's rejected rows dropped), then run again and finished (its raw file archived): each
    step's calls, and the batcher's start of each run, within their own roles."""
    from test_app import H, R, sqs_event

    from chalicelib.ledger import DynamoDBLedger
    from lakehouse.localstage import s3_notification

    policies = _policies(settings, stage)
    config = provisioned.s3.get_object(Bucket=stage.bucket, Key="config/lakehouse.toml")["Body"].read().decode()
    provisioned.s3.put_object(  # a run starts as soon as a file waits
        Bucket=stage.bucket, Key="config/lakehouse.toml", Body=config.replace("start_files = 1000", "start_files = 1")
    )
    version = provisioned.s3.put_object(Bucket=stage.bucket, Key="raw/orders/a.csv", Body=H + R)["VersionId"]
    client.lambda_.invoke("validate", sqs_event(s3_notification(stage.bucket, "raw/orders/a.csv", version)))
    tick = client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event", detail={}, resources=[])
    ledger = DynamoDBLedger(provisioned.dynamodb, stage.ledger_table)

    made: dict[str, set[str]] = {}

    def step(function: str, event) -> dict:
        recorder = Recorder.of_every_new_client()
        payload = client.lambda_.invoke(function, event).payload
        assert _held(recorder, policies[function], stage) == [], function
        made[function] = recorder.operations()
        return payload

    first = step("batcher", tick)
    assert first["action"] == "started"
    step("refresh_tables", {"run": first["run"]})
    failed = step("fail_run", {"run": first["run"], "error": {"Error": "States.TaskFailed", "Cause": "the job"}})
    assert failed["files_failed"] == 1 and "s3:DeleteObject" in made["fail_run"]  # its rejected rows
    (record,) = ledger.files()
    assert ledger.requeue(record.file_id)  # `lakehouse requeue`
    second = step("batcher", tick)
    assert second["action"] == "started" and second["run"] != first["run"]
    ledger.set_file(record.file_id, status="PROCESSED")  # as the run's Glue job would
    assert step("finish_run", {"run": second["run"]})["archived"] == 1
    assert {"s3:CopyObject", "s3:DeleteObject"} <= made["finish_run"]  # copied to archive/, hidden in raw/


@pytest.mark.parametrize("stage_name", ["dev", "prod"])
def test_role_name_is_the_role_chalice_deploys_each_function_with(settings, stage_name):
    """Chalice's own deploy planner, on the committed .chalice/config.json: each function's role, by name."""
    from chalice.config import Config
    from chalice.deploy import models
    from chalice.deploy.appgraph import ApplicationGraphBuilder, DependencyBuilder
    from conftest import ROOT

    disk = json.loads((ROOT / ".chalice" / "config.json").read_text())
    config = Config(
        stage_name, config_from_disk=disk, user_provided_params={"chalice_app": app.app, "project_dir": "."}
    )
    graph = DependencyBuilder().build_dependencies(ApplicationGraphBuilder().build(config, stage_name))
    planned = {r.resource_name: r.role.role_name for r in graph if isinstance(r, models.LambdaFunction)}
    stage = settings.stage(stage_name)
    assert planned == {f: roles.role_name(stage, f) for f in LAMBDA_FUNCTIONS}
    policy_files = {r.resource_name: r.policy.filename for r in graph if isinstance(r, models.ManagedIAMRole)}
    assert {f"{f}_role": f"./.chalice/policy-{stage_name}-{f}.json" for f in LAMBDA_FUNCTIONS} == policy_files
