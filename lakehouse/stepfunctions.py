"""A local executor for Amazon States Language: runs the very statemachine/ JSON on the local stage.

moto's Step Functions cannot run `glue:startJobRun.sync`, so the local stage interprets the definition
itself and hands each Task to a dispatcher (Lambda handlers, local Glue processes, SNS, ...). It supports
the subset the project's definitions use and refuses anything else before running, naming the field:

- states: Pass, Task, Choice, Wait, Parallel, Map (inline: ItemsPath, ItemSelector, ItemProcessor,
  MaxConcurrency), Succeed, Fail;
- InputPath, Parameters (with `.$` paths, `[*]` wildcards, `$$` context paths and the intrinsics
  `States.Format`, `States.ArrayContains`, `States.JsonToString`, `States.MathAdd`), ResultSelector,
  ResultPath, OutputPath;
- Retry (ErrorEquals, IntervalSeconds, MaxAttempts, BackoffRate, MaxDelaySeconds) and Catch;
- Choice rules: And, Or, Not, IsPresent, IsNull, StringEquals, StringMatches, NumericEquals,
  NumericLessThan(Equals), NumericGreaterThan(Equals), BooleanEquals, and the `...Path` forms.

The execution history (state entered/exited, task failures, retries) is kept for the CLI. The definition's
TimeoutSeconds is enforced as AWS does: past it the execution fails with States.Timeout, which no Catch takes; a
state already running (a local Glue process) is not cut short, the next one does not start, and a Wait ends at the
deadline. A Task's own TimeoutSeconds/HeartbeatSeconds are refused.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chalicelib.errors import LakehouseError

Dispatch = Callable[[str, Any], Any]  # (resource ARN, parameters) -> result; raises TaskError
Record = Callable[..., None]  # (event, state label, **details): one history event

_STATE_FIELDS = {
    "Pass": {"Result", "ResultPath", "Parameters"},
    "Task": {"Resource", "Parameters", "ResultSelector", "ResultPath", "Retry", "Catch"},
    "Choice": {"Choices", "Default"},
    "Wait": {"Seconds", "SecondsPath"},
    "Parallel": {"Branches", "Parameters", "ResultSelector", "ResultPath", "Retry", "Catch"},
    "Map": {
        "ItemsPath",
        "ItemSelector",
        "ItemProcessor",
        "MaxConcurrency",
        "ResultSelector",
        "ResultPath",
        "Retry",
        "Catch",
    },
    "Succeed": set(),
    "Fail": {"Error", "Cause", "ErrorPath", "CausePath"},
}
_COMMON = {"Type", "Comment", "Next", "End", "InputPath", "OutputPath"}
_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "StringEquals": lambda a, b: isinstance(a, str) and a == b,
    "StringMatches": lambda a, b: isinstance(a, str) and fnmatch.fnmatchcase(a, b),
    "NumericEquals": lambda a, b: _number(a) and a == b,
    "NumericLessThan": lambda a, b: _number(a) and a < b,
    "NumericLessThanEquals": lambda a, b: _number(a) and a <= b,
    "NumericGreaterThan": lambda a, b: _number(a) and a > b,
    "NumericGreaterThanEquals": lambda a, b: _number(a) and a >= b,
    "BooleanEquals": lambda a, b: isinstance(a, bool) and a == b,
}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class UnsupportedDefinition(LakehouseError):
    """The definition uses something this executor does not implement (it says what and where)."""


class TaskError(LakehouseError):
    """A failure with a States error name, as a Task or a Fail state reports it."""

    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(f"{error}: {cause}")
        self.error, self.cause = error, cause


@dataclass
class Execution:
    name: str
    status: str = "RUNNING"  # SUCCEEDED | FAILED
    output: Any = None
    error: str | None = None
    cause: str | None = None
    failed_state: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds"))
    stopped_at: str | None = None


# -- paths -----------------------------------------------------------------------------------------------
_TOKEN = re.compile(r"\.([A-Za-z0-9_\-]+)|\[(\d+)\]|\['([^']+)'\]|\[(\*)\]")
_ALL = "*"  # the [*] token: every element of a list


def _tokens(path: str) -> list[str | int]:
    if not (path == "$" or path.startswith(("$.", "$["))):
        raise TaskError("States.Runtime", f"unsupported path {path!r}: paths start with $")
    rest, out = path[1:], []
    while rest:
        match = _TOKEN.match(rest)
        if not match:
            raise TaskError("States.Runtime", f"unsupported path {path!r} (only .name, [n], [*] and ['name'])")
        out.append(int(match[2]) if match[2] is not None else (match[1] or match[3] or match[4]))
        rest = rest[match.end() :]
    return out


_MISSING = object()  # get_path: no default given
_ABSENT = object()  # a Choice variable that is not in the input


def get_path(data: Any, path: str, default: Any = _MISSING) -> Any:
    try:
        return _walk(data, _tokens(path))
    except (KeyError, IndexError, TypeError):
        if default is not _MISSING:
            return default
        raise TaskError("States.Runtime", f"path {path!r} not found in the input") from None


def _walk(value: Any, tokens: list[str | int]) -> Any:
    for i, token in enumerate(tokens):
        if token == _ALL:  # [*]: the rest of the path applied to every element (missing ones left out)
            if not isinstance(value, list):
                raise TypeError("[*] applies to a list")  # caught by get_path: a States.Runtime TaskError
            out = []
            for element in value:
                try:
                    out.append(_walk(element, tokens[i + 1 :]))
                except (KeyError, IndexError, TypeError):
                    continue
            return out
        value = value[token]
    return value


def set_path(data: Any, path: str, value: Any) -> Any:
    """A copy of `data` with `value` at `path` (ResultPath semantics: intermediate objects are created)."""
    tokens = _tokens(path)
    if not tokens:
        return value
    if _ALL in tokens or any(isinstance(t, int) for t in tokens):
        raise UnsupportedDefinition(f"ResultPath {path!r}: only .name steps can be written")
    root = copy.deepcopy(data) if isinstance(data, dict) else {}
    node = root
    for token in tokens[:-1]:
        if not isinstance(node.get(token), dict):
            node[token] = {}
        node = node[token]
    node[tokens[-1]] = value
    return root


def _arguments(text: str) -> list[str]:
    """Split an intrinsic's argument list at top-level commas (quotes and brackets respected)."""
    args, depth, quoted, current = [], 0, False, ""
    for i, ch in enumerate(text):
        if ch == "'" and (i == 0 or text[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and ch in "([":
            depth += 1
        elif not quoted and ch in ")]":
            depth -= 1
        elif not quoted and depth == 0 and ch == ",":
            args.append(current.strip())
            current = ""
            continue
        current += ch
    if current.strip():
        args.append(current.strip())
    return args


def _argument(text: str, data: Any, context: Any) -> Any:
    if text.startswith("'") and text.endswith("'"):
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    if text in ("true", "false", "null"):
        return json.loads(text)
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return json.loads(text)
    return _resolve(text, data, context)


def _intrinsic(expression: str, data: Any, context: Any) -> Any:
    match = re.fullmatch(r"(States\.\w+)\((.*)\)", expression.strip(), re.DOTALL)
    if not match or match[1] not in _INTRINSICS:
        raise UnsupportedDefinition(
            f"intrinsic function {expression!r} is not supported (only {', '.join(sorted(_INTRINSICS))})"
        )
    values = [_argument(a, data, context) for a in _arguments(match[2])]
    return _INTRINSICS[match[1]](expression, *values)


def _format(expression: str, template: Any = None, *values: Any) -> str:
    if not isinstance(template, str):
        raise TaskError("States.IntrinsicFailure", f"{expression}: the first argument is a string template")
    parts = template.split("{}")
    if len(parts) - 1 != len(values):
        raise TaskError("States.IntrinsicFailure", f"{expression}: {len(parts) - 1} placeholders, {len(values)} args")
    out = parts[0]
    for value, part in zip(values, parts[1:], strict=True):
        out += (value if isinstance(value, str) else json.dumps(value)) + part
    return out


def _array_contains(expression: str, array: Any = None, value: Any = None) -> bool:
    if not isinstance(array, list):
        raise TaskError("States.IntrinsicFailure", f"{expression}: the first argument must be an array")
    return value in array


def _math_add(expression: str, a: Any = None, b: Any = None) -> int:
    if not (isinstance(a, int) and isinstance(b, int)) or isinstance(a, bool) or isinstance(b, bool):
        raise TaskError("States.IntrinsicFailure", f"{expression}: both arguments must be integers")
    return a + b


_INTRINSICS: dict[str, Callable[..., Any]] = {
    "States.Format": _format,
    "States.MathAdd": _math_add,
    "States.ArrayContains": _array_contains,
    "States.JsonToString": lambda _, value=None: json.dumps(value, separators=(",", ":")),
}


def _resolve(expression: str, data: Any, context: Any) -> Any:
    if expression.startswith("$$"):
        return get_path(context, "$" + expression[2:])
    if expression.startswith("$"):
        return get_path(data, expression)
    if expression.startswith("States."):
        return _intrinsic(expression, data, context)
    raise UnsupportedDefinition(f"cannot evaluate {expression!r}")


def build_parameters(template: Any, data: Any, context: Any) -> Any:
    if isinstance(template, dict):
        out = {}
        for key, value in template.items():
            if key.endswith(".$"):
                out[key[:-2]] = _resolve(value, data, context)
            else:
                out[key] = build_parameters(value, data, context)
        return out
    if isinstance(template, list):
        return [build_parameters(v, data, context) for v in template]
    return template


# -- the executor ------------------------------------------------------------------------------------------
def validate_definition(definition: dict[str, Any], where: str = "") -> None:
    """Refuse, before running, anything this executor would not run faithfully."""
    states = definition.get("States", {})
    if definition.get("StartAt") not in states:
        raise UnsupportedDefinition(f"{where or 'definition'}: StartAt {definition.get('StartAt')!r} is not a state")
    for name, state in states.items():
        kind = state.get("Type")
        if kind not in _STATE_FIELDS:
            raise UnsupportedDefinition(f"{where}{name}: state type {kind!r} is not supported")
        unknown = set(state) - _STATE_FIELDS[kind] - _COMMON
        if unknown:
            raise UnsupportedDefinition(f"{where}{name}: field(s) {sorted(unknown)} not supported for {kind}")
        for target in [
            state.get("Next"),
            state.get("Default"),
            *(c.get("Next") for c in state.get("Choices", [])),
            *(c.get("Next") for c in state.get("Catch", [])),
        ]:
            if target is not None and target not in states:
                raise UnsupportedDefinition(f"{where}{name}: transition to unknown state {target!r}")
        for i, branch in enumerate(state.get("Branches", [])):
            validate_definition(branch, f"{where}{name}.Branches[{i}].")
        if kind == "Map":
            processor = state.get("ItemProcessor", {})
            mode = processor.get("ProcessorConfig", {}).get("Mode", "INLINE")
            if mode != "INLINE":
                raise UnsupportedDefinition(f"{where}{name}: Map mode {mode!r} is not supported (only INLINE)")
            validate_definition(
                {k: v for k, v in processor.items() if k != "ProcessorConfig"}, f"{where}{name}.ItemProcessor."
            )


def reachable_states(definition: dict[str, Any]) -> set[str]:
    """Names of the states reachable from StartAt (branch states included, prefixed by their Parallel)."""
    seen: set[str] = set()
    states, todo = definition["States"], [definition["StartAt"]]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        state = states[name]
        todo += [t for t in [state.get("Next"), state.get("Default")] if t]
        todo += [c["Next"] for c in state.get("Choices", []) + state.get("Catch", [])]
        for i, branch in enumerate(state.get("Branches", [])):
            seen |= {f"{name}.{i}.{s}" for s in reachable_states(branch)}
        if "ItemProcessor" in state:
            seen |= {f"{name}.item.{s}" for s in reachable_states(state["ItemProcessor"])}
    return seen


# States.ALL catches neither: "The States.ALL error type can't catch the States.DataLimitExceeded terminal error type
# and runtime error types" (Step Functions developer guide, "Handling errors in Step Functions workflows").
_UNCATCHABLE = ("States.Runtime", "States.DataLimitExceeded")


def _matches(errors: list[str], error: str) -> bool:
    if error in _UNCATCHABLE:
        return error in errors
    return "States.ALL" in errors or error in errors or ("States.TaskFailed" in errors and error != "States.Timeout")


class Executor:
    """Runs one definition, one execution at a time; `dispatch` performs Tasks, `sleep` waits and `clock` tells the
    time for the execution's TimeoutSeconds (tests pass fake ones)."""

    def __init__(
        self,
        definition: dict[str, Any],
        dispatch: Dispatch,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        parallel_threads: bool = True,
    ) -> None:
        validate_definition(definition)
        self.definition, self.dispatch, self.sleep, self.clock = definition, dispatch, sleep, clock
        self.parallel_threads = parallel_threads
        self.deadline: float | None = None
        self._local = threading.local()  # per thread: the stop signals of the Parallel/Map states it runs inside

    def run(self, name: str, input_: Any) -> Execution:
        execution = Execution(name)
        context = {"Execution": {"Name": name, "Input": input_, "StartTime": execution.started_at}}
        lock = threading.Lock()

        def record(event: str, state: str, **details: Any) -> None:
            with lock:
                execution.history.append(
                    {
                        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                        "event": event,
                        "state": state,
                        **details,
                    }
                )

        timeout = self.definition.get("TimeoutSeconds")
        self.deadline = self.clock() + timeout if timeout else None
        try:
            execution.output = self._run_machine(self.definition, input_, context, record, "")
            execution.status = "SUCCEEDED"
        except _Failed as failed:
            execution.status, execution.error, execution.cause = "FAILED", failed.error, failed.cause
            execution.failed_state = failed.state
        execution.stopped_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        return execution

    def _run_machine(self, machine: dict[str, Any], data: Any, context: Any, record: Record, prefix: str) -> Any:
        name = machine["StartAt"]
        while True:
            state = machine["States"][name]
            label = prefix + name
            if any(s.is_set() for s in getattr(self._local, "stops", ())):
                raise _Stopped("stopped", "a sibling branch failed", label)
            if self.deadline is not None and self.clock() >= self.deadline:
                record("ExecutionTimedOut", label)
                raise _TimedOut(
                    "States.Timeout",
                    f"the execution ran past its TimeoutSeconds ({self.definition['TimeoutSeconds']})",
                    label,
                )
            record("StateEntered", label)
            kind = state["Type"]
            try:
                if kind == "Fail":
                    error, cause = state.get("Error", "States.Fail"), state.get("Cause", "")
                    if "ErrorPath" in state:
                        error = str(_resolve(state["ErrorPath"], data, context))
                    if "CausePath" in state:
                        cause = str(_resolve(state["CausePath"], data, context))
                    raise TaskError(error, cause)
                if kind == "Choice":
                    effective = self._input(state, data)
                    name = self._choose(state, effective, label)
                    record("StateExited", label, next=name)
                    data = self._output(state, effective)
                    continue
                data = self._execute(state, data, context, record, label)
            except TaskError as exc:
                caught = next((c for c in state.get("Catch", []) if _matches(c["ErrorEquals"], exc.error)), None)
                if caught is None:
                    record("StateFailed", label, error=exc.error, cause=exc.cause)
                    raise _Failed(exc.error, exc.cause, label) from None
                record("StateCaught", label, error=exc.error, cause=exc.cause, next=caught["Next"])
                error_output = {"Error": exc.error, "Cause": exc.cause}
                result_path = caught.get("ResultPath", "$")
                data = data if result_path is None else set_path(data, result_path, error_output)
                name = caught["Next"]
                continue
            record("StateExited", label)
            if kind == "Succeed" or state.get("End"):
                return data
            name = state["Next"]

    def _execute(self, state: dict[str, Any], data: Any, context: Any, record: Record, label: str) -> Any:
        kind = state["Type"]
        effective = self._input(state, data)
        if kind == "Succeed":
            return self._output(state, effective)
        if kind == "Wait":
            seconds = state.get("Seconds")
            if seconds is None:
                seconds = get_path(effective, state["SecondsPath"])
            if self.deadline is not None:  # the execution's timeout ends a Wait too
                seconds = max(0.0, min(float(seconds), self.deadline - self.clock()))
            self.sleep(float(seconds))
            return self._output(state, effective)
        if "Parameters" in state and kind != "Map":
            effective = build_parameters(state["Parameters"], effective, context)
        if kind == "Pass":
            result = state.get("Result", effective)
        else:
            result = self._with_retry(
                state, label, record, lambda: self._work(state, effective, context, record, label)
            )
            if "ResultSelector" in state:
                result = build_parameters(state["ResultSelector"], result, context)
        result_path = state.get("ResultPath", "$")
        combined = data if result_path is None else set_path(data, result_path, result)
        return self._output(state, combined)

    def _work(self, state: dict[str, Any], effective: Any, context: Any, record: Record, label: str) -> Any:
        if state["Type"] == "Task":
            try:
                return self.dispatch(state["Resource"], effective)
            except TaskError:
                raise
            except Exception as exc:  # an unexpected failure of the dispatcher is a task failure, with its cause
                raise TaskError(type(exc).__name__, str(exc)) from exc
        if state["Type"] == "Map":
            items = get_path(effective, state.get("ItemsPath", "$"))
            if not isinstance(items, list):
                raise TaskError("States.Runtime", f"{label}: ItemsPath did not select an array")
            machine = state["ItemProcessor"]
            runs = []
            for index, item in enumerate(items):
                item_context = {**context, "Map": {"Item": {"Index": index, "Value": item}}}
                item_input = (
                    build_parameters(state["ItemSelector"], effective, item_context)
                    if "ItemSelector" in state
                    else item
                )
                runs.append((machine, item_input, item_context, f"{label}.{index}."))
            return self._run_all(runs, state.get("MaxConcurrency", 0), record)
        runs = [(branch, effective, context, f"{label}.{i}.") for i, branch in enumerate(state["Branches"])]
        return self._run_all(runs, 0, record)

    def _run_all(
        self, runs: list[tuple[dict[str, Any], Any, Any, str]], max_concurrency: int, record: Record
    ) -> list[Any]:
        """Run Parallel branches or Map iterations. The first failure fails the state and stops the others, as AWS
        does ("If any branch fails, ... the entire Parallel state fails and all its branches are stopped", Step
        Functions guide, Parallel state): no new iteration starts and a running branch enters no further state. A
        state already running finishes (a local process cannot be stopped half-way safely)."""
        results: list[Any] = [None] * len(runs)
        errors: list[_Failed] = []
        stop = threading.Event()
        outer = getattr(self._local, "stops", ())

        def run_one(i: int) -> None:
            if errors:
                return
            machine, data, context, prefix = runs[i]
            self._local.stops = (*outer, stop)
            try:
                results[i] = self._run_machine(machine, data, context, record, prefix)
            except _Stopped as stopped:
                record("BranchStopped", stopped.state)
            except _Failed as failed:
                errors.append(failed)
                stop.set()
            finally:
                self._local.stops = outer

        workers = len(runs) if max_concurrency == 0 else max_concurrency
        if self.parallel_threads and workers > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(run_one, range(len(runs))))
        else:
            for i in range(len(runs)):
                run_one(i)
        if any(s.is_set() for s in outer) and not errors:
            raise _Stopped("stopped", "an enclosing Parallel or Map failed", "")
        timed_out = next((e for e in errors if isinstance(e, _TimedOut)), None)
        if timed_out is not None:  # the whole execution has timed out: no Catch of this state may take it
            raise timed_out
        if errors:  # a failed branch or iteration fails the state with its error
            raise TaskError(errors[0].error, errors[0].cause)
        return results

    def _with_retry(self, state: dict[str, Any], label: str, record: Record, work: Callable[[], Any]) -> Any:
        attempts: dict[int, int] = {}
        while True:
            try:
                return work()
            except TaskError as exc:
                index, rule = next(
                    ((i, r) for i, r in enumerate(state.get("Retry", [])) if _matches(r["ErrorEquals"], exc.error)),
                    (None, None),
                )
                if rule is None or index is None:
                    raise
                done = attempts.get(index, 0)
                if done >= rule.get("MaxAttempts", 3):
                    raise
                attempts[index] = done + 1
                delay = rule.get("IntervalSeconds", 1) * rule.get("BackoffRate", 2.0) ** done
                delay = min(delay, rule.get("MaxDelaySeconds", delay))
                record("TaskRetry", label, error=exc.error, cause=exc.cause, attempt=done + 1, delay_seconds=delay)
                self.sleep(delay)

    @staticmethod
    def _input(state: dict[str, Any], data: Any) -> Any:
        input_path = state.get("InputPath", "$")
        return {} if input_path is None else get_path(data, input_path)

    @staticmethod
    def _output(state: dict[str, Any], data: Any) -> Any:
        output_path = state.get("OutputPath", "$")
        return {} if output_path is None else get_path(data, output_path)

    def _choose(self, state: dict[str, Any], data: Any, label: str) -> str:
        for rule in state["Choices"]:
            if self._rule(rule, data):
                chosen: str = rule["Next"]
                return chosen
        if "Default" in state:
            default: str = state["Default"]
            return default
        raise TaskError("States.NoChoiceMatched", f"{label}: no choice rule matched and there is no Default")

    def _rule(self, rule: dict[str, Any], data: Any) -> bool:
        if "And" in rule:
            return all(self._rule(r, data) for r in rule["And"])
        if "Or" in rule:
            return any(self._rule(r, data) for r in rule["Or"])
        if "Not" in rule:
            return not self._rule(rule["Not"], data)
        value = get_path(data, rule["Variable"], _ABSENT)
        if "IsPresent" in rule:
            return bool((value is not _ABSENT) == rule["IsPresent"])
        if value is _ABSENT:  # AWS fails the execution here rather than take the Default: guard with IsPresent
            raise TaskError(
                "States.Runtime",
                f"Invalid path {rule['Variable']!r}: the choice state's condition path references an invalid value",
            )
        if "IsNull" in rule:
            return bool((value is None) == rule["IsNull"])
        for op, compare in _COMPARISONS.items():
            if op in rule:
                return compare(value, rule[op])
            if op + "Path" in rule:
                return compare(value, get_path(data, rule[op + "Path"]))
        raise UnsupportedDefinition(f"choice rule {rule} uses an unsupported operator")


class _Failed(LakehouseError):  # a Fail state or an uncaught error ends the execution
    def __init__(self, error: str, cause: str, state: str) -> None:
        super().__init__(error)
        self.error, self.cause, self.state = error, cause, state


class _Stopped(_Failed):  # a sibling of an enclosing Parallel branch or Map iteration failed: this one ends quietly
    pass


class _TimedOut(_Failed):  # the execution's TimeoutSeconds passed: it ends whatever Catch a state has
    pass
