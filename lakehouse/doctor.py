"""`lakehouse doctor --stage S`: what can be checked before deploying, each a line with OK or what to do.

The same checks `lakehouse deploy` refuses on (deploy.chalice_project.preflight), and those that only an account
answers: whose credentials, whether the bucket names are free or ours, the quotas the stage needs, and whether
the Glue jobs will install the library versions the local stage runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib.config import Settings, Stage
from lakehouse import localstage

if TYPE_CHECKING:
    from types_boto3_lambda import LambdaClient

    from chalicelib.aws import Clients

# Lambda's concurrency: a new account may have 10, and the validator alone may run 20 at once (app.py): AWS's
# default is 1,000, raised on request (Lambda developer guide, "Lambda quotas").
LAMBDA_CONCURRENCY_NEEDED = 100


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str  # what was found, or what to do


def run_checks(
    settings: Settings,
    stage: Stage,
    clients: Clients,
    lambda_client: LambdaClient,
    *,
    python: tuple[int, int],
    cli_region: str | None,
) -> list[Check]:
    """Every check, in order; one that cannot be made (an AWS error) is a failed check naming the error. On the
    local stage Chalice deploys nothing and the Lambdas run in this process: those two checks say so."""
    local = stage.name == localstage.STAGE
    in_process = (True, "the local stage's Lambdas run in the lakehouse process")
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
    ]
    out = []
    for name, check in checks:
        try:
            ok, detail = check()
        except Exception as exc:  # a check that AWS refused is a finding, not a crash
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        out.append(Check(name, ok, detail))
    return out


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
