"""Refuse, before an execution starts, any part of a definition the local executor would not run as AWS does.

Every state, field, path, Choice rule, Retry/Catch rule and intrinsic call is checked; a refusal names the state
and the field (`Crawl.ItemProcessor.Poll.Parameters.n.$: ...`). Pages cited are in the AWS Step Functions developer
guide (https://docs.aws.amazon.com/step-functions/latest/dg/).
"""

from __future__ import annotations

from typing import Any

from lakehouse.asl import (
    COMPARISONS,
    TYPE_TESTS,
    UnsupportedDefinition,
    check_reference_path,
    parse_intrinsic,
    tokens,
)

STATE_FIELDS = {
    "Pass": {"Result", "ResultPath", "Parameters"},
    "Task": {"Resource", "Parameters", "ResultSelector", "ResultPath", "Retry", "Catch"},
    "Choice": {"Choices", "Default"},
    "Wait": {"Seconds", "SecondsPath"},
    "Parallel": {"Branches", "Parameters", "ResultSelector", "ResultPath", "Retry", "Catch"},
    "Map": {"ItemsPath", "ItemSelector", "ItemProcessor", "MaxConcurrency", "ResultSelector", "ResultPath", "Retry",
            "Catch", "Iterator", "Parameters"},
    "Succeed": set(),
    "Fail": {"Error", "Cause", "ErrorPath", "CausePath"},
}  # fmt: skip
_COMMON = {"Type", "Comment", "Next", "End", "InputPath", "OutputPath", "QueryLanguage"}
_MACHINE = {"StartAt", "States", "Comment"}
_TOP = _MACHINE | {"Version", "TimeoutSeconds", "QueryLanguage"}
_RETRY = {
    "ErrorEquals",
    "IntervalSeconds",
    "MaxAttempts",
    "BackoffRate",
    "MaxDelaySeconds",
    "JitterStrategy",
    "Comment",
}
_CATCH = {"ErrorEquals", "Next", "ResultPath", "Comment"}
_WAIT_MAX = 99_999_999  # "an integer value from 0 to 99999999" (state-wait.html)


def _refuse(at: str, why: str) -> UnsupportedDefinition:
    return UnsupportedDefinition(f"{at}: {why}")


def validate_definition(definition: dict[str, Any], where: str = "") -> None:
    """Refuse, before running, anything this executor would not run faithfully."""
    _machine(definition, where, _TOP if not where else _MACHINE)


def _machine(machine: dict[str, Any], where: str, allowed: set[str]) -> None:
    at = where.rstrip(".") or "definition"
    unknown = set(machine) - allowed
    if unknown:
        raise _refuse(at, f"field(s) {sorted(unknown)} not supported")
    _query_language(machine, at)
    timeout = machine.get("TimeoutSeconds")
    if timeout is not None and (not isinstance(timeout, int) or isinstance(timeout, bool) or timeout <= 0):
        raise _refuse(f"{at}.TimeoutSeconds", f"must be a positive integer, not {timeout!r}")
    states = machine.get("States")
    if not isinstance(states, dict) or not states:
        raise _refuse(at, "States must be a non-empty object")
    if machine.get("StartAt") not in states:
        raise _refuse(at, f"StartAt {machine.get('StartAt')!r} is not a state")
    for name, state in states.items():
        _state(state, f"{where}{name}", states)


def _query_language(node: dict[str, Any], at: str) -> None:
    # JSONata states evaluate `{% ... %}` expressions, Arguments, Output and Assign: none of that is implemented
    # here, and running them as JSONPath would pass the literal text on (transforming-data.html).
    language = node.get("QueryLanguage", "JSONPath")
    if language != "JSONPath":
        raise _refuse(f"{at}.QueryLanguage", f"{language!r} is not supported (only JSONPath)")


def _state(state: dict[str, Any], at: str, states: dict[str, Any]) -> None:
    kind = state.get("Type")
    if kind not in STATE_FIELDS:
        raise _refuse(at, f"state type {kind!r} is not supported")
    unknown = set(state) - STATE_FIELDS[kind] - _COMMON
    if unknown:
        raise _refuse(at, f"field(s) {sorted(unknown)} not supported for {kind}")
    _query_language(state, at)
    for target in [state.get("Next"), state.get("Default")]:
        _target(target, at, states)
    if kind not in ("Choice", "Succeed", "Fail") and ("Next" in state) == bool(state.get("End")):
        raise _refuse(at, "needs exactly one of Next and End")
    for field in ("InputPath", "OutputPath"):
        if state.get(field) is not None:
            _path(state[field], f"{at}.{field}")
    if state.get("ResultPath") is not None:
        _result_path(state["ResultPath"], f"{at}.ResultPath")
    for field in ("Parameters", "ResultSelector", "ItemSelector"):
        if field in state:
            _template(state[field], f"{at}.{field}")
    for i, rule in enumerate(state.get("Retry", [])):
        _retry(rule, f"{at}.Retry[{i}]")
    for i, rule in enumerate(state.get("Catch", [])):
        _catch(rule, f"{at}.Catch[{i}]", states)
    {"Choice": _choice, "Wait": _wait, "Fail": _fail, "Map": _map, "Parallel": _parallel}.get(kind, _nothing)(
        state, at, states
    )


