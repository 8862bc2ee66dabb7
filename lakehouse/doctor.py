"""`lakehouse doctor --stage S`: what can be checked before deploying, each a line with OK, WARN or what to do.

The same checks `lakehouse deploy` refuses on (deploy.chalice_project.preflight), and those that only an account
answers: whose credentials, whether the bucket names are free or ours, the quotas the stage needs (Lambda's, and
Glue's and Athena's from Service Quotas), whether the ledger table needs a migration, whether Step Functions
accepts the rendered definition, what Lake Formation grants by default, and whether the Glue jobs will install the
library versions the local stage runs. An API the local stage (moto) lacks says "not available on this stage".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib.config import Settings, Stage
from lakehouse import localstage

if TYPE_CHECKING:
    from types_boto3_lakeformation import LakeFormationClient
    from types_boto3_lambda import LambdaClient
    from types_boto3_service_quotas import ServiceQuotasClient

    from chalicelib.aws import Clients

# Lambda's concurrency: a new account may have 10, and the validator alone may run 20 at once (app.py): AWS's
# default is 1,000, raised on request (Lambda developer guide, "Lambda quotas").
LAMBDA_CONCURRENCY_NEEDED = 100
# The quality gate runs up to 4 table scans side by side (chalicelib/pipeline/steps.py); Athena counts queued
# queries against "Active DML queries" and refuses the one past it (Athena user guide, "Service Quotas").
ATHENA_QUERIES_NEEDED = 4
# What a run takes at once, as Service Quotas names it (ListAWSDefaultServiceQuotas; matched case-blind, as part of
# the name: "Max concurrent job runs per account", "Max task DPUs per account" (AWS Big Data blog, "Introducing job
# queuing to scale your AWS Glue workloads"), "Active DML queries" (Athena user guide, "Service Quotas"))
GLUE_JOB_RUNS_QUOTA = "concurrent job runs per account"
GLUE_DPUS_QUOTA = "task DPUs per account"
ATHENA_DML_QUOTA = "Active DML queries"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str  # what was found, or what to do
    warn: bool = False  # ok, but worth knowing (printed WARN; doctor still exits 0)


class Notice(Exception):
    """A finding that does not stop a deploy: the check passes, printed WARN with this text."""


def run_checks(
    settings: Settings,
    stage: Stage,
    clients: Clients,
    lambda_client: LambdaClient,
    *,
    python: tuple[int, int],
    cli_region: str | None,
    lakeformation: LakeFormationClient | None = None,
    quotas: ServiceQuotasClient | None = None,
) -> list[Check]:
    """Every check, in order; one that cannot be made (an AWS error) is a failed check naming the error. On the
    local stage Chalice deploys nothing and the Lambdas run in this process: those two checks say so."""
    from chalicelib.aws import ClientSettings, client

    local = stage.name == localstage.STAGE
    in_process = (True, "the local stage's Lambdas run in the lakehouse process")
    lakeformation = lakeformation or client("lakeformation", ClientSettings.for_stage(stage))
    quotas = quotas or client("service-quotas", ClientSettings.for_stage(stage))
    checks: list[tuple[str, Callable[[], tuple[bool, str]]]] = [
        ("credentials", lambda: _credentials(clients)),
        (
            "deploy preflight",
            (lambda: in_process) if local else lambda: _preflight(settings, stage, python, cli_region),
        ),
        *(
            (f"{label} bucket", _bucket(clients, stage, key))
            for key, label in (("bucket", "lake"), ("log_bucket", "log"))
        ),
        ("lambda concurrency", (lambda: in_process) if local else lambda: _lambda_concurrency(lambda_client)),
        ("glue module pins", _glue_pins),
        ("ledger table", lambda: _ledger(clients, stage)),
        # what only an account answers: on the local stage, an API moto lacks is "not available on this stage"
        ("state machine", lambda: _answered(lambda: _state_machine(clients, stage), local)),
        ("lake formation", lambda: _answered(lambda: _lake_formation(lakeformation), local)),
        ("glue quotas", lambda: _answered(lambda: _glue_quotas(quotas, settings), local)),
        ("athena quotas", lambda: _answered(lambda: _athena_quotas(quotas), local)),
    ]
    out = []
    for name, check in checks:
        warn = False
        try:
            ok, detail = check()
        except Notice as exc:
            ok, detail, warn = True, str(exc), True
        except Exception as exc:  # a check that AWS refused is a finding, not a crash
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        out.append(Check(name, ok, detail, warn))
    return out


def _answered(check: Callable[[], tuple[bool, str]], local: bool) -> tuple[bool, str]:
    """The check's answer; on the local stage an API moto lacks (NotImplementedError in process, a 500 or
    NoSuchResource from its server) is a warning naming it, not a failure: only an account can answer it."""
    from botocore.exceptions import ClientError

    try:
        return check()
    except (NotImplementedError, ClientError) as exc:
        if not local or (isinstance(exc, ClientError) and not _moto_lacks(exc)):
            raise
        raise Notice(
            f"not available on this stage (moto does not answer {_operation(exc)}); only an account can"
        ) from exc


def _operation(exc: Exception) -> str:
    """The API's name: botocore's for a ClientError, else from moto's "The <snake_name> action has not been
    implemented"."""
    import re

    name = getattr(exc, "operation_name", None)
    if name:
        return str(name)
    found = re.search(r"The (\w+) action", str(exc))
    return "".join(w.title() for w in found[1].split("_")) if found else str(exc)


