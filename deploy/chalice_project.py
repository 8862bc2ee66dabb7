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
