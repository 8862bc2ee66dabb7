"""The local States Language executor: each construct the pipeline definition relies on."""

import pytest

from lakehouse.stepfunctions import Executor, TaskError, UnsupportedDefinition, get_path, reachable_states, set_path


def machine(states, start=None):
    return {"StartAt": start or next(iter(states)), "States": states}


def caught_parallel(branch):
    """A machine of one Parallel state running `branch`, whose failure States.ALL catches into `Handled`."""
    return machine(
        {
            "P": {
                "Type": "Parallel",
                "Branches": [branch],
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Handled"}],
                "End": True,
            },
            "Handled": {"Type": "Pass", "End": True},
        }
    )


class Calls:
    """A dispatcher that answers from a script: a value, or an exception to raise, per call."""

    def __init__(self, **script):
        self.script = {k: list(v) for k, v in script.items()}
        self.seen = []

    def __call__(self, resource, params):
        self.seen.append((resource, params))
        outcome = self.script[resource].pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome(params) if callable(outcome) else outcome


def test_paths_read_and_write():
    data = {"a": {"b": [10, {"c": 1}]}}
    assert get_path(data, "$.a.b[1].c") == 1 and get_path(data, "$") == data
    assert set_path(data, "$.a.x.y", 2)["a"]["x"] == {"y": 2} and "x" not in data["a"]  # input untouched
    with pytest.raises(TaskError, match="not found"):
        get_path(data, "$.nope")


def test_task_parameters_selector_result_and_output_paths():
    calls = Calls(job=[lambda p: {"Id": "r-1", "Echo": p, "Noise": True}])
    definition = machine(
        {
            "T": {
                "Type": "Task",
                "Resource": "job",
                "InputPath": "$.in",
                "Parameters": {
                    "Name.$": "$.name",
                    "Fixed": 1,
                    "Label.$": "States.Format('run-{}-{}', $.name, $$.Execution.Name)",
                },
                "ResultSelector": {"RunId.$": "$.Id", "Sent.$": "$.Echo"},
                "ResultPath": "$.result",
                "OutputPath": "$.result",
                "End": True,
            }
        }
    )
    execution = Executor(definition, calls).run("exec-7", {"in": {"name": "orders"}})
    assert execution.status == "SUCCEEDED"
    assert calls.seen == [("job", {"Name": "orders", "Fixed": 1, "Label": "run-orders-exec-7"})]
    assert execution.output == {"RunId": "r-1", "Sent": {"Name": "orders", "Fixed": 1, "Label": "run-orders-exec-7"}}


def test_result_path_null_keeps_the_input():
    definition = machine({"T": {"Type": "Task", "Resource": "job", "ResultPath": None, "End": True}})
    assert Executor(definition, Calls(job=[{"x": 1}])).run("e", {"keep": True}).output == {"keep": True}


def test_retry_backs_off_exponentially_then_succeeds():
    delays = []
    calls = Calls(
        job=[
            TaskError("Glue.ConcurrentRunsExceededException"),
            TaskError("Glue.ConcurrentRunsExceededException"),
            {"ok": 1},
        ]
    )
    definition = machine(
        {
            "T": {
                "Type": "Task",
                "Resource": "job",
                "End": True,
                "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 2, "BackoffRate": 3, "MaxAttempts": 4}],
            }
        }
    )
    execution = Executor(definition, calls, sleep=delays.append).run("e", {})
    assert execution.status == "SUCCEEDED" and execution.output == {"ok": 1} and delays == [2, 6]
    assert [h["event"] for h in execution.history].count("TaskRetry") == 2


def test_retries_run_out_then_catch_routes_with_the_error():
    calls = Calls(job=[TaskError("Glue.JobRunFailed", "boom")] * 3)
    definition = machine(
        {
            "T": {
                "Type": "Task",
                "Resource": "job",
                "Next": "Done",
                "Retry": [{"ErrorEquals": ["Glue.JobRunFailed"], "MaxAttempts": 2, "IntervalSeconds": 1}],
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Recover"}],
            },
            "Recover": {"Type": "Pass", "End": True},
            "Done": {"Type": "Succeed"},
        }
    )
    execution = Executor(definition, calls, sleep=lambda s: None).run("e", {"batch": 1})
    assert len(calls.seen) == 3 and execution.status == "SUCCEEDED"
    assert execution.output == {"batch": 1, "error": {"Error": "Glue.JobRunFailed", "Cause": "boom"}}