def _moto_lacks(exc: Exception) -> bool:
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return False
    error = exc.response.get("Error", {})
    return error.get("Code") in ("500", "NoSuchResourceException", "NotImplemented", "InternalFailure")


def _credentials(clients: Clients) -> tuple[bool, str]:
    who = clients.sts.get_caller_identity()
    return True, f"account {who['Account']} as {who['Arn']}"


def _preflight(settings: Settings, stage: Stage, python: tuple[int, int], cli_region: str | None) -> tuple[bool, str]:
    from deploy.chalice_project import preflight

    problems = preflight(settings, stage, python=python, cli_region=cli_region)
    if problems:
        return False, "; ".join(problems)
    return True, f"Python {python[0]}.{python[1]}, region {stage.region}, validator sized for the limits"


def _bucket(clients: Clients, stage: Stage, key: str) -> Callable[[], tuple[bool, str]]:
    def check() -> tuple[bool, str]:
        from deploy.provision import bucket_state, bucket_taken

        name = getattr(stage, key)
        state = bucket_state(clients.s3, name, stage.account)
        if state == "taken":
            return False, bucket_taken(stage, key)
        return True, f"{name}: " + ("exists, ours" if state == "ours" else "free (deploy creates it)")

    return check


def _lambda_concurrency(lambda_client: LambdaClient) -> tuple[bool, str]:
    limit = int(lambda_client.get_account_settings()["AccountLimit"]["ConcurrentExecutions"])
    if limit < LAMBDA_CONCURRENCY_NEEDED:
        return False, (
            f"{limit} concurrent executions: ask for at least {LAMBDA_CONCURRENCY_NEEDED} (Service Quotas, AWS "
            "Lambda, Concurrent executions); the validator alone runs up to 20 at once"
        )
    return True, f"{limit} concurrent executions"


def _glue_pins() -> tuple[bool, str]:
    """The Glue jobs install pinned libraries (--additional-python-modules): the versions the local stage runs."""
    from importlib.metadata import version

    from chalicelib.stage.declared import GLUE_PYTHON_MODULES

    pins = dict(p.split("==", 1) for p in GLUE_PYTHON_MODULES.split(","))
    wrong = {name: (pin, version(name)) for name, pin in pins.items() if version(name) != pin}
    if wrong:
        return False, "; ".join(f"{n}: Glue gets {p}, here {v}" for n, (p, v) in wrong.items())
    return True, ", ".join(f"{n}=={p}" for n, p in pins.items())


def _ledger(clients: Clients, stage: Stage) -> tuple[bool, str]:
    """A table made by an earlier release must be migrated before today's code can list it (defect 1)."""
    from chalicelib.ledger.migration import needed_steps

    steps = needed_steps(clients.dynamodb, stage.ledger_table)
    if steps:
        command = "lakehouse up" if stage.name == localstage.STAGE else f"lakehouse deploy --stage {stage.name}"
        return False, f"{stage.ledger_table} needs a migration ({'; '.join(steps)}): {command} runs it"
    return True, f"{stage.ledger_table}: indexes current (or deploy creates the table)"


