"""Amazon States Language (JSONPath) data handling for the local executor: paths, intrinsic functions, the
payload limit, and the errors they raise. `lakehouse/stepfunctions.py` runs states; this module only computes.

Pages cited below are in the AWS Step Functions developer guide (https://docs.aws.amazon.com/step-functions/latest/dg/).
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib.errors import LakehouseError

# "Maximum input or output size for a task, state, or execution: 256 KiB of data as a UTF-8 encoded string"
# (service-quotas.html); past it "a States.DataLimitExceeded exception will be thrown" (concepts-error-handling.html).
PAYLOAD_LIMIT = 256 * 1024


class UnsupportedDefinition(LakehouseError):
    """The definition uses something this executor does not implement (it says what and where)."""


class TaskError(LakehouseError):
    """A failure with a States error name, as a Task or a Fail state reports it (a Fail state may have none)."""

    def __init__(self, error: str | None, cause: str | None = "") -> None:
        super().__init__(f"{error}: {cause}")
        self.error, self.cause = error, cause


def payload_size(value: Any) -> int:
    """Bytes of `value` as the UTF-8 JSON text the quota counts."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


# -- paths ---------------------------------------------------------------------------------------------------
# Only the definite steps and [*]; slices, filters, negative indexes and `..` are refused when the definition is
# validated (a JSONPath library would accept them, but AWS's Jayway semantics for each would have to be matched).
_TOKEN = re.compile(r"\.([A-Za-z0-9_\-]+)|\[(\d+)\]|\['([^']+)'\]|\[(\*)\]")
ALL = "*"  # the [*] token: every element of a list


def tokens(path: str) -> list[str | int]:
    """The steps of a JSONPath `$...`; UnsupportedDefinition for anything else."""
    if not (path == "$" or path.startswith(("$.", "$["))):
        raise UnsupportedDefinition(f"unsupported path {path!r}: paths start with $")
    rest, out = path[1:], []
    while rest:
        match = _TOKEN.match(rest)
        if not match:
            raise UnsupportedDefinition(
                f"unsupported path {path!r}: only .name, [n], ['name'] and [*] steps (no slices, filters or ..)"
            )
        out.append(int(match[2]) if match[2] is not None else (match[1] or match[3] or match[4]))
        rest = rest[match.end() :]
    return out


_MISSING = object()  # get_path: no default given


def get_path(data: Any, path: str, default: Any = _MISSING) -> Any:
    """The value at `path`. A path with [*] is indefinite: it yields the list of what it matches, `[]` when the
    value is missing or not a list (AWS, as Jayway JsonPath, which it uses for JSONPath states)."""
    steps = tokens(path)
    if ALL in steps:
        found: list[Any] = []
        _collect(data, steps, found)
        return found
    try:
        for step in steps:
            data = data[step]
        return data
    except (KeyError, IndexError, TypeError):
        if default is not _MISSING:
            return default
        raise TaskError("States.Runtime", f"path {path!r} not found in the input") from None


def _collect(value: Any, steps: list[str | int], out: list[Any]) -> None:
    """Every match of `steps` under `value`, flattened as Jayway does (`$[*][*]` flattens an array of arrays)."""
    for i, step in enumerate(steps):
        if step == ALL:
            for element in value if isinstance(value, list) else []:
                _collect(element, steps[i + 1 :], out)
            return
        indexed = isinstance(step, int) and isinstance(value, list) and step < len(value)
        if not (indexed or (isinstance(step, str) and isinstance(value, dict) and step in value)):
            return
        value = value[step]
    out.append(value)


def set_path(data: Any, path: str, value: Any) -> Any:
    """A copy of `data` with `value` at `path` (ResultPath semantics: intermediate objects are created)."""
    steps = tokens(path)
    if not steps:
        return value
    root: dict[Any, Any] = copy.deepcopy(data) if isinstance(data, dict) else {}
    node = root
    for step in steps[:-1]:
        if not isinstance(node.get(step), dict):
            node[step] = {}
        node = node[step]
    node[steps[-1]] = value
    return root


def check_reference_path(path: str) -> None:
    """ResultPath takes a reference path; this executor writes only `.name` steps (input-output-resultpath.html)."""
    steps = tokens(path)
    if any(step == ALL or isinstance(step, int) for step in steps):
        raise UnsupportedDefinition(f"ResultPath {path!r}: only .name steps can be written")