def test_an_uncaught_failure_fails_the_execution_and_names_the_state():
    definition = machine({"T": {"Type": "Task", "Resource": "job", "End": True}})
    execution = Executor(definition, Calls(job=[RuntimeError("disk full")])).run("e", {})
    assert (execution.status, execution.error, execution.cause, execution.failed_state) == (
        "FAILED",
        "RuntimeError",
        "disk full",
        "T",
    )


def test_fail_state_reports_its_error_and_cause():
    execution = Executor(machine({"F": {"Type": "Fail", "Error": "Quality", "Cause": "3 errors"}}), Calls()).run(
        "e", {}
    )
    assert (execution.status, execution.error, execution.cause) == ("FAILED", "Quality", "3 errors")


def test_choice_rules_and_default():
    definition = machine(
        {
            "C": {
                "Type": "Choice",
                "Default": "Other",
                "Choices": [
                    {
                        "And": [
                            {"Variable": "$.errors", "NumericGreaterThan": 0},
                            {"Variable": "$.gate", "BooleanEquals": True},
                        ],
                        "Next": "Stop",
                    },
                    {"Variable": "$.state", "StringMatches": "RUN*", "Next": "Wait"},
                    {"Not": {"Variable": "$.missing", "IsPresent": True}, "Next": "Fine"},
                ],
            },
            "Stop": {"Type": "Fail", "Error": "Gate"},
            "Wait": {"Type": "Pass", "Result": "waited", "End": True},
            "Fine": {"Type": "Pass", "Result": "fine", "End": True},
            "Other": {"Type": "Pass", "Result": "other", "End": True},
        }
    )
    run = Executor(definition, Calls()).run
    assert run("a", {"errors": 2, "gate": True}).error == "Gate"
    assert run("b", {"errors": 0, "state": "RUNNING"}).output == "waited"
    assert run("c", {"errors": 0, "state": "READY"}).output == "fine"
    assert run("d", {"missing": 1, "state": "READY", "errors": 0}).output == "other"


def test_a_wait_choice_loop_polls_until_done():
    polls = Calls(get=[{"State": "RUNNING"}, {"State": "RUNNING"}, {"State": "READY"}])
    waits = []
    definition = machine(
        {
            "Poll": {"Type": "Task", "Resource": "get", "ResultPath": "$.crawler", "Next": "Ready?"},
            "Ready?": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.crawler.State", "StringEquals": "READY", "Next": "Done"}],
                "Default": "Wait",
            },
            "Wait": {"Type": "Wait", "Seconds": 15, "Next": "Poll"},
            "Done": {"Type": "Succeed"},
        }
    )
    execution = Executor(definition, polls, sleep=waits.append).run("e", {})
    assert execution.status == "SUCCEEDED" and waits == [15, 15] and len(polls.seen) == 3


def test_parallel_collects_branch_outputs_and_a_failed_branch_fails_it():
    branch = lambda res: machine({"T": {"Type": "Task", "Resource": res, "End": True}})  # noqa: E731
    definition = machine({"P": {"Type": "Parallel", "Branches": [branch("a"), branch("b")], "End": True}})
    assert Executor(definition, Calls(a=[1], b=[2])).run("e", {}).output == [1, 2]
    failed = Executor(definition, Calls(a=[1], b=[TaskError("Glue.JobRunFailed", "orders")])).run("e", {})
    assert (failed.status, failed.error, failed.failed_state) == ("FAILED", "Glue.JobRunFailed", "P")
    assert any(h["state"] == "P.1.T" and h["event"] == "StateFailed" for h in failed.history)


def test_unsupported_constructs_are_refused_before_running():
    with pytest.raises(UnsupportedDefinition, match="state type 'Wait2' is not supported"):
        Executor(machine({"M": {"Type": "Wait2", "End": True}}), Calls())
    distributed = {"ProcessorConfig": {"Mode": "DISTRIBUTED"}, **machine({"X": {"Type": "Succeed"}})}
    with pytest.raises(UnsupportedDefinition, match="Map mode 'DISTRIBUTED' is not supported"):
        Executor(machine({"M": {"Type": "Map", "ItemProcessor": distributed, "End": True}}), Calls())
    with pytest.raises(UnsupportedDefinition, match=r"P\.Parameters\.h\.\$: intrinsic function States\.UUID"):
        Executor(machine({"P": {"Type": "Pass", "Parameters": {"h.$": "States.UUID()"}, "End": True}}), Calls())
    with pytest.raises(UnsupportedDefinition, match=r"field\(s\) \['Credentials'\] not supported for Task"):
        Executor(machine({"T": {"Type": "Task", "Resource": "x", "Credentials": {}, "End": True}}), Calls())
    with pytest.raises(UnsupportedDefinition, match="transition to unknown state 'Nowhere'"):
        Executor(machine({"T": {"Type": "Pass", "Next": "Nowhere"}}), Calls())


