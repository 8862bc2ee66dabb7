"""A local executor for Amazon States Language: runs the very statemachine/ JSON on the local stage.

moto's Step Functions cannot run `glue:startJobRun.sync`, so the local stage interprets the definition
itself and hands each Task to a dispatcher (Lambda handlers, local Glue processes, SNS, ...). It implements
this subset of the JSONPath States Language as AWS does, and `validate_definition` (lakehouse/asl_validation.py)
refuses anything else before running, naming the state and the field:

- states: Pass, Task, Choice, Wait (Seconds, SecondsPath), Parallel, Map (inline: ItemsPath, ItemSelector,
  ItemProcessor, MaxConcurrency, and the older Iterator/Parameters), Succeed, Fail;
- InputPath, Parameters, ResultSelector, ResultPath, OutputPath; paths of `.name`, `[n]`, `['name']` and `[*]`
  steps (no slices, filters or `..`); the context object (`$$.Execution`, `$$.StateMachine`, `$$.State`,
  `$$.Map.Item`) where AWS reads it; every intrinsic but States.MathRandom and States.UUID (lakehouse/asl.py);
- Retry (ErrorEquals, IntervalSeconds, MaxAttempts, BackoffRate, MaxDelaySeconds, JitterStrategy) and Catch;
- Choice rules: And, Or, Not, IsPresent, IsNull, IsString, IsNumeric, IsBoolean, the String* and Numeric*
  comparisons, StringMatches, BooleanEquals, and the `...Path` forms (no Timestamp* operators);
- the 256 KiB payload quota (States.DataLimitExceeded); JSONata (`"QueryLanguage": "JSONata"`) is refused.

tests/sfn_conformance holds the worked examples of the AWS developer guide this is checked against.
The execution history (state entered/exited, task failures, retries) is kept for the CLI. The definition's
TimeoutSeconds is enforced as AWS does: past it the execution fails with States.Timeout, which no Catch takes; a
state already running (a local Glue process) is not cut short, the next one does not start, and a Wait ends at the
deadline. A Task's own TimeoutSeconds/HeartbeatSeconds are refused.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chalicelib.errors import LakehouseError
from lakehouse.asl import (
    COMPARISONS,
    PAYLOAD_LIMIT,
    TYPE_TESTS,
    TaskError,
    UnsupportedDefinition,
    evaluate,
    get_path,
    parse_intrinsic,
    payload_size,
    set_path,
)
from lakehouse.asl_validation import validate_definition

__all__ = [
    "Execution",
    "Executor",
    "TaskError",
    "UnsupportedDefinition",
    "get_path",
    "reachable_states",
    "set_path",
    "validate_definition",
]

Dispatch = Callable[[str, Any], Any]  # (resource ARN, parameters) -> result; raises TaskError
Record = Callable[..., None]  # (event, state, **details): one history event
LOCAL_STATE_MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:local"


def _now() -> str:
    """A timestamp as the context object and the history write it: `2019-03-26T20:14:13.192Z`."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Execution:
    name: str
    status: str = "RUNNING"  # SUCCEEDED | FAILED
    output: Any = None
    error: str | None = None  # None: a Fail state without Error, as AWS records it
    cause: str | None = None
    failed_state: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    started_at: str = field(default_factory=_now)
    stopped_at: str | None = None


def _resolve(expression: str, data: Any, context: Any) -> Any:
    """The value of a `.$` field, ErrorPath or CausePath: a path, a context path or an intrinsic call."""
    if expression.startswith("States."):
        return evaluate(parse_intrinsic(expression), data, context)
    if expression.startswith("$$"):
        return get_path(context, "$" + expression[2:])
    return get_path(data, expression)


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
        processor = state.get("ItemProcessor", state.get("Iterator"))
        if processor is not None:
            seen |= {f"{name}.item.{s}" for s in reachable_states(processor)}
    return seen


# States.ALL catches neither: "The States.ALL error type can't catch the States.DataLimitExceeded terminal error type
# and runtime error types" (concepts-error-handling.html). DataLimitExceeded is terminal: no Catch takes it.
_UNCATCHABLE = ("States.Runtime", "States.DataLimitExceeded")