# -- intrinsic functions (intrinsic-functions.html) -------------------------------------------------------------
# No Python library parses the States Language's intrinsic syntax, so a small recursive-descent parser does it.
@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Any, ...]  # Call | Literal | Text | Ref


@dataclass(frozen=True)
class Literal:
    value: Any  # a number, true, false or null


@dataclass(frozen=True)
class Text:
    raw: str  # between the quotes, escapes kept: Format must tell `\{}` from `{}`


@dataclass(frozen=True)
class Ref:
    path: str  # $... (the input) or $$... (the context object)


_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?")
_NAME = re.compile(r"States\.[A-Za-z0-9]+")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text, self.at = text, 0

    def fail(self, why: str) -> UnsupportedDefinition:
        return UnsupportedDefinition(f"intrinsic function {self.text!r}: {why} at character {self.at}")

    def skip(self) -> None:
        while self.at < len(self.text) and self.text[self.at] == " ":
            self.at += 1

    def call(self) -> Call:
        name = _NAME.match(self.text, self.at)
        if not name:
            raise self.fail("expected States.<Function>(")
        self.at = name.end()
        if self.text[self.at : self.at + 1] != "(":
            raise self.fail("expected (")
        self.at += 1
        args: list[Any] = []
        self.skip()
        if self.text[self.at : self.at + 1] == ")":
            self.at += 1
            return Call(name[0], ())
        while True:
            self.skip()
            args.append(self.argument())
            self.skip()
            ch = self.text[self.at : self.at + 1]
            self.at += 1
            if ch == ")":
                return Call(name[0], tuple(args))
            if ch != ",":
                self.at -= 1
                raise self.fail("expected , or )")

    def argument(self) -> Any:
        rest = self.text[self.at :]
        if rest.startswith("'"):
            return self.string()
        if rest.startswith("States."):
            return self.call()
        if rest.startswith("$"):
            return self.path()
        for word, value in (("true", True), ("false", False), ("null", None)):
            if rest.startswith(word):
                self.at += len(word)
                return Literal(value)
        number = _NUMBER.match(self.text, self.at)
        if number:
            self.at = number.end()
            return Literal(json.loads(number[0]))
        raise self.fail("expected a 'string', a number, true, false, null, a path or an intrinsic")

    def string(self) -> Text:
        start = self.at = self.at + 1
        while self.at < len(self.text):
            ch = self.text[self.at]
            if ch == "\\":
                if self.text[self.at + 1 : self.at + 2] not in ("'", "{", "}", "\\"):
                    raise self.fail("open escape backslash (only \\' \\{ \\} \\\\)")
                self.at += 2
                continue
            if ch == "'":
                self.at += 1
                return Text(self.text[start : self.at - 1])
            self.at += 1
        raise self.fail("unterminated string")

    def path(self) -> Ref:
        start, depth, quoted = self.at, 0, False
        while self.at < len(self.text):
            ch = self.text[self.at]
            if ch == "'" and depth:
                quoted = not quoted
            elif not quoted and ch == "[":
                depth += 1
            elif not quoted and ch == "]":
                depth -= 1
            elif not quoted and depth == 0 and ch in ",) ":
                break
            self.at += 1
        path = self.text[start : self.at]
        tokens("$" + path[2:] if path.startswith("$$") else path)  # refuses what the executor cannot read
        return Ref(path)


def parse_intrinsic(expression: str) -> Call:
    """The call tree of `States.X(...)`, checked against the functions this executor implements."""
    parser = _Parser(expression.strip())
    call = parser.call()
    if parser.at != len(parser.text):
        raise parser.fail("unexpected text after the call")
    _check_calls(call, expression)
    return call


def _check_calls(call: Call, expression: str) -> None:
    if call.name not in INTRINSICS:
        raise UnsupportedDefinition(
            f"intrinsic function {call.name} in {expression!r} is not supported (only {', '.join(sorted(INTRINSICS))})"
        )
    _, low, high = INTRINSICS[call.name]
    if not low <= len(call.args) <= high:
        count = len(call.args)
        raise UnsupportedDefinition(f"{call.name} in {expression!r} takes {low}..{high} arguments, not {count}")
    for arg in call.args:
        if isinstance(arg, Call):
            _check_calls(arg, expression)


_UNESCAPE = re.compile(r"\\(.)")


