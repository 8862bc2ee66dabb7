"""Every AWS call a piece of code makes, checked against an IAM policy (moto's policy evaluator).

moto's access control checks IAM, STS, SQS and S3 requests against the resource they name, but every other service
against `*` only, where a policy scoped to the stage's resources never matches. So the calls are recorded here (a
botocore `before-parameter-build` hook on each client: the call's own parameters), each is turned into the IAM
actions and resource ARNs AWS checks (Service Authorization Reference), and those are evaluated. A call this
table cannot place fails the test, naming it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from moto.iam.access_control import IAMPolicy, PermissionResult

# S3 operations whose IAM action is not `s3:<operation>` (Service Authorization Reference, Amazon S3)
S3_ACTIONS = {
    "HeadBucket": "ListBucket",
    "ListObjectsV2": "ListBucket",
    "ListObjects": "ListBucket",
    "ListObjectVersions": "ListBucketVersions",
    "HeadObject": "GetObject",
    "CopyObject": "PutObject",
    "GetBucketEncryption": "GetEncryptionConfiguration",
    "PutBucketEncryption": "PutEncryptionConfiguration",
    "GetPublicAccessBlock": "GetBucketPublicAccessBlock",
    "PutPublicAccessBlock": "PutBucketPublicAccessBlock",
    "GetBucketNotificationConfiguration": "GetBucketNotification",
    "PutBucketNotificationConfiguration": "PutBucketNotification",
    "GetBucketLifecycleConfiguration": "GetLifecycleConfiguration",
    "PutBucketLifecycleConfiguration": "PutLifecycleConfiguration",
    "DeleteBucketLifecycle": "PutLifecycleConfiguration",
    "ListBuckets": "ListAllMyBuckets",
}
# A create call with tags is also authorized as the service's tagging action; one naming a role, as iam:PassRole.
TAG_ACTIONS = {"iam": "TagRole", "sqs": "TagQueue"}
NO_PERMISSION = {"sts:GetCallerIdentity"}  # always allowed


@dataclass(frozen=True)
class Call:
    service: str
    operation: str
    params: dict[str, Any] = field(hash=False, compare=False)


class Recorder:
    """The calls made through the given clients while it is registered."""

    def __init__(self, clients: Iterable[Any]) -> None:
        self.calls: list[Call] = []
        for client in clients:
            client.meta.events.register("before-parameter-build.*.*", self._record)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        prefix = model.service_model.signing_name
        self.calls.append(Call(prefix, model.name, json.loads(json.dumps(params, default=str))))

    @classmethod
    def of_every_new_client(cls) -> Recorder:
        """The calls of every client `chalicelib.aws` makes from now on (the cache is emptied, and the hook is on
        the session its clients are made from): a handler's runtime, ledger and alerts included."""
        from chalicelib import aws, runtime

        aws.clear_cache()
        runtime.reset()
        recorder = cls(())
        aws._session_for_clients().register("before-parameter-build.*.*", recorder._record)
        return recorder

    def operations(self) -> set[str]:
        return {f"{c.service}:{c.operation}" for c in self.calls}