def _matches(errors: list[str], error: str | None) -> bool:
    if error in _UNCATCHABLE:
        return error in errors
    if error is None:  # a Fail state without Error, in a branch: only the catch-all names it
        return "States.ALL" in errors
    return "States.ALL" in errors or error in errors or ("States.TaskFailed" in errors and error != "States.Timeout")


class Executor:
    """Runs one definition, one execution at a time; `dispatch` performs Tasks, `sleep` waits and `clock` tells the
    time for the execution's TimeoutSeconds (tests pass fake ones). `state_machine_arn` and `role_arn` fill the
    context object's `$$.StateMachine` and `$$.Execution` (input-output-contextobject.html)."""

    def __init__(
        self,
        definition: dict[str, Any],
        dispatch: Dispatch,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        parallel_threads: bool = True,
        state_machine_arn: str = LOCAL_STATE_MACHINE,
        role_arn: str = "arn:aws:iam::123456789012:role/local-pipeline",
        jitter: Callable[[float], float] = lambda delay: random.uniform(0, delay),
    ) -> None:
        validate_definition(definition)
        self.definition, self.dispatch, self.sleep, self.clock = definition, dispatch, sleep, clock
        self.parallel_threads, self.jitter = parallel_threads, jitter
        self.state_machine_arn, self.role_arn = state_machine_arn, role_arn
        self.deadline: float | None = None
        self._local = threading.local()  # per thread: the stop signals of the Parallel/Map states it runs inside

    def run(self, name: str, input_: Any) -> Execution:
        execution = Execution(name)
        machine_name = self.state_machine_arn.rsplit(":", 1)[-1]
        context = {
            "Execution": {
                "Id": self.state_machine_arn.replace(":stateMachine:", ":execution:") + ":" + name,
                "Input": input_,
                "Name": name,
                "RoleArn": self.role_arn,
                "StartTime": execution.started_at,
                "RedriveCount": 0,
            },
            "StateMachine": {"Id": self.state_machine_arn, "Name": machine_name},
        }
        lock = threading.Lock()

        def record(event: str, state: str, **details: Any) -> None:
            with lock:
                execution.history.append({"time": _now(), "event": event, "state": state, **details})

        timeout = self.definition.get("TimeoutSeconds")
        self.deadline = self.clock() + timeout if timeout else None
        try:
            _check_size(input_, "the execution's input", "")
            execution.output = self._run_machine(self.definition, input_, context, record, "")
            execution.status = "SUCCEEDED"
        except _Failed as failed:
            execution.status, execution.error, execution.cause = "FAILED", failed.error, failed.cause
            execution.failed_state = failed.state
        execution.stopped_at = _now()
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
            # $$.State: the state's own name, when it was entered and how often it has been retried
            state_context = {**context, "State": {"EnteredTime": _now(), "Name": name, "RetryCount": 0}}
            try:
                if kind == "Fail":
                    error, cause = self._failure(state, data, state_context)
                    record("StateFailed", label, error=error, cause=cause)
                    raise _Failed(error, cause, label)
                if kind == "Choice":
                    effective = self._input(state, data, state_context)
                    name = self._choose(state, effective, state_context, label)
                    record("StateExited", label, next=name)
                    data = self._output(state, effective, state_context, label)
                    continue
                data = self._execute(state, data, state_context, record, label)
            except TaskError as exc:
                caught = next((c for c in state.get("Catch", []) if _matches(c["ErrorEquals"], exc.error)), None)
                if caught is None:
                    record("StateFailed", label, error=exc.error, cause=exc.cause)
                    raise _Failed(exc.error, exc.cause, label) from None
                record("StateCaught", label, error=exc.error, cause=exc.cause, next=caught["Next"])
                # the error output has Error and Cause; a Fail state's missing Error is left out rather than made up
                error_output = {k: v for k, v in (("Error", exc.error), ("Cause", exc.cause)) if v is not None}
                result_path = caught.get("ResultPath", "$")
                data = data if result_path is None else set_path(data, result_path, error_output)
                _check_size(data, "the state's output", label)
                name = caught["Next"]
                continue
            except _Terminal as terminal:
                if terminal.state == label and not isinstance(terminal, _TimedOut):
                    record("StateFailed", label, error=terminal.error, cause=terminal.cause)
                raise
            record("StateExited", label)
            if kind == "Succeed" or state.get("End"):
                return data
            name = state["Next"]

    @staticmethod
    def _failure(state: dict[str, Any], data: Any, context: Any) -> tuple[str | None, str | None]:
        """A Fail state's error and cause. Without Error (or ErrorPath) AWS records no error name, and no cause
        without Cause (state-fail.html: both fields are optional)."""
        found: list[str | None] = []
        for literal, path in (("Error", "ErrorPath"), ("Cause", "CausePath")):
            value = _resolve(state[path], data, context) if path in state else state.get(literal)
            if value is not None and not isinstance(value, str):  # "ErrorPath ... must be a string" (state-fail.html)
                raise TaskError("States.Runtime", f"{path} must select a string, not {value!r}")
            found.append(value)
        return found[0], found[1]

    def _execute(self, state: dict[str, Any], data: Any, context: Any, record: Record, label: str) -> Any:
        kind = state["Type"]
        effective = self._input(state, data, context)
        if kind == "Succeed":
            return self._output(state, effective, context, label)
        if kind == "Wait":
            self._wait(state, effective)
            return self._output(state, effective, context, label)
        if kind == "Pass":
            result = state.get("Result", self._parameters(state, effective, context, label))
        else:  # each attempt evaluates Parameters anew: $$.State.RetryCount counts the retries
            result = self._with_retry(
                state,
                label,
                record,
                context,
                lambda retried: self._work(
                    state, self._parameters(state, effective, retried, label), retried, record, label
                ),
            )
            _check_size(result, "the state's result", label)
            if "ResultSelector" in state:
                result = build_parameters(state["ResultSelector"], result, context)
        result_path = state.get("ResultPath", "$")
        combined = data if result_path is None else set_path(data, result_path, result)
        return self._output(state, combined, context, label)

    @staticmethod
    def _parameters(state: dict[str, Any], effective: Any, context: Any, label: str) -> Any:
        if "Parameters" not in state or state["Type"] == "Map":
            return effective
        effective = build_parameters(state["Parameters"], effective, context)
        # "When, after Parameters processing, the input of a state is larger than the payload size quota"
        _check_size(effective, "the state's input after Parameters", label)
        return effective

    def _wait(self, state: dict[str, Any], effective: Any) -> None:
        seconds = state.get("Seconds")
        if seconds is None:  # SecondsPath must select a non-negative integer, else the execution fails (state-wait)
            seconds = get_path(effective, state["SecondsPath"])
            if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0:
                raise TaskError(
                    "States.Runtime",
                    f"SecondsPath {state['SecondsPath']!r} must select a non-negative integer, not {seconds!r}",
                )
        delay = float(seconds)
        if self.deadline is not None:  # the execution's timeout ends a Wait too
            delay = max(0.0, min(delay, self.deadline - self.clock()))
        self.sleep(delay)

    def _work(self, state: dict[str, Any], effective: Any, context: Any, record: Record, label: str) -> Any:
        if state["Type"] == "Task":
            try:
                return self.dispatch(state["Resource"], effective)
            except TaskError:
                raise
            except Exception as exc:  # an unexpected failure of the dispatcher is a task failure, with its cause
                raise TaskError(type(exc).__name__, str(exc)) from exc
        if state["Type"] == "Map":
            items = _select(state.get("ItemsPath", "$"), effective, context)
            if not isinstance(items, list):
                raise TaskError("States.Runtime", f"{label}: ItemsPath did not select an array")
            # Iterator and Parameters are the older names of ItemProcessor and ItemSelector (state-map-inline.html)
            machine: dict[str, Any] = state["ItemProcessor"] if "ItemProcessor" in state else state["Iterator"]
            selector = state.get("ItemSelector", state.get("Parameters"))
            runs = []
            for index, item in enumerate(items):
                item_context = {**context, "Map": {"Item": {"Index": index, "Value": item}}}
                item_input = item if selector is None else build_parameters(selector, effective, item_context)
                # $$.Map is for the selector only: "not within the states included in the Iterator section"
                runs.append((machine, item_input, context, f"{label}.{index}."))
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
            context = {k: v for k, v in context.items() if k != "State"}  # the branch's states set their own
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
        terminal = next((e for e in errors if isinstance(e, _Terminal)), None)
        if terminal is not None:  # a timeout or an error no Catch takes ends the whole execution
            raise terminal
        if errors:  # a failed branch or iteration fails the state with its error
            raise TaskError(errors[0].error, errors[0].cause)
        return results

    def _with_retry(
        self, state: dict[str, Any], label: str, record: Record, context: Any, work: Callable[[Any], Any]
    ) -> Any:
        attempts: dict[int, int] = {}
        retried = context
        while True:
            try:
                return work(retried)
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
                if rule.get("JitterStrategy") == "FULL":  # a random delay up to the computed one
                    delay = self.jitter(delay)  # (concepts-error-handling.html, "Retry with jitter")
                record("TaskRetry", label, error=exc.error, cause=exc.cause, attempt=done + 1, delay_seconds=delay)
                self.sleep(delay)
                count = sum(attempts.values())
                retried = {**context, "State": {**context["State"], "RetryCount": count}}

    @staticmethod
    def _input(state: dict[str, Any], data: Any, context: Any) -> Any:
        input_path = state.get("InputPath", "$")
        return {} if input_path is None else _select(input_path, data, context)

    @staticmethod
    def _output(state: dict[str, Any], data: Any, context: Any, label: str) -> Any:
        """The state's output. A path error here fails the execution whatever the state's Catch says: the state has
        already completed when OutputPath is applied (as AWS was observed to do), so no Catch takes it."""
        output_path = state.get("OutputPath", "$")
        try:
            output = {} if output_path is None else _select(output_path, data, context)
        except TaskError as exc:
            raise _Terminal(exc.error, exc.cause, label) from None
        _check_size(output, "the state's output", label)
        return output

    def _choose(self, state: dict[str, Any], data: Any, context: Any, label: str) -> str:
        for rule in state["Choices"]:
            if self._rule(rule, data, context):
                return str(rule["Next"])
        if "Default" in state:
            return str(state["Default"])
        raise TaskError("States.NoChoiceMatched", f"{label}: no choice rule matched and there is no Default")

    def _rule(self, rule: dict[str, Any], data: Any, context: Any) -> bool:
        if "And" in rule:
            return all(self._rule(r, data, context) for r in rule["And"])
        if "Or" in rule:
            return any(self._rule(r, data, context) for r in rule["Or"])
        if "Not" in rule:
            return not self._rule(rule["Not"], data, context)
        value = _select(rule["Variable"], data, context, _ABSENT)
        if "IsPresent" in rule:
            return bool((value is not _ABSENT) == rule["IsPresent"])
        if value is _ABSENT:  # AWS fails the execution here rather than take the Default: guard with IsPresent
            raise TaskError(
                "States.Runtime",
                f"Invalid path {rule['Variable']!r}: the choice state's condition path references an invalid value",
            )
        for op, test in TYPE_TESTS.items():
            if op in rule:
                return test(value) is rule[op]
        for op, (compare, _) in COMPARISONS.items():
            if op in rule:
                return compare(value, rule[op])
            if op + "Path" in rule:
                return compare(value, _select(rule[op + "Path"], data, context))
        raise UnsupportedDefinition(f"choice rule {rule}: unsupported operator")  # validate_definition refused it


