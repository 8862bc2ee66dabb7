"""The Chalice project on disk: `.chalice/config.json` and the environment it gives each stage's Lambdas.

Only the CLI reads it: a deployed Lambda has no `.chalice/` folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parent.parent


CHALICE_CONFIG = PROJECT_DIR / ".chalice" / "config.json"


def chalice_config() -> dict[str, Any]:
    return json.loads(CHALICE_CONFIG.read_text())


def chalice_stage_env(stage: str) -> dict[str, str]:
    """The environment `.chalice/config.json` gives a stage's Lambdas (global, then stage values)."""
    config = chalice_config()
    return {
        **config.get("environment_variables", {}),
        **config.get("stages", {}).get(stage, {}).get("environment_variables", {}),
    }


LAYER_PYTHON = (3, 11)  # the AWS SDK for pandas layer in .chalice/config.json is its Python 3.11 build


def layer_arns(stage: str) -> list[str]:
    """The Lambda layer ARNs `.chalice/config.json` gives a stage's functions."""
    functions = chalice_config().get("stages", {}).get(stage, {}).get("lambda_functions", {})
    return [arn for f in functions.values() for arn in f.get("layers", [])]


def preflight(stage: str, region: str, *, python: tuple[int, int], cli_region: str | None) -> list[str]:
    """What would make `chalice deploy --stage STAGE` deploy something broken, each as one line (none: go ahead):
    - Chalice sets the Lambda runtime from the Python that runs it, and the layer is the 3.11 build;
    - the region lives in three places (lakehouse.toml, the layers' ARNs, the profile `chalice deploy` uses), and a
      layer from another region or a deploy into another region fails, or deploys apart from the stage's resources."""
    problems = []
    if python != LAYER_PYTHON:
        problems.append(
            f"Python {python[0]}.{python[1]} would make Chalice deploy a python{python[0]}.{python[1]} runtime, "
            f"but the SDK for pandas layer is the Python {LAYER_PYTHON[0]}.{LAYER_PYTHON[1]} build: deploy from 3.11"
        )
    for arn in layer_arns(stage):
        if arn.split(":")[3] != region:
            problems.append(f"layer {arn} is in {arn.split(':')[3]}, stage {stage} in {region}: use the {region} ARN")
    if cli_region and cli_region != region:
        problems.append(
            f"the AWS profile's region is {cli_region}, stage {stage} is in {region} (lakehouse.toml): "
            f"set AWS_REGION={region} for chalice deploy"
        )
    return problems