class Places:
    """The ARNs of one account and region, for turning a call into what IAM authorizes."""

    def __init__(self, region: str, account: str, workgroup: str) -> None:
        self.region, self.account, self.workgroup = region, account, workgroup

    def arn(self, service: str, rest: str) -> str:
        return f"arn:aws:{service}:{self.region}:{self.account}:{rest}"

    def authorizations(self, call: Call, params: dict[str, Any]) -> list[tuple[str, str]]:
        """(action, resource) pairs AWS checks for one call."""
        service, op, p = call.service, call.operation, params
        action = f"{service}:{op}"
        extra: list[tuple[str, str]] = []
        if service == "s3":
            bucket, key = p.get("Bucket", "*"), p.get("Key")
            resource = f"arn:aws:s3:::{bucket}" + (f"/{key}" if key else "")
            out = [(f"s3:{S3_ACTIONS.get(op, op)}", resource if op != "ListBuckets" else "*")]
            source = p.get("CopySource")
            if isinstance(source, dict):  # a copy reads its source as well
                read = "s3:GetObjectVersion" if source.get("VersionId") else "s3:GetObject"
                out.append((read, f"arn:aws:s3:::{source['Bucket']}/{source['Key']}"))
            if p.get("VersionId") and op in ("GetObject", "HeadObject"):
                out.append(("s3:GetObjectVersion", resource))
            return out
        if service == "sts":
            return [(action, "*")]
        if service == "iam":
            resource = f"arn:aws:iam::{self.account}:role/{p['RoleName']}"
            if op == "CreateRole" and p.get("Tags"):
                extra.append(("iam:TagRole", resource))
            return [(action, resource), *extra]
        if service == "athena":
            return [(action, "*" if op == "ListWorkGroups" else self.arn("athena", f"workgroup/{self.workgroup}"))]
        if service == "glue":
            return self._glue(action, op, p)
        if service == "dynamodb":
            tables = [p["TableName"]] if "TableName" in p else sorted(p["RequestItems"])
            index = f"/index/{p['IndexName']}" if p.get("IndexName") else ""
            return [(action, self.arn("dynamodb", f"table/{t}{index}")) for t in tables]
        if service == "sqs":
            name = p.get("QueueName") or unquote(str(p.get("QueueUrl", ""))).rsplit("/", 1)[-1]
            resource = self.arn("sqs", name)
            return [(action, resource), *([("sqs:TagQueue", resource)] if p.get("tags") else [])]
        if service == "sns":
            resource = p.get("TopicArn") or p.get("ResourceArn") or self.arn("sns", p["Name"])
            return [(action, resource), *([("sns:TagResource", resource)] if p.get("Tags") else [])]
        if service == "states":
            resource = p.get("stateMachineArn") or self.arn("states", f"stateMachine:{p['name']}")
            passed = [("iam:PassRole", p["roleArn"])] if p.get("roleArn") else []
            return [(action, resource), *passed, *([("states:TagResource", resource)] if p.get("tags") else [])]
        if service == "monitoring":  # CloudWatch signs as `monitoring`; IAM names its actions `cloudwatch:`
            alarms = [self.arn("cloudwatch", f"alarm:{n}") for n in p.get("AlarmNames") or [p["AlarmName"]]]
            tagged = [("cloudwatch:TagResource", a) for a in alarms] if p.get("Tags") else []
            return [*((f"cloudwatch:{op}", a) for a in alarms), *tagged]
        raise AssertionError(f"no IAM mapping for {action}: add it to tests/policy_calls.py")

    def _glue(self, action: str, op: str, p: dict[str, Any]) -> list[tuple[str, str]]:
        catalog = self.arn("glue", "catalog")
        if "Job" in op:
            resources = [self.arn("glue", f"job/{p.get('JobName') or p['Name']}")]
        elif "Crawler" in op:
            resources = [self.arn("glue", f"crawler/{p['Name']}")]
        elif "Database" in op:
            name = p.get("Name") or p["DatabaseInput"]["Name"]
            resources = [catalog, self.arn("glue", f"database/{name}")]
        elif "Table" in op or "Partition" in op:
            database = p["DatabaseName"]
            table = p.get("Name") or p.get("TableName") or (p.get("TableInput") or {}).get("Name") or "*"
            resources = [
                catalog,
                self.arn("glue", f"database/{database}"),
                self.arn("glue", f"table/{database}/{table}"),
            ]
        else:
            raise AssertionError(f"no IAM mapping for {action}: add it to tests/policy_calls.py")
        out = [(action, r) for r in resources]
        if p.get("Role") and op.startswith(("Create", "Update")):
            role = p["Role"] if p["Role"].startswith("arn:") else f"arn:aws:iam::{self.account}:role/{p['Role']}"
            out.append(("iam:PassRole", role))
        if p.get("Tags") and op.startswith("Create"):
            out += [("glue:TagResource", r) for r in resources[-1:]]
        return out


def denied(policy: dict[str, Any], calls: Iterable[Call], places: Places) -> list[str]:
    """The (action, resource) pairs of `calls` that `policy` does not allow, as `action on resource (by Operation)`."""
    evaluator = IAMPolicy(json.dumps(policy))
    out = []
    for call in calls:
        for action, resource in places.authorizations(call, call.params):
            if action in NO_PERMISSION:
                continue
            if evaluator.is_action_permitted(action, resource) != PermissionResult.PERMITTED:
                out.append(f"{action} on {resource} (by {call.service}:{call.operation})")
    return sorted(set(out))