def test_reachable_states_include_parallel_branches():
    definition = machine(
        {
            "A": {"Type": "Parallel", "Branches": [machine({"X": {"Type": "Succeed"}})], "Next": "B"},
            "B": {"Type": "Succeed"},
            "Orphan": {"Type": "Succeed"},
        }
    )
    assert reachable_states(definition) == {"A", "A.0.X", "B"}


def test_map_runs_each_item_with_its_selector_and_context():
    seen = []

    def dispatch(resource, params):
        seen.append(params)
        if params["n"] == 3:
            raise TaskError("Boom", "three")
        return {"double": params["n"] * 2}

    item = machine({"Work": {"Type": "Task", "Resource": "arn:work", "End": True}})
    definition = machine(
        {
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemSelector": {"n.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index", "run.$": "$.run"},
                "ItemProcessor": item,
                "MaxConcurrency": 1,
                "ResultPath": "$.out",
                "Next": "Summary",
            },
            "Summary": {
                "Type": "Pass",
                "Parameters": {"doubles.$": "$.out[*].double", "has4.$": "States.ArrayContains($.out[*].double, 4)"},
                "End": True,
            },
        }
    )
    done = Executor(definition, dispatch).run("m", {"items": [1, 2], "run": "r1"})
    assert done.status == "SUCCEEDED", done.cause
    assert done.output == {"doubles": [2, 4], "has4": True}
    assert seen == [{"n": 1, "i": 0, "run": "r1"}, {"n": 2, "i": 1, "run": "r1"}]

    seen.clear()  # a failing item fails the Map; with MaxConcurrency 1 the later items never start
    failed = Executor(definition, dispatch).run("m2", {"items": [3, 5], "run": "r2"})
    assert (failed.status, failed.error, failed.failed_state) == ("FAILED", "Boom", "Each")
    assert [p["n"] for p in seen] == [3]


def test_intrinsics_format_and_json_to_string():
    definition = machine(
        {
            "P": {
                "Type": "Pass",
                "Parameters": {
                    "msg.$": "States.Format('run {} failed at {}', $.run, $.where)",
                    "json.$": "States.JsonToString($.detail)",
                    "next.$": "States.MathAdd($.n, 1)",
                },
                "End": True,
            }
        }
    )
    data = {"run": "r-1", "where": "a, b", "detail": {"k": [1]}, "n": 41}
    out = Executor(definition, Calls()).run("x", data).output
    assert out == {"msg": "run r-1 failed at a, b", "json": '{"k":[1]}', "next": 42}


def test_a_choice_on_an_absent_path_fails_with_states_runtime_which_states_all_does_not_catch():
    """AWS fails the execution rather than take the Default, and a Catch on States.ALL does not take
    States.Runtime ("Handling errors in Step Functions workflows"): the local executor must not be kinder."""
    choice = {
        "Type": "Choice",
        "Choices": [{"Variable": "$.status.LastCrawl.Status", "StringEquals": "SUCCEEDED", "Next": "Done"}],
        "Default": "Other",
    }
    branch = {"StartAt": "C", "States": {"C": choice, "Done": {"Type": "Succeed"}, "Other": {"Type": "Succeed"}}}
    run = Executor(caught_parallel(branch), Calls()).run
    failed = run("absent", {"status": {}})
    assert (failed.status, failed.error) == ("FAILED", "States.Runtime") and "$.status.LastCrawl.Status" in failed.cause
    assert run("present", {"status": {"LastCrawl": {"Status": "FAILED"}}}).status == "SUCCEEDED"  # the Default
    guarded = dict(choice, Choices=[{"Variable": "$.x", "IsPresent": True, "Next": "Done"}])
    assert (
        Executor(machine({"C": guarded, "Done": {"Type": "Succeed"}, "Other": {"Type": "Succeed"}}), Calls())
        .run("g", {})
        .status
        == "SUCCEEDED"
    )