def evaluate(node: Any, data: Any, context: Any) -> Any:
    """The value of a parsed intrinsic argument or call."""
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Text):
        return _UNESCAPE.sub(r"\1", node.raw)
    if isinstance(node, Ref):
        return get_path(context, "$" + node.path[2:]) if node.path.startswith("$$") else get_path(data, node.path)
    function = INTRINSICS[node.name][0]
    if node.name == "States.Format" and node.args and isinstance(node.args[0], Text):
        template: Any = node.args[0]  # a literal template keeps its escapes: `\{}` is not a placeholder
    else:
        template = None
    values = [evaluate(arg, data, context) for arg in node.args]
    if template is not None:
        values[0] = template
    try:
        return function(*values)
    except _Invalid as exc:
        raise TaskError("States.IntrinsicFailure", f"{node.name}: {exc}") from None


class _Invalid(Exception):
    """An argument an intrinsic cannot take: States.IntrinsicFailure."""


def _format(template: Any, *values: Any) -> str:
    if isinstance(template, Text):
        pieces = [_UNESCAPE.sub(r"\1", p) for p in re.split(r"(?<!\\)\{\}", template.raw)]
    elif isinstance(template, str):
        pieces = template.split("{}")
    else:
        raise _Invalid("the first argument must be a string")
    if len(pieces) - 1 != len(values):
        raise _Invalid(f"{len(pieces) - 1} placeholder(s) for {len(values)} argument(s)")
    out = pieces[0]
    for value, piece in zip(values, pieces[1:], strict=True):
        out += _natural(value) + piece
    return out


def _natural(value: Any) -> str:
    """A value as States.Format writes it: strings without quotes, null/true/false in JSON's words, and objects
    and arrays as Java's Map and List print them (`{Arg1=1, Arg2=[]}`), as AWS was observed to render them."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_natural(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_natural(v) for v in value) + "]"
    return str(value)


def _integer(value: Any, what: str) -> int:
    """An integer argument; a fractional number is rounded half up, as AWS does for States.MathAdd
    ("If you specify a non-integer value ... Step Functions will round it to the nearest integer")."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(f"{what} must be a number, not {json.dumps(value)}")
    return value if isinstance(value, int) else math.floor(value + 0.5)


def _math_add(a: Any, b: Any) -> int:
    return _integer(a, "the first argument") + _integer(b, "the second argument")


def _array(value: Any, what: str = "the first argument") -> list[Any]:
    if not isinstance(value, list):
        raise _Invalid(f"{what} must be an array")
    return value


def _array_partition(array: Any, size: Any) -> list[list[Any]]:
    items, chunk = _array(array), _integer(size, "the chunk size")
    if chunk <= 0:
        raise _Invalid("the chunk size must be a positive integer")
    return [items[i : i + chunk] for i in range(0, len(items), chunk)]


def _array_range(first: Any, last: Any, step: Any) -> list[int]:
    a, b, s = (_integer(v, "each argument") for v in (first, last, step))
    if s == 0:
        raise _Invalid("the step must not be 0")
    out = list(range(a, b + (1 if s > 0 else -1), s))
    if len(out) > 1000:
        raise _Invalid("the array would have more than 1000 items")
    return out


def _array_get_item(array: Any, index: Any) -> Any:
    items, i = _array(array), _integer(index, "the index")
    if not 0 <= i < len(items):
        raise _Invalid(f"index {i} is out of range for an array of {len(items)}")
    return items[i]


def _key(value: Any) -> str:
    """JSON equality: 1 and true differ, key order does not matter (Python's == would equate 1, 1.0 and True)."""
    return json.dumps(value, sort_keys=True)


def _array_contains(array: Any, value: Any) -> bool:
    return _key(value) in {_key(item) for item in _array(array)}


def _array_unique(array: Any) -> list[Any]:
    seen: dict[str, Any] = {}
    for item in _array(array):
        seen.setdefault(_key(item), item)
    return list(seen.values())


def _string(value: Any, what: str = "the argument") -> str:
    if not isinstance(value, str):
        raise _Invalid(f"{what} must be a string")
    return value


