"""The IAM roles `chalice deploy` does not make: the one the Glue jobs and crawlers run as, and the one the
pipeline state machine runs as. Least privilege: every statement names its actions and the stage's own
resources (the Lambdas' role is Chalice's, from `.chalice/policy-<stage>.json`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from chalicelib.config import Settings, Stage
from chalicelib.stage.roles import POLICY_NAME, declared_roles, live_role

if TYPE_CHECKING:
    from types_boto3_iam import IAMClient


def ensure_roles(iam: IAMClient, settings: Settings, stage: Stage, account: str) -> tuple[str, bool]:
    """Create the roles or bring their trust and inline policy in line; returns what it did and whether a role
    was created now (IAM is eventually consistent: a new role may not be assumable for some seconds)."""
    said, created = [], False
    for name, (trust_doc, policy) in declared_roles(settings, stage, account).items():
        have_trust, have_policy = live_role(iam, name)
        if have_trust is None:
            iam.create_role(
                RoleName=name,
                AssumeRolePolicyDocument=json.dumps(trust_doc),
                Description=f"{stage.project} {stage.name}: " + ("Glue" if name == stage.glue_role else "pipeline"),
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
