"""`lakehouse deploy --plan`: what a deployment would change, changing nothing."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from chalicelib.aws import account_id
from chalicelib.config import Settings, Stage
from chalicelib.stage.drift import DriftCheck, Finding
from deploy import provision
from deploy.glue_bundle import glue_files

if TYPE_CHECKING:
    from chalicelib.aws import Clients


def plan(settings: Settings, stage: Stage, clients: Clients, config_files: dict[str, str]) -> list[Finding]:
    """What `lakehouse deploy` would change, changing nothing: the drift checks against this checkout (its state
    machine definition, not the last deployment's), and the files it would upload. Lifecycle rules are
    `lakehouse lifecycle sync --dry-run`'s to plan."""
    check = DriftCheck(settings, stage, clients, None, clients.sqs)
    check.provision_fix = f"lakehouse deploy --stage {stage.name}"
    definition = json.loads(provision.state_machine_definition(stage, account_id(clients.sts)))
    findings = check.run({"state_machine_definition": definition}, lifecycle=False).findings
    uploads = {f"{settings.zones.config}{rel}": text.encode() for rel, text in config_files.items()}
    for key, body in {**uploads, **glue_files(settings, stage)}.items():
        held = provision.holds(clients.s3, stage.bucket, key, body)
        if not held:
            state = "missing" if held is None else "differs"
            findings.append(
                Finding(f"s3://{stage.bucket}/{key}", "content", "this checkout's", state, check.provision_fix)
            )
    return findings
