"""The Chalice project on disk: `.chalice/config.json` and the environment it gives each stage's Lambdas.

Only the CLI reads it: a deployed Lambda has no `.chalice/` folder.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from chalicelib.config import Settings, Stage

PROJECT_DIR = Path(__file__).resolve().parent.parent


CONFIG_FILE = ".chalice/config.json"  # relative to a Chalice project
CHALICE_CONFIG = PROJECT_DIR / CONFIG_FILE


def chalice_config() -> dict[str, Any]:
    config: dict[str, Any] = json.loads(CHALICE_CONFIG.read_text())
    return config


def chalice_stage_env(stage: str) -> dict[str, str]:
    """The environment `.chalice/config.json` gives a stage's Lambdas (global, then stage values)."""
    config = chalice_config()
    return {
        **config.get("environment_variables", {}),
        **config.get("stages", {}).get(stage, {}).get("environment_variables", {}),
    }


def deployed_api_id(stage: str, project_dir: Path = PROJECT_DIR) -> str | None:
    """The REST API `chalice deploy --stage STAGE` made, from Chalice's record of it (`.chalice/deployed/`); None
    before the first deploy. Every stage's API has the app's name, so a lookup by name could find another stage's."""
    api = _deployed_rest_api(stage, project_dir)
    return None if api is None else str(api["rest_api_id"])


def deployed_api_url(stage: str, project_dir: Path = PROJECT_DIR) -> str | None:
    """The stage's API URL as Chalice recorded it (`https://<id>.execute-api.<region>.amazonaws.com/api/`)."""
    api = _deployed_rest_api(stage, project_dir)
    return None if api is None else str(api["rest_api_url"])


def _deployed_rest_api(stage: str, project_dir: Path) -> dict[str, Any] | None:
    from chalice.config import DeployedResources

    record = project_dir / ".chalice" / "deployed" / f"{stage}.json"
    if not record.is_file():
        return None
    resources = DeployedResources(json.loads(record.read_text()))
    return resources.resource_values("rest_api") if "rest_api" in resources.resource_names() else None


LAYER_PYTHON = (3, 11)  # the AWS SDK for pandas layer in .chalice/config.json is its Python 3.11 build


def layer_arns(stage: str) -> list[str]:
    """The Lambda layer ARNs `.chalice/config.json` gives a stage's functions."""
    functions = chalice_config().get("stages", {}).get(stage, {}).get("lambda_functions", {})
    return [arn for f in functions.values() for arn in f.get("layers", [])]


def preflight(settings: Settings, stage: Stage, *, python: tuple[int, int], cli_region: str | None) -> list[str]:
    """What would make `chalice deploy --stage STAGE` deploy something broken, each as one line (none: go ahead):
    - Chalice sets the Lambda runtime from the Python that runs it, and the layer is the 3.11 build;
    - the region lives in three places (lakehouse.toml, the layers' ARNs, the profile `chalice deploy` uses), and a
      layer from another region or a deploy into another region fails, or deploys apart from the stage's resources;
    - the validator's timeout, the file size limits, the queue's visibility and the ledger's lease must agree."""
    problems = []
    region = stage.region
    if python != LAYER_PYTHON:
        problems.append(
            f"Python {python[0]}.{python[1]} would make Chalice deploy a python{python[0]}.{python[1]} runtime, "
            f"but the SDK for pandas layer is the Python {LAYER_PYTHON[0]}.{LAYER_PYTHON[1]} build: deploy from 3.11"
        )
    for arn in layer_arns(stage.name):
        if arn.split(":")[3] != region:
            problems.append(
                f"layer {arn} is in {arn.split(':')[3]}, stage {stage.name} in {region}: use the {region} ARN"
            )
    if cli_region and cli_region != region:
        problems.append(
            f"the AWS profile's region is {cli_region}, stage {stage.name} is in {region} (lakehouse.toml): "
            f"set AWS_REGION={region} for chalice deploy"
        )
    return problems + validator_sizing(settings, stage)


# What the validator streams a second, at the least, on its 1,769 MB (one vCPU, Lambda developer guide, "memory and
# computing power"): bench/validate.py measures 176 MB/s of plain CSV on one core here; gunzip and reading from S3
# cost more, so the sizing plans on a quarter of it.
VALIDATOR_BYTES_PER_SECOND = 40 * 1024**2


