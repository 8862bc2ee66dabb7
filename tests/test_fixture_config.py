"""The suite reads its own configuration (tests/fixtures/config/), not the shipped config/, so a user's documented
change to config/ (a new dataset contract) breaks no test; `LAKEHOUSE_CONFIG` points the commands at a folder."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import CONFIG, ROOT, SHIPPED_CONFIG

from chalicelib.config import load_settings
from chalicelib.config.model import Settings

SEED_DATASETS = {"orders", "order_items", "products", "customers", "clickstream", "reviews"}
# Test modules that check the shipped configuration itself (it loads; its lifecycle rules really delete): they read
# config/ through SHIPPED_CONFIG and hold no test to its exact dataset list.
READS_SHIPPED = {"conftest.py", "test_fixture_config.py", "test_lifecycle.py"}

RETURNS = """
description = "Returned order lines, as a user adds a dataset."
formats = ["csv"]
primary_key = ["return_id"]
partition_column = "return_date"

[columns]
return_id   = { type = "string", nullable = false }
order_id    = { type = "string", nullable = false }
return_date = { type = "date", nullable = false }

[[rules]]
check = "not_null"
column = "order_id"
"""


def lakehouse(*args: str, config: Path | None) -> subprocess.CompletedProcess[str]:
    """The CLI in its own process, as a user runs it: LAKEHOUSE_CONFIG set to `config`, or unset."""
    env = {k: v for k, v in os.environ.items() if k != "LAKEHOUSE_CONFIG" and not k.startswith("AWS_")}
    if config is not None:
        env["LAKEHOUSE_CONFIG"] = str(config)
    command = [sys.executable, "-m", "lakehouse.cli", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_the_suite_and_the_commands_it_runs_read_the_fixture_configuration(settings: Settings) -> None:
    from lakehouse import ops

    assert CONFIG.is_relative_to(ROOT / "tests") and SHIPPED_CONFIG == ROOT / "config"
    assert os.environ["LAKEHOUSE_CONFIG"] == str(CONFIG)  # inherited by every `lakehouse` process a test starts
    assert ops.CONFIG_DIR == CONFIG and ops.LIFECYCLE_DIR == CONFIG / "lifecycle"
    assert settings == load_settings(CONFIG) == ops.project_settings()
    assert set(settings.datasets) == SEED_DATASETS


def test_no_test_module_reads_the_shipped_configuration_but_those_that_check_it() -> None:
    """A path built on "config" (`ROOT / "config"`, `Path("config/...")`) or the name SHIPPED_CONFIG, outside the
    modules that check the shipped configuration. S3 keys under the bucket's config/ prefix are not paths, nor is a
    `tmp_path / "config"` copy a test makes to break."""

    def is_config(node: ast.AST) -> bool:
        return isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.split("/")[0] == "config"

    found = []
    for module in sorted((ROOT / "tests").glob("*.py")):
        if module.name in READS_SHIPPED:
            continue
        for node in ast.walk(ast.parse(module.read_text(), str(module))):
            path_part = (  # a folder named config under a test's tmp_path is the test's own
                isinstance(node, ast.BinOp)
                and isinstance(node.op, ast.Div)
                and is_config(node.right)
                and getattr(node.left, "id", "") != "tmp_path"
            )
            path_call = (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", "") == "Path"
                and any(is_config(a) for a in node.args)
            )
            shipped = isinstance(node, ast.Name | ast.alias) and "SHIPPED_CONFIG" in (
                getattr(node, "id", None),
                getattr(node, "name", None),
            )
            if path_part or path_call or shipped:
                found.append(f"{module.name}:{getattr(node, 'lineno', '?')}")
    assert found == [], "read the suite's configuration (conftest.CONFIG), not config/"


def test_the_shipped_configuration_loads_with_the_seed_datasets_and_is_the_default() -> None:
    shipped = load_settings(SHIPPED_CONFIG)
    assert set(shipped.datasets) >= SEED_DATASETS  # a user may add datasets: at least these
    assert (SHIPPED_CONFIG / "lifecycle" / "lake.toml").is_file()
    default = lakehouse("quality", "export-dqdl", "orders", config=None)  # no LAKEHOUSE_CONFIG: config/
    assert default.returncode == 0 and "ruleset for processed_orders" in default.stdout, default.stderr


def test_lakehouse_config_points_the_commands_at_another_folder(tmp_path: Path) -> None:
    """A dataset added to a copy of the configuration is known to the commands run with LAKEHOUSE_CONFIG set, and
    a folder with no lakehouse.toml is one line naming it, not a traceback."""
    mine = tmp_path / "my-config"
    shutil.copytree(CONFIG, mine)
    (mine / "datasets" / "returns.toml").write_text(RETURNS)
    done = lakehouse("quality", "export-dqdl", "returns", config=mine)
    assert done.returncode == 0 and 'IsComplete "order_id"' in done.stdout, done.stderr
    assert lakehouse("quality", "export-dqdl", "returns", config=CONFIG).returncode == 2  # not in the suite's

    missing = lakehouse("quality", "export-dqdl", "orders", config=tmp_path / "nowhere")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr + missing.stdout
    assert " ".join((missing.stdout + missing.stderr).split()) == (  # rich wraps at 160 columns
        f"error: {tmp_path / 'nowhere' / 'lakehouse.toml'}: (file) = None: missing; LAKEHOUSE_CONFIG names the "
        "configuration folder (by default the project's config/)"
    )


def test_the_demo_judges_the_datasets_it_generated_not_every_contract(tmp_path: Path) -> None:
    """`make demo` after a user adds a dataset (the documented change): the new one has no demo data, so no quality
    result, and the demo still passes; a generated dataset left unjudged still fails it."""
    from lakehouse.demo import _quality_report

    mine = tmp_path / "my-config"
    shutil.copytree(CONFIG, mine)
    (mine / "datasets" / "returns.toml").write_text(RETURNS)
    manifest = {"datasets": {name: {"rule_failures": {}} for name in SEED_DATASETS}}

    class Ledger:
        def __init__(self, judged: set[str]) -> None:
            self.judged = judged

        def quality_history(self, dataset: str, limit: int) -> list[dict[str, object]]:
            return [{"dataset": dataset, "batch": 1, "checks": []}] if dataset in self.judged else []

    assert _quality_report(load_settings(mine), Ledger(SEED_DATASETS), manifest, False)
    assert not _quality_report(load_settings(mine), Ledger(SEED_DATASETS - {"reviews"}), manifest, False)