_ABSENT = object()  # a Choice variable that is not in the input
_REQUIRED = object()


def _select(path: str, data: Any, context: Any, default: Any = _REQUIRED) -> Any:
    """A path's value: `$$...` reads the context object, as InputPath, OutputPath, ItemsPath and Choice rules may
    (input-output-contextobject.html)."""
    source, path = (context, "$" + path[2:]) if path.startswith("$$") else (data, path)
    return get_path(source, path) if default is _REQUIRED else get_path(source, path, default)


def _check_size(value: Any, what: str, label: str) -> None:
    if payload_size(value) > PAYLOAD_LIMIT:
        raise _Terminal(
            "States.DataLimitExceeded",
            f"{what} is {payload_size(value)} bytes, over the {PAYLOAD_LIMIT}-byte (256 KiB) quota",
            label,
        )


class _Failed(LakehouseError):  # a Fail state or an uncaught error ends the execution
    def __init__(self, error: str | None, cause: str | None, state: str) -> None:
        super().__init__(error)
        self.error, self.cause, self.state = error, cause, state


class _Stopped(_Failed):  # a sibling of an enclosing Parallel branch or Map iteration failed: this one ends quietly
    pass


class _Terminal(_Failed):  # the execution fails whatever Catch a state (or an enclosing one) has
    pass


class _TimedOut(_Terminal):  # the execution's TimeoutSeconds passed
    pass