def validator_sizing(settings: Settings, stage: Stage) -> list[str]:
    """Every file the limits allow must be validated within the validator's timeout (else it times out, comes back
    and ends in the dead-letter queue); the queue hides a message six times that long (the Lambda developer guide's
    advice for SQS event sources), and the ledger's lease outlasts a validation."""
    timeout = int(chalice_config()["lambda_functions"]["validate"]["lambda_timeout"])
    largest = settings.limits.max_decompressed_bytes
    problems = []
    if largest / VALIDATOR_BYTES_PER_SECOND > 0.8 * timeout:
        problems.append(
            f"[limits] max_decompressed_bytes = {largest:,} takes about {largest / VALIDATOR_BYTES_PER_SECOND:.0f} s "
            f"to validate at {VALIDATOR_BYTES_PER_SECOND / 1024**2:.0f} MiB/s, past 80% of the validator's {timeout} s "
            "timeout: lower it"
        )
    if stage.queue_visibility_seconds < 6 * timeout:
        problems.append(
            f"queue_visibility_seconds = {stage.queue_visibility_seconds} (stage {stage.name}): make it at least six "
            f"times the validator's timeout, {6 * timeout}"
        )
    if stage.lease_seconds <= timeout:
        problems.append(
            f"lease_seconds = {stage.lease_seconds} (stage {stage.name}): make it longer than the validator's "
            f"timeout ({timeout} s), or a redelivery takes over a file still being validated"
        )
    return problems


def stage_environment(stage: Stage, account: str) -> dict[str, str]:
    """What a stage's Lambdas learn from their environment and the configuration can change: the lake bucket
    (where the rest of the configuration is), the ingest queue (the validator's trigger) and the account (the
    default bucket names carry it)."""
    return {
        "LAKEHOUSE_BUCKET": stage.bucket,
        "LAKEHOUSE_INGEST_QUEUE": stage.ingest_queue,
        "LAKEHOUSE_ACCOUNT": account,
    }


def write_stage(
    settings: Settings, stage: Stage, account: str, project_dir: Path = PROJECT_DIR, lifecycle: Iterable[str] = ()
) -> list[str]:
    """Write what `chalice deploy --stage STAGE` needs from config/ into the Chalice project, so that no name the
    configuration can change is written by hand twice: the stage's Lambda environment in `.chalice/config.json`
    (the rest of that file is ours to edit) and each function's own policy in `.chalice/policy-<stage>-<function>
    .json`, named by the function's `iam_policy_file` (Chalice then gives each function a role of its own,
    `<app>-<stage>-<function>`). `lifecycle`: the buckets the lifecycle definitions name. Returns the files it
    changed (none when they already say the same)."""
    from chalicelib.stage.roles import lambda_policies

    config = _with_environment(stage, account, project_dir)
    chalice_stage = config["stages"][stage.name]
    chalice_stage["autogen_policy"] = False
    chalice_stage.pop("iam_policy_file", None)  # the stage's one policy for every function, before issue 27
    functions = chalice_stage.setdefault("lambda_functions", {})
    documents: dict[str, Any] = {}
    for function, policy in lambda_policies(settings, stage, account, lifecycle).items():
        policy_file = f"policy-{stage.name}-{function}.json"
        functions.setdefault(function, {})["iam_policy_file"] = policy_file
        documents[f".chalice/{policy_file}"] = policy
    return _write(project_dir, {CONFIG_FILE: config, **documents})


def write_environment(stage: Stage, account: str, project_dir: Path = PROJECT_DIR) -> list[str]:
    """Only the stage's Lambda environment (the local stage's Lambdas run in-process, with no role of their own)."""
    return _write(project_dir, {CONFIG_FILE: _with_environment(stage, account, project_dir)})


def _with_environment(stage: Stage, account: str, project_dir: Path) -> dict[str, Any]:
    config: dict[str, Any] = json.loads((project_dir / CONFIG_FILE).read_text())
    chalice_stage = config["stages"].setdefault(stage.name, {})
    chalice_stage["environment_variables"] = {
        **chalice_stage.get("environment_variables", {}),
        **stage_environment(stage, account),
    }
    return config


def _write(project_dir: Path, documents: dict[str, Any]) -> list[str]:
    """Write each JSON document whose file says something else; the files written."""
    changed = []
    for name, document in documents.items():
        path, text = project_dir / name, json.dumps(document, indent=2) + "\n"
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            changed.append(name)
    return changed
