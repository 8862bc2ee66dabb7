"""The local stage enforces IAM: every component runs as its own role, and moto's access control judges each request.

On AWS each Lambda, Glue job, crawler and the state machine runs with its role's credentials, and IAM refuses what
the role's policy does not allow. The local stage plays that:
- the stage process turns moto's access control on (moto/core/authorization.py: requests past
  `INITIAL_NO_AUTH_ACTION_COUNT` have their signature checked and their action judged against the caller's policies);
  the CLI and tests keep the stage's dummy credentials, which become an admin user's keys;
- a component gets its role's credentials from the stage, which plays the AWS service assuming the role (STS
  AssumeRole, after checking that the role's trust policy names that service);
- moto judges SQS, IAM and STS requests against their resource (their `_determine_resource`) and S3 against bucket
  and key, but every other service against the resource "*", which a least-privilege statement never matches: here
  the resources a request acts on are read from its parameters (`resources`, after the Service Authorization
  Reference's resource types), and each is judged with moto's own policy evaluator;
- what moto does not judge at all (an S3 copy's source object) is checked by the e2e tests, which record every call a
  role makes (`/_lakehouse/calls`) and judge each against the role's policy with `allowed`.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from chalicelib.aws import ENDPOINT_ENV, Credentials
from chalicelib.config import Settings, Stage
from chalicelib.errors import LocalStageError

ROUTE = "/_lakehouse/"  # the stage's own endpoints, beside moto's /moto-api/
ENFORCE_ENV = "LAKEHOUSE_ENFORCE_IAM"  # "0": the stage accepts any request, as before (to measure what IAM costs)
ADMIN_USER = "lakehouse-admin"  # the CLI's and the tests' identity: the stage's dummy keys are its access key
# the service that assumes a component's role on AWS
SERVICE_PRINCIPALS = {
    "lambda": "lambda.amazonaws.com",
    "glue": "glue.amazonaws.com",
    "crawler": "glue.amazonaws.com",
    "states": "states.amazonaws.com",
}


# -- who runs as which role ---------------------------------------------------------------------------------------
def role_for(component: str, stage: Stage) -> str:
    """The role a local component runs as, named as on AWS (`chalicelib.names.role_name`): `lambda:<function>`,
    `glue:<kind>` (a Glue job kind: process, spark, run, housekeeping), `crawler:<name>` or `states`."""
    from chalicelib.names import STATE_MACHINE, role_name

    kind, _, name = component.partition(":")
    component_of = {"lambda": name, "glue": name, "crawler": "crawler", "states": STATE_MACHINE}
    if kind not in component_of:
        raise ValueError(f"no role for component {component!r}: lambda:<function>, glue:<kind>, crawler:<name>, states")
    return role_name(stage, component_of[kind])


def lambda_roles(
    settings: Settings, stage: Stage, account: str, lifecycle: Iterable[str] = ()
) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """The Lambdas' roles, one per function, which `chalice deploy` makes on AWS (from each function's
    `.chalice/policy-<stage>-<function>.json`) and `up` makes on the local stage: role name -> (trust, policy).
    `lifecycle`: the buckets the lifecycle definitions name (`roles.lifecycle_buckets`)."""
    from chalicelib.stage.roles import lambda_policies, trust

    lambda_trust = trust("lambda.amazonaws.com", account, source_account=False)
    return {
        role_for(f"lambda:{function}", stage): (lambda_trust, policy)
        for function, policy in lambda_policies(settings, stage, account, lifecycle).items()
    }


def ensure_lambda_roles(settings: Settings, stage: Stage, account: str, lifecycle: Iterable[str] = ()) -> str:
    """Create the Lambdas' roles on the local stage, or bring their policies in line (as `chalice deploy` does)."""
    from chalicelib.aws import client
    from chalicelib.stage.roles import POLICY_NAME, live_role

    iam, said = client("iam"), []
    for name, (trust_doc, policy) in lambda_roles(settings, stage, account, lifecycle).items():
        have_trust, have_policy = live_role(iam, name)
        if have_trust is None:
            iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust_doc))
            said.append(f"{name} created")
        if have_policy != policy:
            iam.put_role_policy(RoleName=name, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(policy))
            said.append(f"{name} policy set")
    return f"lambda roles: {', '.join(said) or 'up to date'}"