def _base64_decode(value: Any) -> str:
    try:
        return base64.b64decode(_string(value), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise _Invalid(f"not Base64 text: {exc}") from None


_HASHES = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512"}


def _hash(data: Any, algorithm: Any) -> str:
    if algorithm not in _HASHES:
        raise _Invalid(f"the algorithm must be one of {', '.join(_HASHES)}")
    return hashlib.new(_HASHES[algorithm], _string(data, "the data").encode()).hexdigest()


def _json_merge(left: Any, right: Any, deep: Any) -> dict[str, Any]:
    if not (isinstance(left, dict) and isinstance(right, dict)):
        raise _Invalid("the first two arguments must be objects")
    if deep is not False:  # "Step Functions only supports the shallow merging mode"
        raise _Invalid("the third argument must be false (only shallow merging)")
    return {**left, **right}


def _string_to_json(value: Any) -> Any:
    try:
        return json.loads(_string(value))
    except json.JSONDecodeError as exc:
        raise _Invalid(f"not JSON text: {exc}") from None


def _string_split(text: Any, delimiter: Any) -> list[str]:
    # each character of the second argument is a delimiter and empty pieces are left out, as LocalStack's emulator
    # does (the AWS page's example has one delimiter and no empty piece, so it does not settle either point)
    chars = _string(delimiter, "the delimiter")
    pieces = re.split("[" + re.escape(chars) + "]", _string(text, "the first argument")) if chars else [text]
    return [p for p in pieces if p]


# name -> (function, fewest arguments, most arguments). States.MathRandom and States.UUID are left out on purpose:
# their results cannot be checked against AWS.
INTRINSICS: dict[str, tuple[Callable[..., Any], int, int]] = {
    "States.Format": (_format, 1, 1_000),
    "States.StringToJson": (_string_to_json, 1, 1),
    "States.JsonToString": (lambda value: json.dumps(value, separators=(",", ":"), ensure_ascii=False), 1, 1),
    "States.Array": (lambda *values: list(values), 0, 1_000),
    "States.ArrayPartition": (_array_partition, 2, 2),
    "States.ArrayContains": (_array_contains, 2, 2),
    "States.ArrayRange": (_array_range, 3, 3),
    "States.ArrayGetItem": (_array_get_item, 2, 2),
    "States.ArrayLength": (lambda array: len(_array(array)), 1, 1),
    "States.ArrayUnique": (_array_unique, 1, 1),
    "States.Base64Encode": (lambda value: base64.b64encode(_string(value).encode()).decode(), 1, 1),
    "States.Base64Decode": (_base64_decode, 1, 1),
    "States.Hash": (_hash, 2, 2),
    "States.JsonMerge": (_json_merge, 3, 3),
    "States.MathAdd": (_math_add, 2, 2),
    "States.StringSplit": (_string_split, 2, 2),
}


# -- Choice rules (state-choice.html) ----------------------------------------------------------------------------
def _string_matches(value: Any, pattern: str) -> bool:
    """`*` matches any run of characters, `\\*` a literal star; nothing else is special (fnmatch would also treat
    `?` and `[...]` as wildcards, which AWS does not)."""
    if not isinstance(value, str):
        return False
    parts = re.findall(r"\\.|\*|[^\\*]+", pattern)
    regex = "".join(".*" if p == "*" else re.escape(p[1:] if p.startswith("\\") else p) for p in parts)
    return re.fullmatch(regex, value, re.DOTALL) is not None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text(value: Any) -> bool:
    return isinstance(value, str)


# operator -> (comparison, the type its operand must have)
COMPARISONS: dict[str, tuple[Callable[[Any, Any], bool], Callable[[Any], bool]]] = {
    "StringEquals": (lambda a, b: _text(a) and a == b, _text),
    "StringLessThan": (lambda a, b: _text(a) and a < b, _text),
    "StringLessThanEquals": (lambda a, b: _text(a) and a <= b, _text),
    "StringGreaterThan": (lambda a, b: _text(a) and a > b, _text),
    "StringGreaterThanEquals": (lambda a, b: _text(a) and a >= b, _text),
    "StringMatches": (_string_matches, _text),
    "NumericEquals": (lambda a, b: _number(a) and a == b, _number),
    "NumericLessThan": (lambda a, b: _number(a) and a < b, _number),
    "NumericLessThanEquals": (lambda a, b: _number(a) and a <= b, _number),
    "NumericGreaterThan": (lambda a, b: _number(a) and a > b, _number),
    "NumericGreaterThanEquals": (lambda a, b: _number(a) and a >= b, _number),
    "BooleanEquals": (lambda a, b: isinstance(a, bool) and a == b, lambda b: isinstance(b, bool)),
}
# type tests: operator -> whether the value is of the type (IsPresent is handled apart: it sees absent values)
TYPE_TESTS: dict[str, Callable[[Any], bool]] = {
    "IsNull": lambda v: v is None,
    "IsString": _text,
    "IsNumeric": _number,
    "IsBoolean": lambda v: isinstance(v, bool),
}