def _nothing(state: dict[str, Any], at: str, states: dict[str, Any]) -> None:
    return None


def _target(target: Any, at: str, states: dict[str, Any]) -> None:
    if target is not None and target not in states:
        raise _refuse(at, f"transition to unknown state {target!r}")


def _path(path: Any, at: str, context: bool = True) -> None:
    """A JSONPath into the state's data ($...) or, where AWS reads it, the context object ($$...): InputPath,
    OutputPath, ItemsPath and Choice rules (input-output-contextobject.html), not ResultPath or SecondsPath."""
    if not isinstance(path, str):
        raise _refuse(at, f"a path must be a string, not {path!r}")
    if path.startswith("$$") and not context:
        raise _refuse(at, f"context object path {path!r} is not supported here")
    try:
        tokens("$" + path[2:] if path.startswith("$$") else path)
    except UnsupportedDefinition as exc:
        raise _refuse(at, str(exc)) from None


def _result_path(path: Any, at: str) -> None:
    _path(path, at, context=False)
    try:
        check_reference_path(path)
    except UnsupportedDefinition as exc:
        raise _refuse(at, str(exc)) from None


def _expression(value: Any, at: str) -> None:
    """The value of a `.$` field: a path, a context path or an intrinsic call (intrinsic-functions.html)."""
    if not isinstance(value, str):
        raise _refuse(at, f"the value of a .$ field must be a string, not {value!r}")
    try:
        if value.startswith("States."):
            parse_intrinsic(value)
        elif value.startswith("$$"):
            tokens("$" + value[2:])
        else:
            tokens(value)
    except UnsupportedDefinition as exc:
        raise _refuse(at, str(exc)) from None


def _template(template: Any, at: str) -> None:
    if isinstance(template, dict):
        for key, value in template.items():
            if key.endswith(".$"):
                _expression(value, f"{at}.{key}")
            else:
                _template(value, f"{at}.{key}")
    elif isinstance(template, list):
        for i, value in enumerate(template):
            _template(value, f"{at}[{i}]")


def _errors(rule: dict[str, Any], at: str) -> None:
    errors = rule.get("ErrorEquals")
    if not isinstance(errors, list) or not errors or not all(isinstance(e, str) for e in errors):
        raise _refuse(f"{at}.ErrorEquals", "must be a non-empty list of error names")


def _retry(rule: dict[str, Any], at: str) -> None:
    unknown = set(rule) - _RETRY
    if unknown:
        raise _refuse(at, f"field(s) {sorted(unknown)} not supported in a Retry rule")
    _errors(rule, at)
    for field in ("IntervalSeconds", "MaxAttempts", "MaxDelaySeconds", "BackoffRate"):
        value = rule.get(field, 1)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise _refuse(f"{at}.{field}", f"must be a non-negative number, not {value!r}")
    if rule.get("JitterStrategy", "NONE") not in ("FULL", "NONE"):
        raise _refuse(f"{at}.JitterStrategy", f"must be FULL or NONE, not {rule['JitterStrategy']!r}")


def _catch(rule: dict[str, Any], at: str, states: dict[str, Any]) -> None:
    unknown = set(rule) - _CATCH
    if unknown:
        raise _refuse(at, f"field(s) {sorted(unknown)} not supported in a Catch rule")
    _errors(rule, at)
    _target(rule.get("Next"), at, states)
    if "Next" not in rule:
        raise _refuse(at, "a Catch rule needs Next")
    if rule.get("ResultPath") is not None:
        _result_path(rule["ResultPath"], f"{at}.ResultPath")


def _choice(state: dict[str, Any], at: str, states: dict[str, Any]) -> None:
    choices = state.get("Choices")
    if not isinstance(choices, list) or not choices:
        raise _refuse(f"{at}.Choices", "must be a non-empty list of rules")
    for i, rule in enumerate(choices):
        _rule(rule, f"{at}.Choices[{i}]", top=True)
        _target(rule.get("Next"), f"{at}.Choices[{i}]", states)


_SUPPORTED = sorted({*COMPARISONS, *(op + "Path" for op in COMPARISONS if op != "StringMatches"), *TYPE_TESTS,
                     "IsPresent", "And", "Or", "Not"})  # fmt: skip