# -- which resources a request acts on ----------------------------------------------------------------------------
def resources(service: str, operation: str, params: dict[str, Any], region: str, account: str) -> list[str]:
    """The ARNs a request acts on, each of which the caller's policy must allow (Service Authorization Reference:
    a Glue table operation needs its catalog, database and table; a DynamoDB Query on an index, the index); ["*"] for
    an operation without a resource type, or one this does not know."""
    arn = f"{region}:{account}"
    p = params
    if service == "dynamodb":
        tables = list(p.get("RequestItems", {})) or [p.get("TableName")]
        found = [f"arn:aws:dynamodb:{arn}:table/{t}" for t in tables if t]
        if p.get("IndexName") and found:
            return [f"{found[0]}/index/{p['IndexName']}"]
        return found or ["*"]
    if service == "glue":
        glue = f"arn:aws:glue:{arn}"
        if operation.endswith(("Job", "JobRun", "JobRuns")) and (job := p.get("JobName") or p.get("Name")):
            return [f"{glue}:job/{job}"]
        if operation.endswith(("Crawler", "CrawlerMetrics")) and p.get("Name"):
            return [f"{glue}:crawler/{p['Name']}"]
        database = p.get("DatabaseName") or (p.get("Name") if operation.endswith("Database") else None)
        if database is None:
            return ["*"]
        table = p.get("TableName") or p.get("TableInput", {}).get("Name")
        if table is None and operation.endswith("Table"):
            table = p.get("Name")
        tables = [f"{glue}:table/{database}/{table}"] if table else []
        if operation in ("GetTables", "SearchTables"):
            tables = [f"{glue}:table/{database}/*"]
        return [f"{glue}:catalog", f"{glue}:database/{database}", *tables]
    if service == "sns":
        topic = p.get("TopicArn") or (f"arn:aws:sns:{arn}:{p['Name']}" if operation == "CreateTopic" else None)
        return [topic] if topic else ["*"]
    if service == "states":
        machine = p.get("stateMachineArn") or p.get("executionArn")
        if operation == "CreateStateMachine" and p.get("name"):
            machine = f"arn:aws:states:{arn}:stateMachine:{p['name']}"
        return [machine] if machine else ["*"]
    if service == "sqs":  # moto names the queue of a QueueUrl only
        queue = p.get("QueueName") or str(p.get("QueueUrl", "")).rsplit("/", 1)[-1]
        return [f"arn:aws:sqs:{arn}:{queue}"] if queue else ["*"]
    if service == "monitoring":  # CloudWatch's alarms (it signs as `monitoring`)
        names = p.get("AlarmNames") or ([p["AlarmName"]] if p.get("AlarmName") else [])
        return [f"arn:aws:cloudwatch:{arn}:alarm:{n}" for n in names] or ["*"]
    if service == "athena":
        workgroup = p.get("WorkGroup") or (p.get("Name") if "WorkGroup" in operation else None)
        return [f"arn:aws:athena:{arn}:workgroup/{workgroup}"] if workgroup else ["*"]
    return ["*"]


# moto names some actions after the API operation where IAM names another (Service Authorization Reference: HeadBucket
# is allowed by s3:ListBucket, a batch of SQS messages by the one-message action, the public access block's calls by
# s3:Get/PutBucketPublicAccessBlock)
ALIASES = {
    "s3:HeadBucket": "s3:ListBucket",
    "s3:GetPublicAccessBlock": "s3:GetBucketPublicAccessBlock",
    "s3:PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "s3:DeletePublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}
# A DynamoDB transaction is allowed item by item, by each item's own action (DynamoDB developer guide, "Using IAM with
# DynamoDB transactions"): TransactWriteItems is no IAM action.
TRANSACTION_ITEMS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}


def checks(service: str, operation: str, params: dict[str, Any], region: str, account: str) -> list[tuple[str, str]]:
    """(IAM action, resource) pairs a request needs allowed, every one of them."""
    if service == "dynamodb" and operation in ("TransactWriteItems", "TransactGetItems"):
        table = f"arn:aws:dynamodb:{region}:{account}:table/"
        return [
            (f"dynamodb:{TRANSACTION_ITEMS[kind]}", table + item[kind]["TableName"])
            for item in params.get("TransactItems", [])
            for kind in item
        ]
    action = f"{IAM_PREFIXES.get(service, service)}:{operation}"
    return [(ALIASES.get(action, action), r) for r in resources(service, operation, params, region, account)]


