"""The IAM roles `chalice deploy` does not make: one per kind of Glue job (process, spark, run, housekeeping) and
the crawlers', and the one the pipeline state machine runs as. Least privilege: every statement names its actions
and the stage's own resources (each Lambda's role is Chalice's, from `.chalice/policy-<stage>-<function>.json`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from chalicelib.config import Settings, Stage
from chalicelib.names import GLUE_KINDS, STATE_MACHINE, role_as_configured
from chalicelib.stage.roles import POLICY_NAME, declared_roles, live_role

if TYPE_CHECKING:
    from types_boto3_iam import IAMClient


def ensure_roles(iam: IAMClient, settings: Settings, stage: Stage, account: str) -> tuple[str, bool]:
    """Create the roles or bring their trust and inline policy in line; returns what it did and whether a role
    was created now (IAM is eventually consistent: a new role may not be assumable for some seconds)."""
    said, created = [], False
    components = {role_as_configured(stage, c): c for c in (*GLUE_KINDS, STATE_MACHINE)}
    for name, (trust_doc, policy) in declared_roles(settings, stage, account).items():
        have_trust, have_policy = live_role(iam, name)
        if have_trust is None:
            iam.create_role(
                RoleName=name,
                AssumeRolePolicyDocument=json.dumps(trust_doc),
                Description=f"{stage.project} {stage.name}: {components[name].replace('_', ' ')}",
                Tags=[{"Key": "project", "Value": stage.project}, {"Key": "stage", "Value": stage.name}],
            )
            created = True
            said.append(f"{name} created")
        elif have_trust != trust_doc:
            iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust_doc))
            said.append(f"{name} trust updated")
        if have_policy != policy:
            iam.put_role_policy(RoleName=name, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(policy))
            if have_trust is not None:
                said.append(f"{name} policy updated")
    return f"iam roles: {', '.join(said) or 'up to date'}", created