def _rule(rule: Any, at: str, top: bool) -> None:
    if not isinstance(rule, dict):
        raise _refuse(at, "a Choice rule must be an object")
    keys = set(rule) - {"Comment"}
    if top != ("Next" in rule):
        raise _refuse(at, "a top-level Choice rule needs Next" if top else "a nested Choice rule has no Next")
    keys.discard("Next")
    if keys & {"And", "Or", "Not"}:
        if len(keys) != 1:
            raise _refuse(at, f"{sorted(keys)}: And, Or and Not stand alone in a rule")
        (op,) = keys
        if op == "Not":
            _rule(rule["Not"], f"{at}.Not", top=False)
        elif not isinstance(rule[op], list) or not rule[op]:
            raise _refuse(f"{at}.{op}", "must be a non-empty list of rules")
        else:
            for i, inner in enumerate(rule[op]):
                _rule(inner, f"{at}.{op}[{i}]", top=False)
        return
    if "Variable" not in keys:
        raise _refuse(at, "a comparison needs Variable")
    _path(rule["Variable"], f"{at}.Variable")
    operators = keys - {"Variable"}
    if len(operators) != 1:
        raise _refuse(at, f"a comparison has exactly one operator, not {sorted(operators)}")
    (op,) = operators
    operand = rule[op]
    if op in COMPARISONS:
        if not COMPARISONS[op][1](operand):
            raise _refuse(f"{at}.{op}", f"{operand!r} is not a valid operand")
    elif op.endswith("Path") and op[:-4] in COMPARISONS and op != "StringMatchesPath":
        _path(operand, f"{at}.{op}")
    elif op in TYPE_TESTS or op == "IsPresent":
        if not isinstance(operand, bool):
            raise _refuse(f"{at}.{op}", "must be true or false")
    else:
        raise _refuse(f"{at}.{op}", f"Choice operator {op!r} is not supported (only {', '.join(_SUPPORTED)})")


def _wait(state: dict[str, Any], at: str, states: dict[str, Any]) -> None:
    if ("Seconds" in state) == ("SecondsPath" in state):
        raise _refuse(at, "a Wait needs exactly one of Seconds and SecondsPath (Timestamp is not supported)")
    if "SecondsPath" in state:
        _path(state["SecondsPath"], f"{at}.SecondsPath", context=False)
        return
    seconds = state["Seconds"]
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 0 <= seconds <= _WAIT_MAX:
        raise _refuse(f"{at}.Seconds", f"must be an integer from 0 to {_WAIT_MAX}, not {seconds!r}")


def _fail(state: dict[str, Any], at: str, states: dict[str, Any]) -> None:
    for literal, path in (("Error", "ErrorPath"), ("Cause", "CausePath")):
        if literal in state and path in state:
            raise _refuse(at, f"{literal} and {path} exclude each other")
        if literal in state and not isinstance(state[literal], str):
            raise _refuse(f"{at}.{literal}", "must be a string")
        if path in state:
            _expression(state[path], f"{at}.{path}")


def _map(state: dict[str, Any], at: str, states: dict[str, Any]) -> None:
    if "ItemsPath" in state:
        _path(state["ItemsPath"], f"{at}.ItemsPath")
    concurrency = state.get("MaxConcurrency", 0)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 0:
        raise _refuse(f"{at}.MaxConcurrency", f"must be a non-negative integer, not {concurrency!r}")
    # Iterator and Parameters are the older names of ItemProcessor and ItemSelector (state-map-inline.html)
    for new, old in (("ItemProcessor", "Iterator"), ("ItemSelector", "Parameters")):
        if new in state and old in state:
            raise _refuse(at, f"{new} and {old} exclude each other")
    field = "ItemProcessor" if "ItemProcessor" in state else "Iterator"
    processor = state.get(field)
    if not isinstance(processor, dict):
        raise _refuse(at, "a Map needs an ItemProcessor")
    config = processor.get("ProcessorConfig", {})
    if set(config) - {"Mode"} or config.get("Mode", "INLINE") != "INLINE":
        mode = config.get("Mode")
        raise _refuse(f"{at}.{field}.ProcessorConfig", f"Map mode {mode!r} is not supported (only INLINE)")
    _machine(processor, f"{at}.{field}.", _MACHINE | {"ProcessorConfig"})


def _parallel(state: dict[str, Any], at: str, states: dict[str, Any]) -> None:
    branches = state.get("Branches")
    if not isinstance(branches, list) or not branches:
        raise _refuse(f"{at}.Branches", "must be a non-empty list of state machines")
    for i, branch in enumerate(branches):
        _machine(branch, f"{at}.Branches[{i}].", _MACHINE)