IAM_PREFIXES = {"monitoring": "cloudwatch"}  # a service that signs under another name than IAM's action prefix


# -- the policy evaluator -----------------------------------------------------------------------------------------
def allowed(policies: Iterable[dict[str, Any]], action: str, resource: str) -> bool:
    """Whether identity policies allow `action` on `resource`: an explicit Deny wins, else some Allow is needed.
    moto's own evaluator (moto/iam/access_control.py), the one its access control judges requests with: the
    libraries that read policies (policyuniverse, cloudsplaining, policy_sentry) expand or grade them, and none
    evaluates a request."""
    from moto.iam.access_control import IAMPolicy, PermissionResult

    if action == "sts:GetCallerIdentity":  # needs no permission (STS API reference), as moto's own check says
        return True
    results = [IAMPolicy(json.dumps(p)).is_action_permitted(action, resource) for p in policies]
    return PermissionResult.DENIED not in results and PermissionResult.PERMITTED in results


def trusts(trust_policy: dict[str, Any], service: str, account: str) -> bool:
    """Whether a role's trust policy lets `service` assume it for `account`. Written here because moto's evaluator
    judges AWS principals only (a `Service` principal makes it fail); the local stage, playing the service, sends
    `aws:SourceAccount` as Step Functions does, and any other condition is not met."""
    for statement in trust_policy.get("Statement", []):
        actions = statement.get("Action", [])
        services = statement.get("Principal", {}).get("Service", [])
        services = [services] if isinstance(services, str) else services
        conditions = statement.get("Condition", {})
        met = conditions in ({}, {"StringEquals": {"aws:SourceAccount": account}})
        if statement.get("Effect") == "Allow" and "sts:AssumeRole" in actions and service in services and met:
            return True
    return False


# -- inside the stage process -------------------------------------------------------------------------------------
class _Recorder:
    """The calls roles make while recording is on (the e2e tests turn it on)."""

    def __init__(self) -> None:
        self.on = False
        self.calls: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def add(self, response: Any, action: str, resource: str, ok: bool | None) -> None:
        """One action on one resource: `ok` is moto's verdict, None for what it does not judge."""
        if not self.on:
            return
        role = _role_of(response)
        if role is not None:
            with self.lock:
                self.calls.append({"role": role, "action": action, "resource": resource, "allowed": ok})


_recorder = _Recorder()


def _access_key(response: Any) -> str:
    auth = response.headers.get("Authorization", "")
    return str(auth.partition("Credential=")[2].split("/", 1)[0])


def _role_of(response: Any) -> str | None:
    from moto.sts.models import sts_backends

    assumed = sts_backends[response.current_account]["aws"].get_assumed_role_from_access_key(_access_key(response))
    return None if assumed is None else str(assumed.role_arn.rsplit("/", 1)[-1])


def _service(response: Any) -> str:
    auth = response.headers.get("Authorization", "")
    scope = auth.partition("Credential=")[2].split(",", 1)[0].split("/")
    return scope[3] if len(scope) > 3 else ""


def _params(response: Any) -> dict[str, Any]:
    """A request's parameters as botocore names them: its JSON body (moto's DynamoDB has parsed it already) or its
    query string."""
    if getattr(response, "automated_parameter_parsing", False):  # moto parsed them (CloudWatch's CBOR protocol)
        return dict(response.params)
    body = response.body
    if isinstance(body, dict):
        return body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body.lstrip().startswith("{"):
        parsed: dict[str, Any] = json.loads(body)
        return parsed
    return {k: v[0] for k, v in response.querystring.items() if v}