def _state_machine(clients: Clients, stage: Stage) -> tuple[bool, str]:
    """Step Functions' own validation of the definition `lakehouse deploy` would send (ValidateStateMachineDefinition:
    the checks CreateStateMachine makes, and more, as diagnostics)."""
    from deploy.provision import state_machine_definition

    account = clients.sts.get_caller_identity()["Account"]
    answer = clients.stepfunctions.validate_state_machine_definition(
        definition=state_machine_definition(stage, account), type="STANDARD"
    )
    diagnostics = [
        f"{d['severity']} {d['code']} at {d.get('location', '/')}: {d['message']}" for d in answer["diagnostics"]
    ]
    if answer["result"] != "OK":
        return False, "; ".join(diagnostics) or f"result {answer['result']}"
    if diagnostics:
        raise Notice("accepted, with " + "; ".join(diagnostics))
    return True, "ValidateStateMachineDefinition: OK"


def _lake_formation(lakeformation: LakeFormationClient) -> tuple[bool, str]:
    """Who Lake Formation lets at new databases and tables. With IAM_ALLOWED_PRINCIPALS granted by default (the
    account's setting until someone changes it) Lake Formation decides nothing: IAM policies alone say who reads the
    lake, the stage's roles need no grant, and a Lake Formation grant or revoke changes nothing. Without it, every
    role needs Lake Formation grants on the stage's database, which `lakehouse deploy` does not make."""
    settings = lakeformation.get_data_lake_settings()["DataLakeSettings"]
    defaults = [
        *settings.get("CreateDatabaseDefaultPermissions", []),
        *settings.get("CreateTableDefaultPermissions", []),
    ]
    if any(p.get("Principal", {}).get("DataLakePrincipalIdentifier") == "IAM_ALLOWED_PRINCIPALS" for p in defaults):
        admins = len(settings.get("DataLakeAdmins", []))
        raise Notice(
            "IAM_ALLOWED_PRINCIPALS is still granted on new databases and tables: access to the catalog is decided "
            f"by IAM policies alone and Lake Formation permissions are not enforced ({admins} data lake admins); "
            "the stage works so, and relies on its roles' policies"
        )
    return False, (
        "IAM_ALLOWED_PRINCIPALS is not granted by default: Lake Formation decides, and the stage's roles (Glue jobs, "
        "crawlers, Lambdas, your own for Athena) need grants on its database, which lakehouse deploy does not make"
    )


def _quota(quotas: ServiceQuotasClient, service: str, name: str) -> float:
    """The account's value of a quota, by its Service Quotas name: the applied value, else AWS's default."""
    for page in quotas.get_paginator("list_aws_default_service_quotas").paginate(ServiceCode=service):
        for quota in page["Quotas"]:
            if name.lower() in quota.get("QuotaName", "").lower():
                try:
                    applied = quotas.get_service_quota(ServiceCode=service, QuotaCode=quota["QuotaCode"])
                    return float(applied["Quota"]["Value"])
                except quotas.exceptions.NoSuchResourceException:  # never changed: the default applies
                    return float(quota["Value"])
    raise Notice(f"Service Quotas lists no {service} quota named {name!r} in this region: see its console")


def _glue_quotas(quotas: ServiceQuotasClient, settings: Settings) -> tuple[bool, str]:
    """A run's widest level starts a Glue job per dataset at once, each up to spark_max_workers G.1X workers (1 DPU
    each) when on Spark; past either quota StartJobRun fails (ConcurrentRunsExceededException, or a DPU error)."""
    runs_needed = len(settings.datasets)
    dpus_needed = runs_needed * settings.pipeline.spark_max_workers
    runs = _quota(quotas, "glue", GLUE_JOB_RUNS_QUOTA)
    dpus = _quota(quotas, "glue", GLUE_DPUS_QUOTA)
    short = [
        f"{what}: {have:.0f}, a run may need {need} (Service Quotas, AWS Glue, {name})"
        for what, have, need, name in (
            ("concurrent job runs", runs, runs_needed, GLUE_JOB_RUNS_QUOTA),
            ("DPUs", dpus, dpus_needed, GLUE_DPUS_QUOTA),
        )
        if have < need
    ]
    if short:
        return False, "; ".join(short)
    return True, f"{runs:.0f} concurrent job runs (need {runs_needed}), {dpus:.0f} DPUs (need up to {dpus_needed})"


def _athena_quotas(quotas: ServiceQuotasClient) -> tuple[bool, str]:
    active = _quota(quotas, "athena", ATHENA_DML_QUOTA)
    if active < ATHENA_QUERIES_NEEDED:
        return False, (
            f"{active:.0f} active DML queries: the quality gate runs {ATHENA_QUERIES_NEEDED} at once (Service "
            f"Quotas, Amazon Athena, {ATHENA_DML_QUOTA})"
        )
    return True, f"{active:.0f} active DML queries (the quality gate runs up to {ATHENA_QUERIES_NEEDED} at once)"
