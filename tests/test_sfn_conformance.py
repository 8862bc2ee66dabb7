"""The local Step Functions executor against the worked examples of the AWS Step Functions developer guide.

Each tests/sfn_conformance/*.json holds one page's examples as the page gives them: its URL, section, input,
definition or state, the task's result, and the expected output or the state a Choice goes to. `compare` lists
the only paths checked where the page gives part of the output or has a slip, `refused` marks what the executor
refuses before running, and `skip` says why an example the page gets wrong is not checked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lakehouse.stepfunctions import Executor, TaskError, UnsupportedDefinition, get_path

PAGES = sorted((Path(__file__).parent / "sfn_conformance").glob("*.json"))
EXAMPLES = [
    pytest.param(page, example, id=f"{path.stem}: {example['section']}")
    for path in PAGES
    for page in [json.loads(path.read_text())]
    for example in page["examples"]
]


def definition_of(example: dict[str, Any]) -> dict[str, Any]:
    if "definition" in example:
        return example["definition"]
    state = {k: v for k, v in example["state"].items() if k != "Next"}
    return {"StartAt": "Example", "States": {"Example": {**state, "End": True}, **example.get("extra_states", {})}}


def test_every_page_names_its_source_and_every_example_is_complete():
    assert len(PAGES) >= 5
    for path in PAGES:
        page = json.loads(path.read_text())
        assert page["page"].startswith("https://docs.aws.amazon.com/step-functions/latest/dg/"), path
        for example in page["examples"]:
            assert {"section", "input"} <= set(example), (path, example)
            assert "expected" in example or "expected_transition" in example, (path, example["section"])
            assert ("definition" in example) != ("state" in example), (path, example["section"])
            assert "compare" not in example or "note" in example, "a partial comparison says why"


@pytest.mark.parametrize(("page", "example"), EXAMPLES)
def test_the_executor_gives_the_documented_output(page, example):
    if "skip" in example:
        pytest.skip(example["skip"])
    seen: list[Any] = []

    def dispatch(resource: str, params: Any) -> Any:
        seen.append(params)
        if "task_error" in example:
            raise TaskError(example["task_error"]["Error"], example["task_error"].get("Cause", ""))
        return example.get("task_result")

    if "refused" in example:
        with pytest.raises(UnsupportedDefinition, match=example["refused"]):
            Executor(definition_of(example), dispatch)
        return
    execution = Executor(definition_of(example), dispatch).run(
        example.get("execution_name", "example"), example["input"]
    )
    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    if "expected_transition" in example:
        taken = {e["state"]: e["next"] for e in execution.history if e["event"] == "StateExited" and "next" in e}
        assert taken == example["expected_transition"]
    elif "compare" in example:
        for path in example["compare"]:
            assert get_path(execution.output, path) == get_path(example["expected"], path), path
    else:
        assert execution.output == example["expected"]
    if "task_input" in example:
        assert seen == [example["task_input"]]
