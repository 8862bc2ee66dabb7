"""statemachine/pipeline.asl.json: valid States Language (checked by statelint), complete and well guarded."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chalicelib.errors import DeploymentError
from deploy.provision import STATE_MACHINE_FILE, state_machine_definition
from lakehouse.stepfunctions import Executor, reachable_states, validate_definition

DEFINITION = json.loads(STATE_MACHINE_FILE.read_text())


def statelint(path: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("statelint", path=str(Path(sys.executable).parent))
    assert exe, "statelint is installed by requirements-dev.txt"
    return subprocess.run([exe, str(path)], capture_output=True, text=True)


def test_statelint_accepts_the_definition_and_each_stage_s_filled_in_version(settings, tmp_path):
    result = statelint(STATE_MACHINE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr
    for stage in settings.stages.values():
        filled = tmp_path / f"{stage.name}.json"
        filled.write_text(state_machine_definition(stage, "123456789012"))
        result = statelint(filled)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "${" not in filled.read_text()
        assert f"function:serverless-lakehouse-{stage.name}-quality_check" in filled.read_text()


def test_statelint_does_catch_a_broken_definition(tmp_path):
    broken = json.loads(STATE_MACHINE_FILE.read_text())
    broken["States"]["QualityGate"]["Default"] = "NoSuchState"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    assert statelint(path).returncode != 0


def test_an_unknown_placeholder_is_an_error(stage):
    with pytest.raises(DeploymentError, match=r"no value for placeholder\(s\) \['Typo'\]"):
        state_machine_definition(stage, "123456789012", template='{"x": "${Typo}"}')


def _machines(definition, where=""):
    """Every (path, state name, state, enclosing Map/Parallel states) of a definition, nested ones included."""
    for name, state in definition["States"].items():
        yield where, name, state
        for i, branch in enumerate(state.get("Branches", [])):
            yield from _machines(branch, f"{where}{name}.{i}.")
        if "ItemProcessor" in state:
            yield from _machines(state["ItemProcessor"], f"{where}{name}.")


def test_every_state_is_reachable():
    declared = set()

    def collect(definition, prefix):
        for name, state in definition["States"].items():
            declared.add(prefix + name)
            for i, branch in enumerate(state.get("Branches", [])):
                collect(branch, f"{prefix}{name}.{i}.")
            if "ItemProcessor" in state:
                collect(state["ItemProcessor"], f"{prefix}{name}.item.")

    collect(DEFINITION, "")
    assert declared == reachable_states(DEFINITION)


def test_every_task_retries_transient_errors_with_backoff_and_is_caught():
    tasks = [(where, name, state) for where, name, state in _machines(DEFINITION) if state["Type"] == "Task"]
    assert len(tasks) >= 9
    top_level_catches = {name for name, s in DEFINITION["States"].items() if s.get("Catch")}
    for where, name, state in tasks:
        assert state.get("Retry"), f"{where}{name} has no Retry"
        for rule in state["Retry"]:
            assert rule.get("BackoffRate", 1) > 1 or rule.get("MaxAttempts") == 1, f"{where}{name}: no backoff"
        # inside a Map, an uncaught error fails the Map, whose own Catch handles it
        assert state.get("Catch") or where.split(".")[0] in top_level_catches, f"{where}{name} is not caught"


def test_failures_go_through_the_failure_step_and_quality_errors_stop_before_curated():
    states = DEFINITION["States"]
    for name, state in states.items():
        for catch in state.get("Catch", []):
            assert catch["Next"] in ("HandleFailure", "Alert", "PipelineFailed", "SucceededWithoutNotice"), name
    gate = states["QualityGate"]
    single = [{"Variable": "$.mode", "IsPresent": True}, {"Variable": "$.mode", "StringEquals": "single"}]
    # errors first; a run whose job published curated/ itself skips the master merge (an older plan has no mode)
    assert gate["Choices"] == [
        {"Variable": "$.quality.status", "StringEquals": "ERROR", "Next": "QualityFailed"},
        {"And": single, "Next": "RefreshTables"},
    ]
    branch = states["CrawlAndProcess"]["Branches"][1]["States"]
    assert branch["OneJobOrOnePerDataset"]["Choices"] == [{"And": single, "Next": "RunWholeBatch"}]
    assert branch["RunWholeBatch"]["Parameters"] == {"JobName.$": "$.job", "Arguments": {"--run.$": "$.run"}}
    assert states["QualityFailed"]["Next"] == "RollBackFailedBatches" and gate["Default"] == "PublishCurated"
    assert states["RollBackFailedBatches"]["ItemsPath"] == "$.quality.rollback"
    assert states["RollBackFailedBatches"]["Next"] == "HandleFailure"
    assert states["HandleFailure"]["Next"] == "Alert" and states["Alert"]["Next"] == "PipelineFailed"


def test_the_local_executor_runs_every_construct_the_definition_uses():
    validate_definition(DEFINITION)
    Executor(DEFINITION, lambda resource, params: None)  # refuses unsupported states or fields
