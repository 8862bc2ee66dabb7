"""Item 7 of issue 27: `lakehouse doctor` asks what only an account answers: Step Functions' validation of the
rendered definition, Lake Formation's default grants, Glue's and Athena's quotas. On the local stage (moto lacks
some of these APIs) a check says "not available on this stage" instead of failing; the AWS answers are stubbed."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from chalicelib.aws import Clients
from lakehouse.doctor import run_checks

IAM_ALLOWED = [{"Principal": {"DataLakePrincipalIdentifier": "IAM_ALLOWED_PRINCIPALS"}, "Permissions": ["ALL"]}]
NEW = ("ledger table", "state machine", "lake formation", "glue quotas", "athena quotas")


def _checks(settings, stage, clients, lakeformation=None, quotas=None):
    lam = boto3.client("lambda", region_name=stage.region)
    with Stubber(lam) as stub:
        stub.add_response("get_account_settings", {"AccountLimit": {"ConcurrentExecutions": 1000}})
        checks = run_checks(
            settings,
            stage,
            clients,
            lam,
            python=(3, 12),
            cli_region=stage.region,
            lakeformation=lakeformation,
            quotas=quotas,
        )
    return {c.name: c for c in checks}


def test_on_the_local_stage_what_moto_lacks_is_not_available_and_lake_formation_warns(provisioned, settings, stage):
    checks = _checks(settings, stage, provisioned)
    assert checks["ledger table"].ok and not checks["ledger table"].warn
    for name in ("state machine", "glue quotas", "athena quotas"):  # moto lacks these: a warning, never a FIX
        assert checks[name].ok and checks[name].warn, checks[name]
        assert checks[name].detail.startswith("not available on this stage"), checks[name]
    assert "ValidateStateMachineDefinition" in checks["state machine"].detail
    lake = checks["lake formation"]  # moto answers the account's default settings
    assert lake.ok and lake.warn and "IAM_ALLOWED_PRINCIPALS is still granted" in lake.detail
    assert "Lake Formation permissions are not enforced" in lake.detail


def _quota_answers(stub, service, name, default, applied=None):
    code = f"L-{service.upper()}"
    stub.add_response(
        "list_aws_default_service_quotas",
        {
            "Quotas": [
                {"QuotaName": "Something else", "QuotaCode": "L-X", "Value": 1.0},
                {"QuotaName": name, "QuotaCode": code, "Value": default},
            ]
        },
        {"ServiceCode": service},
    )
    if applied is None:
        stub.add_client_error(
            "get_service_quota", "NoSuchResourceException", expected_params={"ServiceCode": service, "QuotaCode": code}
        )
    else:
        stub.add_response(
            "get_service_quota",
            {"Quota": {"QuotaName": name, "Value": applied}},
            {"ServiceCode": service, "QuotaCode": code},
        )


@pytest.fixture
def aws_stage(aws_env, settings):
    settings = settings.for_account("123456789012")
    return settings, settings.stage("dev")


def test_on_aws_doctor_reads_the_definition_check_lake_formation_and_the_quotas(aws_stage):
    settings, stage = aws_stage
    clients = Clients.for_stage(stage)
    lakeformation = boto3.client("lakeformation", region_name=stage.region)
    quotas = boto3.client("service-quotas", region_name=stage.region)
    with Stubber(clients.stepfunctions) as sfn, Stubber(lakeformation) as lf, Stubber(quotas) as sq:
        sfn.add_response("validate_state_machine_definition", {"result": "OK", "diagnostics": []})
        lf.add_response(
            "get_data_lake_settings",
            {
                "DataLakeSettings": {
                    "DataLakeAdmins": [],
                    "CreateDatabaseDefaultPermissions": IAM_ALLOWED,
                    "CreateTableDefaultPermissions": IAM_ALLOWED,
                }
            },
        )
        _quota_answers(sq, "glue", "Max concurrent job runs per account", 50.0)  # the default applies
        _quota_answers(sq, "glue", "Max task DPUs per account", 1000.0, applied=200.0)
        _quota_answers(sq, "athena", "Active DML queries", 200.0)
        checks = _checks(settings, stage, clients, lakeformation, quotas)
    assert checks["state machine"].ok and checks["state machine"].detail == "ValidateStateMachineDefinition: OK"
    assert checks["lake formation"].warn and "decided by IAM policies alone" in checks["lake formation"].detail
    datasets = len(settings.datasets)
    dpus = datasets * settings.pipeline.spark_max_workers
    assert checks["glue quotas"].ok and not checks["glue quotas"].warn
    assert checks["glue quotas"].detail == (f"50 concurrent job runs (need {datasets}), 200 DPUs (need up to {dpus})")
    assert checks["athena quotas"].ok and "200 active DML queries" in checks["athena quotas"].detail


def test_on_aws_doctor_says_what_to_fix_when_the_account_refuses(aws_stage):
    settings, stage = aws_stage
    clients = Clients.for_stage(stage)
    lakeformation = boto3.client("lakeformation", region_name=stage.region)
    quotas = boto3.client("service-quotas", region_name=stage.region)
    diagnostic = {
        "severity": "ERROR",
        "code": "SCHEMA_VALIDATION_FAILED",
        "message": "bad field",
        "location": "/States/Notify",
    }
    with Stubber(clients.stepfunctions) as sfn, Stubber(lakeformation) as lf, Stubber(quotas) as sq:
        sfn.add_response("validate_state_machine_definition", {"result": "FAIL", "diagnostics": [diagnostic]})
        lf.add_response(
            "get_data_lake_settings",
            {
                "DataLakeSettings": {
                    "DataLakeAdmins": [],
                    "CreateDatabaseDefaultPermissions": [],
                    "CreateTableDefaultPermissions": [],
                }
            },
        )
        _quota_answers(sq, "glue", "Max concurrent job runs per account", 2.0, applied=3.0)
        _quota_answers(sq, "glue", "Max task DPUs per account", 10.0)
        sq.add_client_error("list_aws_default_service_quotas", "AccessDeniedException", "not allowed")
        checks = _checks(settings, stage, clients, lakeformation, quotas)
    assert not checks["state machine"].ok
    assert checks["state machine"].detail == "ERROR SCHEMA_VALIDATION_FAILED at /States/Notify: bad field"
    lake = checks["lake formation"]
    assert not lake.ok and "the stage's roles (Glue jobs, crawlers, Lambdas" in lake.detail
    glue = checks["glue quotas"].detail
    assert not checks["glue quotas"].ok and f"concurrent job runs: 3, a run may need {len(settings.datasets)}" in glue
    assert "DPUs: 10, a run may need" in glue
    athena = checks["athena quotas"]  # an AWS refusal is a failed check naming it, not "not available"
    assert not athena.ok and not athena.warn and athena.detail.startswith("AccessDeniedException: ")


def test_on_aws_an_api_error_is_never_taken_for_a_missing_emulation(aws_stage):
    """Only the local stage degrades: on AWS a 500 from Step Functions is a failed check."""
    settings, stage = aws_stage
    clients = Clients.for_stage(stage)
    with Stubber(clients.stepfunctions) as sfn:
        sfn.add_client_error("validate_state_machine_definition", "500", "Internal", http_status_code=500)
        checks = _checks(settings, stage, clients)
    assert not checks["state machine"].ok and not checks["state machine"].warn


def test_the_deployer_policy_allows_every_call_the_migration_doctor_and_the_costs_step_make(aws_stage):
    """deploy/deployer-policy.json (what the README asks the deploying user to have) covers the ledger migration of
    an old table, doctor's account checks and smoke's costs step: each call is recorded, the answers stubbed."""
    import fnmatch
    import json

    from conftest import ROOT
    from test_deploy import _iam_action, statements
    from test_ledger_migration import create_old_table

    from chalicelib.ledger import DynamoDBLedger, FileRecord
    from chalicelib.ledger.migration import migrate
    from lakehouse.smoke_costs import gate_scans, glue_job_runs

    settings, stage = aws_stage
    clients, calls = Clients.for_stage(stage), set()
    lakeformation = boto3.client("lakeformation", region_name=stage.region)
    quotas = boto3.client("service-quotas", region_name=stage.region)
    glue, athena = boto3.client("glue", region_name=stage.region), boto3.client("athena", region_name=stage.region)
    for service_client in (*vars(clients).values(), lakeformation, quotas, glue, athena):
        service_client.meta.events.register(
            "before-parameter-build", lambda model, event_name, **_: calls.add((event_name.split(".")[1], model.name))
        )
    ddb = clients.dynamodb
    create_old_table(ddb, stage)
    DynamoDBLedger(ddb, stage.ledger_table).claim(
        FileRecord("b/raw/orders/a.csv#v", "b", "raw/orders/a.csv", "v", "orders")
    )
    ddb.update_item(
        TableName=stage.ledger_table, Key={"pk": {"S": "file#b/raw/orders/a.csv#v"}}, UpdateExpression="REMOVE time_key"
    )
    assert migrate(ddb, stage.ledger_table)[1] == "wrote time_key on 1 items"
    with Stubber(clients.stepfunctions) as sfn, Stubber(lakeformation) as lf, Stubber(quotas) as sq:
        sfn.add_response("validate_state_machine_definition", {"result": "OK", "diagnostics": []})
        lf.add_response("get_data_lake_settings", {"DataLakeSettings": {"CreateDatabaseDefaultPermissions": []}})
        _quota_answers(sq, "glue", "Max concurrent job runs per account", 50.0)
        _quota_answers(sq, "glue", "Max task DPUs per account", 1000.0, applied=200.0)
        _quota_answers(sq, "athena", "Active DML queries", 200.0)
        _checks(settings, stage, clients, lakeformation, quotas)
    with Stubber(glue) as g, Stubber(athena) as a:
        g.add_response("get_job_runs", {"JobRuns": []})
        a.add_response("list_query_executions", {"QueryExecutionIds": ["q"]})
        a.add_response("batch_get_query_execution", {"QueryExecutions": []})
        glue_job_runs(glue, {"lakehouse-dev-run-batch": False}, datetime.now(UTC))
        gate_scans(athena, stage.athena_workgroup, datetime.now(UTC), lambda _: None)
    policy = json.loads((ROOT / "deploy" / "deployer-policy.json").read_text())
    allowed = [a for st in statements(policy) for a in st["Action"]]
    needed = {_iam_action({"service-quotas": "servicequotas"}.get(s, s), o) for s, o in calls}
    needed -= {"sts:GetCallerIdentity", "lambda:GetAccountSettings"}  # the first needs none; the second is stubbed
    assert {"dynamodb:Scan", "states:ValidateStateMachineDefinition", "servicequotas:GetServiceQuota"} <= needed
    assert sorted(a for a in needed if not any(fnmatch.fnmatch(a, p) for p in allowed)) == []
