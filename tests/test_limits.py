"""AWS's size limits on the local stage (issue 27, item 4): each crossed, refused with the error AWS documents, and
where our code could make such a request, handled. The quota pages are cited in lakehouse/limits.py."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError
from lakehouse_etl.lake import Lake
from lakehouse_etl.local_sql import DuckDBEngine

from chalicelib.athena import QUERY_STRING_LIMIT, within_athena_limit
from chalicelib.errors import LedgerError
from chalicelib.ledger.base import BATCH_FILES_BYTES, fitting_one_item, item_bytes
from chalicelib.ledger.dynamodb import LEDGER_TABLE_SPEC, DynamoDBLedger
from lakehouse import limits
from lakehouse.asl import TaskError
from lakehouse.orchestration import LocalServices
from lakehouse.stepfunctions import _UNCATCHABLE


def refused(call, *args, **kwargs) -> tuple[str, str]:
    """The AWS error code and message of a call that must fail."""
    with pytest.raises(ClientError) as caught:
        call(*args, **kwargs)
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


# -- Athena: 262,144 bytes of query string ---------------------------------------------------------------------------
def test_the_local_sql_engine_takes_athena_s_longest_query_and_refuses_one_byte_more(tmp_path, settings):
    def padded(size: int, filler: str = "x") -> str:
        head = "SELECT 1 AS one -- "
        return head + filler * ((size - len(head.encode())) // len(filler.encode()))

    within_athena_limit(padded(QUERY_STRING_LIMIT))
    engine = DuckDBEngine(Lake(str(tmp_path), settings))
    assert engine.run(padded(QUERY_STRING_LIMIT)).rows == [(1,)]
    for sql in (padded(QUERY_STRING_LIMIT + 1), padded(QUERY_STRING_LIMIT + 2, "é")):  # bytes, not characters
        code, message = refused(engine.run, sql)
        assert code == "InvalidRequestException"
        assert f"({len(sql.encode())} bytes)" in message
        assert message.endswith("Member must have length less than or equal to 262144")


# -- DynamoDB on the local stage's moto server ------------------------------------------------------------------------
@pytest.fixture
def dynamodb(moto_endpoint):
    ddb = boto3.client(
        "dynamodb",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="t",
        aws_secret_access_key="t",
    )
    name = f"limits-{uuid.uuid4().hex[:8]}"
    ddb.create_table(TableName=name, **LEDGER_TABLE_SPEC)
    yield ddb, name
    ddb.delete_table(TableName=name)


def test_dynamodb_refuses_an_item_over_400_kb(dynamodb):
    ddb, table = dynamodb
    ddb.put_item(TableName=table, Item={"pk": {"S": "fits"}, "v": {"S": "x" * 390_000}})
    code, message = refused(ddb.put_item, TableName=table, Item={"pk": {"S": "big"}, "v": {"S": "x" * 410_000}})
    assert (code, message) == ("ValidationException", "Item size has exceeded the maximum allowed size")


def test_dynamodb_refuses_a_transaction_of_101_actions_or_over_4_mb(dynamodb):
    ddb, table = dynamodb

    def puts(count: int, size: int) -> list:
        return [
            {"Put": {"TableName": table, "Item": {"pk": {"S": f"t{i}"}, "v": {"S": "x" * size}}}} for i in range(count)
        ]

    code, message = refused(ddb.transact_write_items, TransactItems=puts(101, 10))
    assert code == "ValidationException" and "less than or equal to 100" in message
    code, message = refused(ddb.transact_write_items, TransactItems=puts(100, 42_000))  # 4.2 MB: the local stage's own
    assert code == "ValidationException" and "cannot exceed 4194304 bytes" in message
    assert "Item" not in ddb.get_item(TableName=table, Key={"pk": {"S": "t0"}})  # nothing of it was written
    ddb.transact_write_items(TransactItems=puts(100, 41_000))  # 100 actions, 4.1 MB by DynamoDB's count: taken
    assert limits.transaction_bytes({"TransactItems": puts(100, 41_000)}) < limits.TRANSACTION_LIMIT


def test_dynamodb_refuses_a_batch_get_of_101_keys_and_the_ledger_reads_any_number(dynamodb):
    ddb, table = dynamodb
    keys = [{"pk": {"S": f"file#{i}"}} for i in range(101)]
    code, message = refused(ddb.batch_get_item, RequestItems={table: {"Keys": keys}})
    assert code == "ValidationException" and "100" in message
    ledger = DynamoDBLedger(ddb, table)
    for i in range(250):
        ddb.put_item(TableName=table, Item={"pk": {"S": f"file#f{i}"}, "kind": {"S": "file"}})
    assert len(ledger._get_many([f"file#f{i}" for i in range(250)])) == 250  # three BatchGetItem calls of <= 100


def test_the_ledger_keeps_a_batch_item_under_400_kb_and_says_so_when_an_item_is_too_big(dynamodb):
    ddb, table = dynamodb
    ledger = DynamoDBLedger(ddb, table)
    ids = tuple(f"bucket/raw/orders/{'n' * 1000}-{i}.csv#v" for i in range(1000))  # 1,000 ids of 1 KB: 1 MB
    with pytest.raises(LedgerError, match="Item size has exceeded the maximum allowed size"):
        ledger._put_if_absent({"pk": "batch#too-big", "kind": "batch", "files": list(ids)})
    fitted = fitting_one_item(ids)  # what open_batch takes: the oldest that fit, the rest wait for the next batch
    assert 0 < len(fitted) < len(ids) and item_bytes(list(fitted)) <= BATCH_FILES_BYTES
    assert ledger._put_if_absent({"pk": "batch#orders", "kind": "batch", "files": list(fitted)}) is None


# -- SQS: the queue's MaximumMessageSize, 1 MiB at most and by default -----------------------------------------------
def test_sqs_refuses_a_message_over_the_queue_s_maximum_size(moto_endpoint):
    sqs = boto3.client(
        "sqs", endpoint_url=moto_endpoint, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )
    url = sqs.create_queue(QueueName=f"limits-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    size = int(
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["MaximumMessageSize"])["Attributes"][
            "MaximumMessageSize"
        ]
    )
    assert size == 1_048_576
    sqs.send_message(QueueUrl=url, MessageBody="x" * size)
    code, message = refused(sqs.send_message, QueueUrl=url, MessageBody="x" * (size + 1))
    assert code == "InvalidParameterValue" and f"shorter than {size} bytes" in message
    sqs.delete_queue(QueueUrl=url)


# -- Lambda: 6 MB each way, for the functions the local stage invokes in process -------------------------------------
class Invoked:
    def __init__(self, payload):
        self.payload = payload


def services(settings, stage, answer):
    calls = []

    def invoke(name, payload):
        calls.append(name)
        return Invoked(answer)

    return LocalServices(settings, stage, None, invoke, "serverless-lakehouse"), calls


def test_a_lambda_step_s_response_over_6_mb_is_a_catchable_function_error(settings):
    stage = settings.stage("local")
    arn = f"arn:aws:lambda:us-east-1:123456789012:function:serverless-lakehouse-{stage.name}-quality_check"
    fits = "x" * (limits.LAMBDA_PAYLOAD_LIMIT - 2)  # its JSON adds the two quotes
    local, _ = services(settings, stage, fits)
    assert local.invoke_lambda(arn, {})["Payload"] == fits
    local, calls = services(settings, stage, fits + "x")
    with pytest.raises(TaskError) as error:
        local.invoke_lambda(arn, {})
    assert calls == ["quality_check"]  # the function ran; Lambda drops its result
    assert error.value.error == "Function.ResponseSizeTooLarge" and error.value.error not in _UNCATCHABLE
    assert "exceeded maximum allowed payload size (6291456 bytes)" in json.loads(error.value.cause)["errorMessage"]


def test_a_lambda_request_over_6_mb_is_refused_before_the_function_runs(settings):
    stage = settings.stage("local")
    arn = f"arn:aws:lambda:us-east-1:123456789012:function:serverless-lakehouse-{stage.name}-quality_check"
    local, calls = services(settings, stage, {})
    with pytest.raises(TaskError) as error:
        local.invoke_lambda(arn, {"x": "x" * limits.LAMBDA_PAYLOAD_LIMIT})
    assert calls == [] and error.value.error == "Lambda.RequestTooLargeException"


def test_a_batch_over_many_partitions_closes_in_one_ledger_item_and_is_audited_over_every_partition(dynamodb, settings):
    """The ETL's batch summary names the partitions the batch touched (the gate prunes by them); thousands of them (a
    partition column of many values) made the batch item pass DynamoDB's 400 KB, and the batch could not close."""
    from lakehouse_etl import delta
    from lakehouse_etl.processed import Job, close

    from chalicelib.ledger import Batch

    ddb, table = dynamodb
    ledger = DynamoDBLedger(ddb, table)
    ledger._put_if_absent({"pk": "batch#orders", "kind": "batch", "dataset": "orders", "number": 1, "state": "OPEN"})
    job = Job(settings, settings.stage("local"), None, ledger, None)
    many = [f"customer-{i:08d}" for i in range(40_000)]  # 720 KB of values
    kwargs = {"merged": {}, "rejected": {}, "by_reason": {}, "duplicates": 0}
    report = close(job, Batch("orders", 1, ()), [], delta.MergeResult(3, False, {}, 10), partitions=many, **kwargs)
    item = ledger.batch_state("orders")
    assert item["state"] == "CLOSED" and json.loads(item["summary"])["partitions"] is None and report.partitions is None