def _denied(response: Any, action: str, resource: str) -> Exception:
    """AWS's AccessDenied, naming the caller, the action and the resource; JSON-protocol services answer it as JSON
    (moto answers XML, which botocore reads as an error named "403")."""
    from moto.core.exceptions import AccessDeniedError, JsonRESTError

    role = _role_of(response)
    caller = f"arn:aws:sts::{response.current_account}:assumed-role/{role}" if role else _access_key(response)
    if "json" in response.headers.get("Content-Type", "") or response.headers.get("X-Amz-Target"):
        message = f"User: {caller} is not authorized to perform: {action} on resource: {resource}"
        return JsonRESTError("AccessDeniedException", message)
    return AccessDeniedError(caller, f"{action} on resource: {resource}")


def enforce(account: str, admin_keys: Credentials) -> Callable[[], None]:
    """Turn moto's access control on in this process: `admin_keys` (the stage's dummy keys) are an admin user's, and
    each request is judged against every resource it acts on. Returns what turns it off again."""
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin as Mixin
    from moto.iam.access_control import IAMRequest, S3IAMRequest
    from moto.iam.models import iam_backends
    from werkzeug.exceptions import HTTPException

    iam = iam_backends[account]["aws"]
    if ADMIN_USER not in iam.users:
        iam.create_user("us-east-1", ADMIN_USER)
        iam.put_user_policy(
            ADMIN_USER,
            "admin",
            json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}),
        )
        key = iam.create_access_key(ADMIN_USER)
        del iam.access_keys[key.physical_resource_id]
        key.access_key_id, key.secret_access_key = admin_keys.access_key_id, admin_keys.secret_access_key
        iam.access_keys[key.access_key_id] = key
    normal, s3 = Mixin._authenticate_and_authorize_normal_action, Mixin._authenticate_and_authorize_s3_action

    def judge(self: Any, base: type, action: str, resource: str) -> None:
        """moto's judgement (signature, then the caller's policies) of `action` on `resource`."""

        class Request(base):  # type: ignore[misc]  # moto's request, judged as `action`
            def __init__(self, **kwargs: Any) -> None:
                super().__init__(**kwargs)
                self._action = action

        self._authenticate_and_authorize_action(Request, resource)

    def normal_action(self: Any, resource: str = "*") -> None:
        service, operation = _service(self), self._get_action()
        if resource != "*":  # moto's own (SQS, IAM, STS)
            found = [(ALIASES.get(f"{service}:{operation}", f"{service}:{operation}"), resource)]
        else:
            found = checks(service, operation, _params(self), self.region, account)
        for action, each in found:
            try:
                judge(self, IAMRequest, action, each)
            except HTTPException as exc:
                _recorder.add(self, action, each, False)
                raise _denied(self, action, each) if getattr(exc, "code", 0) == 403 else exc from None
            _recorder.add(self, action, each, True)

    def s3_action(self: Any, bucket_name: str | None = None, key_name: str | None = None) -> None:
        resource = f"arn:aws:s3:::{bucket_name or '*'}" + (f"/{key_name}" if key_name else "")
        action = ALIASES.get(f"s3:{self._get_action()}", f"s3:{self._get_action()}")
        try:
            judge(self, S3IAMRequest, action, resource)
        except HTTPException:
            _recorder.add(self, action, resource, False)
            raise
        _recorder.add(self, action, resource, True)
        copied = self.headers.get("x-amz-copy-source")  # moto judges a copy's target only: the tests judge its source
        if copied:
            source = urlparse(copied if isinstance(copied, str) else copied.decode())
            read = "s3:GetObjectVersion" if "versionId=" in source.query else "s3:GetObject"
            _recorder.add(self, read, f"arn:aws:s3:::{unquote(source.path).lstrip('/')}", None)

    before = settings.INITIAL_NO_AUTH_ACTION_COUNT
    Mixin._authenticate_and_authorize_normal_action = normal_action  # type: ignore[method-assign]
    Mixin._authenticate_and_authorize_s3_action = s3_action  # type: ignore[method-assign]
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0

    def undo() -> None:
        settings.INITIAL_NO_AUTH_ACTION_COUNT = before
        Mixin._authenticate_and_authorize_normal_action = normal  # type: ignore[method-assign]
        Mixin._authenticate_and_authorize_s3_action = s3  # type: ignore[method-assign]

    return undo


@contextmanager
def enforcing(account: str, admin_keys: Credentials) -> Iterator[None]:
    """`enforce` for as long as the block runs."""
    undo = enforce(account, admin_keys)
    try:
        yield
    finally:
        undo()