def test_a_catch_that_names_states_runtime_takes_it():
    definition = machine(
        {
            "T": {
                "Type": "Task",
                "Resource": "job",
                "InputPath": "$.missing",
                "Catch": [{"ErrorEquals": ["States.Runtime"], "Next": "Handled"}],
                "End": True,
            },
            "Handled": {"Type": "Pass", "Result": "handled", "End": True},
        }
    )
    assert Executor(definition, Calls()).run("e", {}).output == "handled"


class Clock:
    """A fake clock that the fake sleep moves forward."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_the_execution_timeout_fails_it_with_states_timeout_which_no_catch_takes():
    """AWS fails an execution past the definition's TimeoutSeconds with States.Timeout; a polling loop that never
    ends must not run forever locally either."""
    clock = Clock()
    poll = {
        "StartAt": "Wait",
        "States": {
            "Wait": {"Type": "Wait", "Seconds": 30, "Next": "Again"},
            "Again": {"Type": "Choice", "Choices": [{"Variable": "$.done", "BooleanEquals": True, "Next": "End"}],
                      "Default": "Wait"},
            "End": {"Type": "Succeed"},
        },
    }  # fmt: skip
    definition = {**caught_parallel(poll), "TimeoutSeconds": 100}
    execution = Executor(definition, Calls(), sleep=clock.sleep, clock=clock).run("e", {"done": False})
    assert (execution.status, execution.error) == ("FAILED", "States.Timeout")
    assert clock.now == 100  # the last Wait ended at the deadline, not after it
    assert Executor(definition, Calls(), sleep=clock.sleep, clock=clock).run("f", {"done": True}).status == "SUCCEEDED"


def test_a_failed_branch_stops_its_siblings_at_their_next_state():
    """AWS stops every branch of a Parallel when one fails; the local executor lets a running state finish (a local
    process is not killed half-way) but starts nothing after it."""
    import time

    def slow(params):
        time.sleep(0.3)  # still running when the other branch fails
        return {"merged": True}

    other = {
        "StartAt": "Merge",
        "States": {
            "Merge": {"Type": "Task", "Resource": "job", "Next": "Publish"},
            "Publish": {"Type": "Task", "Resource": "publish", "End": True},
        },
    }
    failing = {
        "StartAt": "Poll",
        "States": {
            "Poll": {"Type": "Wait", "Seconds": 1, "Next": "Crawl"},  # fails while Merge runs (a tenth of a second)
            "Crawl": {"Type": "Fail", "Error": "CrawlerFailed", "Cause": "no"},
        },
    }
    definition = machine({"P": {"Type": "Parallel", "Branches": [failing, other], "End": True}})
    calls = Calls(job=[slow], publish=[{"published": True}])
    execution = Executor(definition, calls, sleep=lambda seconds: time.sleep(seconds / 10)).run("e", {})
    assert (execution.status, execution.error) == ("FAILED", "CrawlerFailed")
    assert [r for r, _ in calls.seen] == ["job"]  # the running Merge finished; Publish never started
    assert any(e["event"] == "BranchStopped" and e["state"] == "P.1.Publish" for e in execution.history)


# -- as AWS does (issue 26: differences a replay of executions recorded on AWS found) ---------------------------------
def test_a_fail_state_without_error_records_no_error_name():
    """AWS records no error (and no cause) for a Fail state that gives none (state-fail.html: both are optional)."""
    execution = Executor(machine({"F": {"Type": "Fail"}}), Calls()).run("e", {})
    assert (execution.status, execution.error, execution.cause) == ("FAILED", None, None)
    caught = Executor(caught_parallel(machine({"F": {"Type": "Fail", "Cause": "why"}})), Calls()).run("c", {})
    assert caught.status == "SUCCEEDED" and caught.output == {"Cause": "why"}  # no made-up Error in the error output


def test_the_context_object_has_the_execution_state_machine_and_state():
    """$$.Execution.Id, $$.StateMachine.*, $$.State.* as input-output-contextobject.html lists them."""
    arn = "arn:aws:states:eu-west-1:111122223333:stateMachine:pipeline"
    calls = Calls(job=[TaskError("Flaky"), lambda params: params])
    definition = machine(
        {
            "Work": {
                "Type": "Task",
                "Resource": "job",
                "Parameters": {
                    "id.$": "$$.Execution.Id",
                    "role.$": "$$.Execution.RoleArn",
                    "machine.$": "$$.StateMachine",
                    "state.$": "$$.State.Name",
                    "retries.$": "$$.State.RetryCount",
                },
                "Retry": [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 1}],
                "End": True,
            }
        }
    )
    execution = Executor(definition, calls, sleep=lambda s: None, state_machine_arn=arn, role_arn="arn:role").run(
        "run-1", {}
    )
    assert execution.status == "SUCCEEDED", execution.cause
    assert execution.output == {
        "id": "arn:aws:states:eu-west-1:111122223333:execution:pipeline:run-1",
        "role": "arn:role",
        "machine": {"Id": arn, "Name": "pipeline"},
        "state": "Work",
        "retries": 1,  # the second attempt sees one retry
    }
    assert calls.seen[0][1]["retries"] == 0


def test_a_wildcard_on_a_missing_value_or_a_non_list_gives_an_empty_list():
    definition = machine(
        {
            "P": {
                "Type": "Pass",
                "Parameters": {"missing.$": "$.nope[*].x", "scalar.$": "$.n[*]", "flat.$": "$.grid[*][*]"},
                "End": True,
            }
        }
    )
    out = Executor(definition, Calls()).run("e", {"n": 3, "grid": [[1, 2], [3]]}).output
    assert out == {"missing": [], "scalar": [], "flat": [1, 2, 3]}  # `[*][*]` flattens, as Jayway JsonPath


@pytest.mark.parametrize("seconds", [-1, 1.5, "5", True])
def test_a_wait_seconds_path_that_is_not_a_non_negative_integer_fails_with_states_runtime(seconds):
    definition = machine({"W": {"Type": "Wait", "SecondsPath": "$.s", "End": True}})
    waits = []
    execution = Executor(definition, Calls(), sleep=waits.append).run("e", {"s": seconds})
    assert (execution.status, execution.error, waits) == ("FAILED", "States.Runtime", [])
    assert "SecondsPath '$.s' must select a non-negative integer" in execution.cause


def test_math_add_rounds_half_up_and_format_renders_objects_as_aws_does():
    definition = machine(
        {
            "P": {
                "Type": "Pass",
                "Parameters": {
                    "sum.$": "States.MathAdd($.a, $.b)",
                    "negative.$": "States.MathAdd(-2.5, 0)",
                    "text.$": "States.Format('got {} and {}', $.obj, $.list)",
                    "braces.$": "States.Format('\\{\\} {}', $.a)",
                },
                "End": True,
            }
        }
    )
    data = {"a": 1.5, "b": 2.4, "obj": {"Arg1": 1, "Arg2": []}, "list": ["x", None, True]}
    out = Executor(definition, Calls()).run("e", data).output
    assert out == {"sum": 4, "negative": -2, "text": "got {Arg1=1, Arg2=[]} and [x, null, true]", "braces": "{} 1.5"}


def test_a_states_runtime_error_from_a_task_s_output_path_fails_the_execution_whatever_its_catch():
    definition = machine(
        {
            "T": {
                "Type": "Task",
                "Resource": "job",
                "OutputPath": "$.missing",
                "Catch": [{"ErrorEquals": ["States.Runtime", "States.ALL"], "Next": "Handled"}],
                "End": True,
            },
            "Handled": {"Type": "Pass", "End": True},
        }
    )
    execution = Executor(definition, Calls(job=[{"ok": 1}])).run("e", {})
    assert (execution.status, execution.error, execution.failed_state) == ("FAILED", "States.Runtime", "T")
    assert "$.missing" in execution.cause


def test_payloads_past_256_kib_fail_with_states_data_limit_exceeded_which_no_catch_takes():
    big = "x" * (256 * 1024)
    too_big = Executor(machine({"P": {"Type": "Pass", "End": True}}), Calls()).run("e", {"s": big})
    assert (too_big.status, too_big.error, too_big.history) == ("FAILED", "States.DataLimitExceeded", [])
    definition = machine(
        {
            "T": {
                "Type": "Task",
                "Resource": "job",
                "Catch": [{"ErrorEquals": ["States.ALL", "States.DataLimitExceeded"], "Next": "Handled"}],
                "End": True,
            },
            "Handled": {"Type": "Pass", "End": True},
        }
    )
    execution = Executor(definition, Calls(job=[{"s": big}])).run("e", {})
    assert (execution.status, execution.error, execution.failed_state) == ("FAILED", "States.DataLimitExceeded", "T")
    assert "over the 262144-byte (256 KiB) quota" in execution.cause
    just_under = "x" * (256 * 1024 - len('{"s":""}'))
    assert Executor(definition, Calls(job=[{"s": just_under}])).run("f", {}).status == "SUCCEEDED"


def test_full_jitter_draws_each_retry_delay_up_to_the_computed_one():
    delays, drawn = [], []

    def jitter(delay):
        drawn.append(delay)
        return delay / 2

    definition = machine(
        {
            "T": {
                "Type": "Task",
                "Resource": "job",
                "Retry": [{"ErrorEquals": ["E"], "IntervalSeconds": 2, "BackoffRate": 3, "JitterStrategy": "FULL"}],
                "End": True,
            }
        }
    )
    calls = Calls(job=[TaskError("E"), TaskError("E"), {"ok": 1}])
    assert Executor(definition, calls, sleep=delays.append, jitter=jitter).run("e", {}).status == "SUCCEEDED"
    assert (drawn, delays) == ([2, 6], [1, 3])


def test_string_matches_has_only_the_star_wildcard():
    choice = {
        "Type": "Choice",
        "Choices": [{"Variable": "$.s", "StringMatches": "log-?-\\*-*.txt", "Next": "Yes"}],
        "Default": "No",
    }
    definition = machine(
        {
            "C": choice,
            "Yes": {"Type": "Pass", "Result": 1, "End": True},
            "No": {"Type": "Pass", "Result": 0, "End": True},
        }
    )
    run = Executor(definition, Calls()).run
    assert run("a", {"s": "log-?-*-2024.txt"}).output == 1
    assert run("b", {"s": "log-a-*-2024.txt"}).output == 0  # `?` is literal, as on AWS
    assert run("c", {"s": "log-?-x-2024.txt"}).output == 0  # `\\*` is a literal star


# -- or refuses up front, naming the state and the field -----------------------------------------------------------
def _refused(definition, match):
    with pytest.raises(UnsupportedDefinition, match=match):
        Executor(definition, Calls())


def _choice(rule):
    return machine(
        {"C": {"Type": "Choice", "Choices": [{**rule, "Next": "D"}], "Default": "D"}, "D": {"Type": "Succeed"}}
    )


@pytest.mark.parametrize(
    ("definition", "match"),
    [
        (
            _choice({"Variable": "$.t", "TimestampEquals": "2024-01-01T00:00:00Z"}),
            r"C\.Choices\[0\]\.TimestampEquals: Choice operator 'TimestampEquals' is not supported",
        ),
        (
            _choice({"And": [{"Variable": "$.a", "StringEquals": 1}]}),
            r"C\.Choices\[0\]\.And\[0\]\.StringEquals: 1 is not a valid operand",
        ),
        (
            {**machine({"P": {"Type": "Pass", "End": True}}), "QueryLanguage": "JSONata"},
            r"definition\.QueryLanguage: 'JSONata' is not supported \(only JSONPath\)",
        ),
        (
            machine({"P": {"Type": "Pass", "QueryLanguage": "JSONata", "Output": "{% $states.input %}", "End": True}}),
            r"P: field\(s\) \['Output'\] not supported for Pass",
        ),
        (
            machine({"P": {"Type": "Pass", "InputPath": "$.a[0:2]", "End": True}}),
            r"P\.InputPath: unsupported path '\$\.a\[0:2\]'",
        ),
        (
            machine({"P": {"Type": "Pass", "Parameters": {"x.$": "$.a[?(@.b > 1)]"}, "End": True}}),
            r"P\.Parameters\.x\.\$: unsupported path",
        ),
        (
            machine({"W": {"Type": "Wait", "SecondsPath": "$$.Execution.Input.s", "End": True}}),
            r"W\.SecondsPath: context object path '\$\$\.Execution\.Input\.s' is not supported here",
        ),
        (
            machine({"P": {"Type": "Pass", "Parameters": {"x.$": "States.Format('{}', States.UUID())"}, "End": True}}),
            r"P\.Parameters\.x\.\$: intrinsic function States\.UUID",
        ),
        (
            machine({"P": {"Type": "Pass", "Parameters": {"x.$": "States.MathAdd($.a)"}, "End": True}}),
            r"P\.Parameters\.x\.\$: States\.MathAdd .* takes 2\.\.2 arguments, not 1",
        ),
        (
            machine({"P": {"Type": "Pass", "Parameters": {"x.$": "States.Format('a\\q')"}, "End": True}}),
            r"P\.Parameters\.x\.\$: .*open escape backslash",
        ),
        (
            machine(
                {
                    "T": {
                        "Type": "Task",
                        "Resource": "r",
                        "Retry": [{"ErrorEquals": ["E"], "JitterStrategy": "X"}],
                        "End": True,
                    }
                }
            ),
            r"T\.Retry\[0\]\.JitterStrategy: must be FULL or NONE",
        ),
        (
            machine({"W": {"Type": "Wait", "Seconds": "ten", "End": True}}),
            r"W\.Seconds: must be an integer from 0 to 99999999, not 'ten'",
        ),
        (
            machine({"T": {"Type": "Task", "Resource": "r", "ResultPath": "$.a[0]", "End": True}}),
            r"T\.ResultPath: ResultPath '\$\.a\[0\]': only \.name steps can be written",
        ),
        (
            machine(
                {
                    "T": {
                        "Type": "Task",
                        "Resource": "r",
                        "Catch": [{"ErrorEquals": ["E"], "Next": "T", "ResultPath": "$$.x"}],
                        "End": True,
                    }
                }
            ),
            r"T\.Catch\[0\]\.ResultPath: context object path '\$\$\.x' is not supported here",
        ),
        (
            machine(
                {
                    "M": {
                        "Type": "Map",
                        "ItemProcessor": machine({"W": {"Type": "Wait", "SecondsPath": "$[-1]", "End": True}}),
                        "End": True,
                    }
                }
            ),
            r"M\.ItemProcessor\.W\.SecondsPath: unsupported path",
        ),
    ],
)
def test_what_the_executor_does_not_implement_is_refused_before_running(definition, match):
    _refused(definition, match)


def test_input_output_items_and_choice_paths_read_the_context_object():
    """input-output-contextobject.html: InputPath, OutputPath, ItemsPath and Choice rules may read `$$`."""
    definition = machine(
        {
            "C": {
                "Type": "Choice",
                "Choices": [{"Variable": "$$.Execution.Input.go", "BooleanEquals": True, "Next": "M"}],
                "Default": "Stop",
            },
            "M": {
                "Type": "Map",
                "InputPath": "$$.Execution.Input",
                "ItemsPath": "$$.Execution.Input.items",
                "ItemProcessor": machine({"P": {"Type": "Pass", "OutputPath": "$.i", "End": True}}),
                "ItemSelector": {"v.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index"},
                "End": True,
            },
            "Stop": {"Type": "Succeed"},
        }
    )
    assert Executor(definition, Calls()).run("e", {"go": True, "items": ["a", "b"]}).output == [0, 1]


def test_the_local_pipeline_s_context_names_the_stage_s_state_machine_and_role(provisioned, settings, stage, tmp_path):
    """$$.StateMachine.Id and $$.Execution.RoleArn on the local stage are the stage's, as on AWS (not a placeholder)."""
    from chalicelib.stage.declared import role_arn
    from lakehouse.orchestration import ExecutionStore, LocalOrchestrator, LocalServices

    definition = {
        "StartAt": "Context",
        "States": {
            "Context": {
                "Type": "Pass",
                "Parameters": {"machine.$": "$$.StateMachine.Id", "role.$": "$$.Execution.RoleArn"},
                "End": True,
            }
        },
    }
    services = LocalServices(settings, stage, provisioned, invoke=None, app_name="lakehouse")
    done = LocalOrchestrator(definition, services, ExecutionStore(tmp_path)).executor.run("ctx", {})
    account = "123456789012"  # moto's
    assert done.output == {
        "machine": f"arn:aws:states:{stage.region}:{account}:stateMachine:{stage.state_machine}",
        "role": role_arn(stage.pipeline_role or "local-pipeline", account),
    }
    assert stage.state_machine in done.output["machine"] and not done.output["machine"].endswith(":local")
