"""AWS's size limits that moto does not enforce, enforced by the local stage (it is never kinder than AWS).

What moto 5.2 enforces already, and the local stage leaves to it (tests/test_limits.py crosses each):
- DynamoDB's 400 KB item ("Service, account, and table quotas in Amazon DynamoDB": ValidationException "Item size
  has exceeded the maximum allowed size"; moto draws the line at 405,000 bytes by its own count),
- DynamoDB's 100 actions per TransactWriteItems and 100 keys per BatchGetItem (the API reference of each:
  ValidationException),
- SQS's message size: the queue's MaximumMessageSize, at most and by default 1 MiB ("Amazon SQS message quotas";
  it was 256 KiB until August 2025): InvalidParameterValue.

What it does not, and this module adds:
- DynamoDB's 4 MB aggregate size of a TransactWriteItems ("The aggregate size of the items in the transaction
  cannot exceed 4 MB", TransactWriteItems API reference), refused at the moto server's door (`enforced`);
- Athena's 262,144-byte query string: `chalicelib.athena.within_athena_limit`, in the local SQL engine;
- Lambda's 6 MB synchronous invocation payload, request and response ("Lambda quotas"), for the functions the local
  stage invokes in process (`lambda_request`, `lambda_response`).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable
from typing import Any

# Lambda quotas: "Invocation payload (request and response): 6 MB each for request and response (synchronous)".
LAMBDA_PAYLOAD_LIMIT = 6 * 1024 * 1024
# TransactWriteItems: "The aggregate size of the items in the transaction cannot exceed 4 MB."
TRANSACTION_LIMIT = 4 * 1024 * 1024


class LimitExceeded(Exception):
    """A request AWS would refuse for its size: `code` is the error AWS answers with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def payload_bytes(payload: Any) -> int:
    """The size of a JSON payload as Lambda counts it: its serialised UTF-8 bytes."""
    return len(json.dumps(payload, default=str).encode())


def lambda_request(payload: Any) -> None:
    """Refuse an invocation payload over the quota, as Invoke does (HTTP 413, RequestTooLargeException)."""
    size = payload_bytes(payload)
    if size > LAMBDA_PAYLOAD_LIMIT:
        raise LimitExceeded(
            "RequestTooLargeException",
            f"Request must be smaller than {LAMBDA_PAYLOAD_LIMIT} bytes for the InvokeFunction operation "
            f"({size} bytes)",
        )


def lambda_response(result: Any) -> None:
    """Refuse a function's response over the quota, as Lambda does: a function error of type
    Function.ResponseSizeTooLarge (the function ran; its result is lost)."""
    size = payload_bytes(result)
    if size > LAMBDA_PAYLOAD_LIMIT:
        raise LimitExceeded(
            "Function.ResponseSizeTooLarge",
            f"Response payload size ({size} bytes) exceeded maximum allowed payload size "
            f"({LAMBDA_PAYLOAD_LIMIT} bytes).",
        )


def attribute_bytes(value: dict[str, Any]) -> int:
    """The size DynamoDB counts for one attribute value in its wire form (`{"S": "..."}`): UTF-8 lengths of strings,
    binary as sent (base64, which overcounts: stricter, never kinder), numbers as their text, and 3 bytes plus one per
    element for lists and maps ("Item sizes and formats", DynamoDB Developer Guide). Written by hand: neither boto3
    nor moto exports an item sizer for the wire form."""
    ((kind, inner),) = value.items()
    if kind in ("S", "N", "B"):
        return len(str(inner).encode())
    if kind in ("SS", "NS", "BS"):
        return sum(len(str(v).encode()) for v in inner)
    if kind == "L":
        return 3 + sum(attribute_bytes(v) + 1 for v in inner)
    if kind == "M":
        return 3 + sum(len(k.encode()) + attribute_bytes(v) + 1 for k, v in inner.items())
    return 1  # BOOL, NULL


def item_bytes(item: dict[str, Any]) -> int:
    """An item's size: its attribute names and values."""
    return sum(len(name.encode()) + attribute_bytes(value) for name, value in item.items())


def transaction_bytes(request: dict[str, Any]) -> int:
    """What a TransactWriteItems request writes and checks: each action's item (Put) or key (Update, Delete,
    ConditionCheck) and the values its expressions carry."""
    total = 0
    for action in request.get("TransactItems", []):
        for op in action.values():
            total += item_bytes(op.get("Item") or op.get("Key") or {})
            total += sum(attribute_bytes(v) for v in (op.get("ExpressionAttributeValues") or {}).values())
    return total


def _refused(start_response: Callable[..., Any], code: str, message: str) -> Iterable[bytes]:
    """DynamoDB's JSON error answer (awsJson1_0: `__type` names the error)."""
    body = json.dumps({"__type": f"com.amazon.coral.validate#{code}", "message": message}).encode()
    headers = [("Content-Type", "application/x-amz-json-1.0"), ("Content-Length", str(len(body)))]
    start_response("400 Bad Request", headers)
    return [body]


def enforced(app: Callable[..., Any]) -> Callable[..., Any]:
    """The moto server's WSGI app with the size limits moto lacks checked at its door: a refused request reaches
    neither moto nor the snapshot's journal."""

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("HTTP_X_AMZ_TARGET", "") != "DynamoDB_20120810.TransactWriteItems":
            return app(environ, start_response)
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)  # read again by moto
        try:
            size = transaction_bytes(json.loads(body or b"{}"))
        except (ValueError, AttributeError, TypeError):
            return app(environ, start_response)  # not ours to judge: moto answers a malformed request
        if size > TRANSACTION_LIMIT:
            message = (
                f"Transaction request cannot exceed {TRANSACTION_LIMIT} bytes: the aggregate size of its items is "
                f"{size} bytes"
            )
            return _refused(start_response, "ValidationException", message)
        return app(environ, start_response)

    return wsgi
