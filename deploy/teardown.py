"""`lakehouse teardown`: delete what `lakehouse deploy` made, in reverse order, after `chalice delete` has
removed the Lambdas and the API. A dry run unless told to apply; the data (lake bucket, access logs, ledger)
is kept unless `delete_data`. Idempotent: what is already gone is skipped, so a run that failed half-way is
finished by the next.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chalicelib import names
from chalicelib.aws import account_id, error_code
from chalicelib.config import Settings, Stage
from chalicelib.names import crawler_name
from chalicelib.stage import declared, resources, roles
from chalicelib.stage.resources import Resource

if TYPE_CHECKING:
    from types_boto3_apigateway import APIGatewayClient
    from types_boto3_apigateway.type_defs import PatchOperationTypeDef
    from types_boto3_iam import IAMClient

    from chalicelib.aws import Clients

log = logging.getLogger(__name__)
MISSING = (
    "404",
    "NoSuchBucket",
    "NotFound",
    "NotFoundException",
    "NoSuchEntity",
    "EntityNotFoundException",
    "ResourceNotFoundException",
    "StateMachineDoesNotExist",
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
    "InvalidRequestException",  # Athena: no such workgroup
)


def _exists(call: Callable[[], Any]) -> Any:
    """The API's answer, or None if the resource is not there (an error saying so, or an empty answer)."""
    try:
        return call() or None
    except Exception as exc:
        if error_code(exc) in MISSING:
            return None
        raise


def _step(resource: Resource, c: Clients) -> tuple[str, Callable[[], Any], Callable[[], Any]]:
    """An entry of the stage's resource table as a teardown step: (what, whether it is there, delete it)."""
    return (resource.label + resource.note, lambda: resource.exists(c) or None, lambda: resource.delete(c))


def _delete_role(client: IAMClient, name: str) -> None:
    if _exists(lambda: client.get_role_policy(RoleName=name, PolicyName=roles.POLICY_NAME)):
        client.delete_role_policy(RoleName=name, PolicyName=roles.POLICY_NAME)
    client.delete_role(RoleName=name)


def _delete_api_key(apigateway: APIGatewayClient, name: str) -> None:
    for plan in [p for p in apigateway.get_usage_plans()["items"] if p["name"] == name]:
        stages = [f"{s['apiId']}:{s['stage']}" for s in plan.get("apiStages", [])]
        if stages:  # a usage plan with API stages cannot be deleted
            ops: list[PatchOperationTypeDef] = [{"op": "remove", "path": "/apiStages", "value": s} for s in stages]
            apigateway.update_usage_plan(usagePlanId=plan["id"], patchOperations=ops)
        apigateway.delete_usage_plan(usagePlanId=plan["id"])
    for key in [k for k in apigateway.get_api_keys(nameQuery=name)["items"] if k["name"] == name]:
        apigateway.delete_api_key(apiKey=key["id"])


def teardown(
    settings: Settings,
    stage: Stage,
    clients: Clients,
    *,
    apply: bool = False,
    delete_data: bool = False,
    progress: Callable[[str], None] = log.info,
) -> tuple[list[str], list[str]]:
    """(what was, or with apply=False would be, deleted; what is kept)."""
    c, account = clients, account_id(clients.sts)
    api_key = names.api_key_name(stage)
    steps: list[tuple[str, Callable[..., Any], Callable[..., Any]]] = [
        (
            f"api key and usage plan {api_key}",
            lambda: (
                any(p["name"] == api_key for p in c.apigateway.get_usage_plans()["items"])
                or any(k["name"] == api_key for k in c.apigateway.get_api_keys(nameQuery=api_key)["items"])
                or None
            ),
            lambda: _delete_api_key(c.apigateway, api_key),
        ),
        (
            f"state machine {stage.state_machine}",
            lambda: c.stepfunctions.describe_state_machine(stateMachineArn=stage.state_machine_arn(account)),
            lambda: c.stepfunctions.delete_state_machine(stateMachineArn=stage.state_machine_arn(account)),
        ),
    ]
    table = resources.stage_resources(settings, stage, account)
    for resource in reversed([r for r in table if not r.data]):  # the table in reverse: what depends on others first
        steps.append(_step(resource, c))
    for dataset in sorted(settings.datasets):
        name = crawler_name(stage, dataset)
        steps.append(
            (
                f"glue crawler {name}",
                lambda n=name: c.glue.get_crawler(Name=n),
                lambda n=name: c.glue.delete_crawler(Name=n),
            )
        )
    for name in declared.glue_jobs(settings, stage):
        steps.append(
            (f"glue job {name}", lambda n=name: c.glue.get_job(JobName=n), lambda n=name: c.glue.delete_job(JobName=n))
        )
    steps += [
        (
            f"glue database {stage.glue_database} (its tables; the data stays in S3)",
            lambda: c.glue.get_database(Name=stage.glue_database),
            lambda: c.glue.delete_database(Name=stage.glue_database),
        ),
    ]
    for role in roles.declared_roles(settings, stage, account):
        steps.append(
            (f"iam role {role}", lambda r=role: c.iam.get_role(RoleName=r), lambda r=role: _delete_role(c.iam, r))
        )
    data = [_step(r, c) for r in table if r.data]
    deleted, kept = [], []
    for what, exists, delete in steps + (data if delete_data else []):
        if _exists(exists) is None:
            continue
        if apply:
            delete()
        deleted.append(what)
        progress(f"{'deleted' if apply else 'would delete'} {what}")
    if not delete_data:
        kept = [what for what, exists, _ in data if _exists(exists) is not None]
    return deleted, kept