def assume(account: str, role: str, service: str, session: str) -> dict[str, str]:
    """Credentials of `role`, as `service` gets them when it runs a component (refused unless the role trusts it)."""
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    from chalicelib.stage.roles import document

    try:
        found = iam_backends[account]["aws"].get_role(role)
    except Exception:
        raise LocalStageError(f"no role {role} on the local stage: `lakehouse up` provisions it") from None
    if not trusts(document(found.assume_role_policy_document), service, account):
        raise LocalStageError(f"role {role}'s trust policy does not let {service} assume it")
    made = sts_backends[account]["aws"].assume_role("us-east-1", session, found.arn, "", 3600, "")
    return {
        "AWS_ACCESS_KEY_ID": made.access_key_id,
        "AWS_SECRET_ACCESS_KEY": made.secret_access_key,
        "AWS_SESSION_TOKEN": made.session_token,
    }


def route(environ: dict[str, Any], start_response: Any, account: str) -> list[bytes]:
    """The stage's own endpoints: POST assume-role?role=&service=&session= (404 when the stage does not enforce IAM);
    POST calls (recording on, and forget what was recorded); GET calls (what was recorded)."""
    from moto import settings

    what = environ.get("PATH_INFO", "").removeprefix(ROUTE)
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    status, body = "200 OK", dict[str, Any]()
    if what == "assume-role":
        if settings.INITIAL_NO_AUTH_ACTION_COUNT:
            status, body = "404 Not Found", {"error": "the local stage does not enforce IAM"}
        else:
            try:
                body = assume(account, query["role"], query["service"], query.get("session", "local"))
            except LocalStageError as exc:
                status, body = "403 Forbidden", {"error": str(exc)}
    elif what == "calls" and environ.get("REQUEST_METHOD") == "POST":
        with _recorder.lock:
            _recorder.on, _recorder.calls = True, []
    elif what == "calls":
        with _recorder.lock:
            body = {"calls": list(_recorder.calls)}
    else:
        status, body = "404 Not Found", {"error": f"no endpoint {ROUTE}{what}"}
    start_response(status, [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]


def enforced() -> bool:
    return os.environ.get(ENFORCE_ENV, "1") != "0"


# -- a component's credentials ------------------------------------------------------------------------------------
_held: dict[tuple[str, str, str], tuple[float, Credentials]] = {}
_held_lock = threading.Lock()
HOLD_SECONDS = 1800.0  # well inside the hour the stage's credentials last


def credentials_for(component: str, stage: Stage) -> Credentials | None:
    """The credentials `component` runs with on the local stage: its role's, when the stage enforces IAM; None (the
    caller's own) when it does not, or when no local stage endpoint is set (moto in process)."""
    endpoint = os.environ.get(ENDPOINT_ENV)
    if not endpoint:
        return None
    role, service = role_for(component, stage), SERVICE_PRINCIPALS[component.split(":", 1)[0]]
    key = (endpoint, role, service)
    with _held_lock:
        held = _held.get(key)
        if held is not None and time.monotonic() - held[0] < HOLD_SECONDS:
            return held[1]
    session = component.replace(":", "-") or "local"
    url = f"{endpoint}{ROUTE}assume-role?role={role}&service={service}&session={session[:64]}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=30) as answer:
            given = json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise LocalStageError(f"{component} cannot run as {role}: {json.loads(exc.read()).get('error')}") from None
    credentials = Credentials(given["AWS_ACCESS_KEY_ID"], given["AWS_SECRET_ACCESS_KEY"], given["AWS_SESSION_TOKEN"])
    with _held_lock:
        _held[key] = (time.monotonic(), credentials)
    return credentials


def environment_for(component: str, stage: Stage) -> dict[str, str]:
    """The environment variables a component's process gets its role's credentials from (none to add: the caller's)."""
    credentials = credentials_for(component, stage)
    if credentials is None:
        return {}
    return {
        "AWS_ACCESS_KEY_ID": credentials.access_key_id,
        "AWS_SECRET_ACCESS_KEY": credentials.secret_access_key,
        "AWS_SESSION_TOKEN": credentials.session_token or "",
    }
