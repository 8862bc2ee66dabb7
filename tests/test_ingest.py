import gzip
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import quote_plus

import pytest
from conftest import ROOT

from chalicelib.config import Limits
from chalicelib.errors import FileInProgressError
from chalicelib.ingest.events import ObjectRef, refs_from_notification
from chalicelib.ledger import FileRecord, Status

H = b"order_id,customer_id,order_ts,status,total_amount,currency,order_date\n"
R = b"O1,C1,2025-03-01T10:00:00Z,shipped,10.00,EUR,2025-03-01\n"


def put(ingestor, key, data, **kwargs):
    s3 = ingestor.s3
    response = s3.put_object(Bucket=ingestor.stage.bucket, Key=key, Body=data, **kwargs)
    return ObjectRef(
        bucket=ingestor.stage.bucket,
        key=key,
        version_id=response.get("VersionId"),
        etag=response["ETag"].strip('"'),
        size=len(data),
    )


def count_calls(client, operation):
    calls = []
    client.meta.events.register(f"before-call.s3.{operation}", lambda **kw: calls.append(1))
    return calls


def accepted_messages(ingestor):
    url = ingestor.sqs.get_queue_url(QueueName=ingestor.stage.accepted_queue)["QueueUrl"]
    out = []
    while batch := ingestor.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        out += [json.loads(m["Body"]) for m in batch]
        ingestor.sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
        )
    return out


def test_a_valid_file_is_recorded_and_announced_once(ingestor):
    ref = put(ingestor, "raw/orders/day=1/a.csv", H + R * 3)
    record = ingestor.ingest(ref)
    assert record.status == Status.VALID and record.rows == 3 and record.format == "csv" and record.announced
    assert record.md5 == ref.etag and record.size == len(H + R * 3) and record.version_id == ref.version_id
    columns = ",".join(sorted(H.decode().strip().split(",")))
    assert record.layout == f"csv; columns {columns}; folders day=*"  # what a crawler would see (crawling.py)
    for _ in range(3):  # the same event again: no second acceptance, no second announcement
        assert ingestor.ingest(ref).status == Status.VALID
    assert [m["file_id"] for m in accepted_messages(ingestor)] == [record.file_id]
    assert len(ingestor.ledger.files()) == 1


def test_the_ledger_says_which_valid_csv_files_the_positional_raw_table_reads_wrong(ingestor, settings):
    """Athena's raw_<dataset> maps CSV fields by position in contract order: a valid file whose header orders the
    columns otherwise is right in processed/ (the ETL maps by name) but wrong there, and its record says so."""
    from chalicelib.stage.catalog import raw_table, raw_table_shows

    names = H.decode().strip().split(",")
    table = raw_table(settings, ingestor.stage, settings.datasets["orders"])
    assert [c["Name"] for c in table["StorageDescriptor"]["Columns"]] == names  # contract order, by position
    in_order = ingestor.ingest(put(ingestor, "raw/orders/a.csv", H + R))
    swapped_header = ",".join([names[1], names[0], *names[2:]]) + "\n"
    swapped_row = b"C1,O2" + R[R.index(b",", 3) :]
    reordered = ingestor.ingest(put(ingestor, "raw/orders/b.csv", swapped_header.encode() + swapped_row))
    assert (in_order.status, in_order.raw_table) == (Status.VALID, True)
    assert (reordered.status, reordered.raw_table) == (Status.VALID, False)
    assert ingestor.ledger.get(reordered.file_id).raw_table is False  # kept, and shown by `lakehouse ledger`
    orders = settings.datasets["orders"]
    assert raw_table_shows(replace(orders, formats=("jsonl",)), "jsonl", tuple(reversed(names))) is True  # by name
    assert raw_table_shows(replace(orders, formats=("csv", "jsonl")), "csv", tuple(names)) is None  # no raw_ table


def test_same_content_under_another_key_is_a_duplicate_known_from_head_alone(ingestor):
    original = ingestor.ingest(put(ingestor, "raw/orders/a.csv", H + R))
    gets = count_calls(ingestor.s3, "GetObject")
    dup = ingestor.ingest(put(ingestor, "raw/orders/b.csv", H + R))
    assert dup.status == Status.DUPLICATE and dup.duplicate_of == original.file_id and gets == []
    assert ingestor.s3.head_object(Bucket=ingestor.stage.bucket, Key="raw/orders/b.csv")  # raw/ untouched


def test_a_multipart_upload_is_hashed_while_validated(ingestor, tmp_path):
    from boto3.s3.transfer import TransferConfig

    data = H + R * 120_000  # ~6.7 MB, uploaded in 5 MB parts: the ETag is no MD5
    original = ingestor.ingest(put(ingestor, "raw/orders/small.csv", data))
    path = tmp_path / "big.csv"
    path.write_bytes(data)
    ingestor.s3.upload_file(
        str(path),
        ingestor.stage.bucket,
        "raw/orders/big.csv",
        Config=TransferConfig(multipart_threshold=5 * 1024**2, multipart_chunksize=5 * 1024**2),
    )
    head = ingestor.s3.head_object(Bucket=ingestor.stage.bucket, Key="raw/orders/big.csv")
    assert head["ETag"].strip('"').endswith("-2")
    gets = count_calls(ingestor.s3, "GetObject")
    dup = ingestor.ingest(ObjectRef(ingestor.stage.bucket, "raw/orders/big.csv", head["VersionId"]))
    assert dup.status == Status.DUPLICATE and dup.duplicate_of == original.file_id and dup.md5 == original.md5
    assert gets == [1] and dup.rows == 120_000


def test_a_rejected_file_is_copied_with_a_reason_and_raw_is_kept(ingestor):
    bucket = ingestor.stage.bucket
    ref = put(ingestor, "raw/orders/2025/ragged.csv", H + R + b"O2,C2\n")
    record = ingestor.ingest(ref)
    assert record.status == Status.REJECTED and record.reason_code == "RAGGED_ROW" and record.line == 3
    assert record.rejected_key == "rejected/orders/2025/ragged.csv"
    copy = ingestor.s3.get_object(Bucket=bucket, Key=record.rejected_key)["Body"].read()
    assert copy == H + R + b"O2,C2\n"
    reason = json.loads(ingestor.s3.get_object(Bucket=bucket, Key=record.rejected_key + ".reason.json")["Body"].read())
    assert reason["code"] == "RAGGED_ROW" and reason["line"] == 3 and reason["source"]["version_id"] == ref.version_id
    assert reason["source"]["md5"] == record.md5 and "a row has 2 fields where the header has 7" in reason["message"]
    assert ingestor.s3.get_object(Bucket=bucket, Key=ref.key)["Body"].read() == H + R + b"O2,C2\n"
    assert accepted_messages(ingestor) == []


def test_unknown_dataset_and_a_file_directly_under_raw_are_rejected(ingestor):
    unknown = ingestor.ingest(put(ingestor, "raw/inventory/x.csv", b"sku\nA\n"))
    assert unknown.reason_code == "UNKNOWN_DATASET" and "'inventory'" in unknown.reason
    assert unknown.rejected_key == "rejected/inventory/x.csv"
    loose = ingestor.ingest(put(ingestor, "raw/loose.csv", H + R))
    assert loose.reason_code == "UNKNOWN_DATASET" and loose.rejected_key == "rejected/_no_dataset/loose.csv"


def test_a_file_over_the_size_limit_is_rejected_without_reading_it(ingestor):
    ingestor.settings = replace(ingestor.settings, limits=Limits(max_file_bytes=100))
    gets = count_calls(ingestor.s3, "GetObject")
    record = ingestor.ingest(put(ingestor, "raw/orders/big.csv", H + R * 10))
    assert record.status == Status.REJECTED and record.reason_code == "TOO_LARGE" and gets == []
    assert record.rejected_key == "rejected/orders/big.csv"


def test_keys_with_spaces_and_unicode_arrive_url_encoded_and_are_decoded(ingestor):
    key = "raw/orders/März Bestellungen+1.csv"
    ref = put(ingestor, key, H + R)
    body = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": ref.bucket},
                    "object": {
                        "key": quote_plus(key),
                        "versionId": ref.version_id,
                        "eTag": ref.etag,
                        "size": 10,
                        "sequencer": "0A",
                    },
                },
            }
        ]
    }
    (decoded,) = refs_from_notification(body)
    assert decoded.key == key
    assert ingestor.ingest(decoded).status == Status.VALID


def test_test_events_other_events_and_other_prefixes_are_ignored(ingestor):
    assert refs_from_notification({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}) == []
    assert (
        refs_from_notification(
            {
                "Records": [
                    {"eventName": "ObjectRemoved:Delete", "s3": {"bucket": {"name": "b"}, "object": {"key": "raw/x"}}}
                ]
            }
        )
        == []
    )
    assert ingestor.ingest(put(ingestor, "processed/orders/x.csv", H + R)) is None
    assert ingestor.ingest(put(ingestor, "raw/orders/", b"")) is None  # a "folder" placeholder
    assert ingestor.ledger.files() == []


def test_an_object_version_deleted_before_reading_is_recorded_as_gone(ingestor):
    ref = put(ingestor, "raw/orders/a.csv", H + R)
    ingestor.s3.delete_object(Bucket=ref.bucket, Key=ref.key, VersionId=ref.version_id)
    record = ingestor.ingest(ref)
    assert record.status == Status.GONE and record.reason_code == "OBJECT_GONE"


def test_an_object_overwritten_before_reading_leaves_the_new_content_to_its_own_event(ingestor):
    ingestor.s3.put_bucket_versioning(Bucket=ingestor.stage.bucket, VersioningConfiguration={"Status": "Suspended"})
    old = put(ingestor, "raw/orders/a.csv", H + R)
    new = put(ingestor, "raw/orders/a.csv", H + R * 2)
    old_event = replace(old, version_id=None, sequencer="01")
    new_event = replace(new, version_id=None, sequencer="02")
    assert ingestor.ingest(old_event).reason_code == "OBJECT_OVERWRITTEN"
    record = ingestor.ingest(new_event)
    assert record.status == Status.VALID and record.rows == 2


def test_a_worker_that_died_half_way_is_taken_over_after_its_lease(ingestor):
    ref = put(ingestor, "raw/orders/a.csv", H + R)
    # A worker claimed the file and then died before finishing.
    ingestor.ledger.claim(
        FileRecord(f"{ref.bucket}/{ref.key}#{ref.version_id}", ref.bucket, ref.key, ref.version_id, "orders")
    )
    with pytest.raises(FileInProgressError):
        ingestor.ingest(ref)  # within the lease: the message goes back to the queue and comes again later
    claim = ingestor.ledger.claim
    later = datetime.now(UTC) + timedelta(seconds=ingestor.stage.lease_seconds + 1)
    ingestor.ledger.claim = lambda record, now=None: claim(record, now=later)
    record = ingestor.ingest(ref)
    assert record.status == Status.VALID and record.announced and len(ingestor.ledger.files()) == 1


def test_an_announcement_lost_to_a_crash_is_sent_on_redelivery(ingestor):
    ref = put(ingestor, "raw/orders/a.csv", H + R)
    real_send = ingestor.sqs.send_message

    def broken(**kwargs):
        raise ConnectionError("network down")

    ingestor.sqs.send_message = broken
    with pytest.raises(ConnectionError):
        ingestor.ingest(ref)
    record = ingestor.ledger.get(f"{ref.bucket}/{ref.key}#{ref.version_id}")
    assert record.status == Status.VALID and not record.announced
    ingestor.sqs.send_message = real_send
    assert ingestor.ingest(ref).announced
    assert len(accepted_messages(ingestor)) == 1


def test_a_crash_after_announcing_does_not_announce_twice(ingestor):
    ref = put(ingestor, "raw/orders/a.csv", H + R)
    real_mark = ingestor.ledger.mark_announced

    def crash(record):
        raise ConnectionError("lambda timed out")

    ingestor.ledger.mark_announced = crash  # the message was sent, the flag never written
    with pytest.raises(ConnectionError):
        ingestor.ingest(ref)
    ingestor.ledger.mark_announced = real_mark
    assert ingestor.ingest(ref).announced  # the redelivery sends again ...
    assert len(accepted_messages(ingestor)) == 1  # ... and the FIFO queue's deduplication drops it


def test_gzip_content_duplicates_are_found_by_the_md5_of_the_bytes(ingestor):
    data = gzip.compress(H + R * 10, mtime=0)
    first = ingestor.ingest(put(ingestor, "raw/orders/a.csv.gz", data))
    second = ingestor.ingest(put(ingestor, "raw/orders/b.csv.gz", data))
    assert first.status == Status.VALID and first.rows == 10
    assert second.status == Status.DUPLICATE and second.duplicate_of == first.file_id


def test_throttling_is_absorbed_by_the_clients_retry_mode(aws_env):
    """Two throttled answers, then success: botocore's retry mode retries; no hand-made retry loop."""
    from botocore.awsrequest import AWSResponse

    from chalicelib.aws import ClientSettings, client

    ddb = client("dynamodb", ClientSettings(region="us-east-1", retry_mode="standard", max_attempts=5))
    attempts = []

    def throttle(request, **_):
        attempts.append(1)
        if len(attempts) <= 2:
            body = b'{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"slow down"}'
            return AWSResponse(request.url, 400, {"x-amzn-errortype": "ThrottlingException"}, _Raw(body))
        return None

    ddb.meta.events.register_first("before-send.dynamodb.ListTables", throttle)
    assert ddb.list_tables()["TableNames"] == []
    assert len(attempts) == 3


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_):
        yield self.body


def test_provisioning_declares_the_glue_jobs_with_their_dependencies(provisioned, settings, stage):
    from chalicelib.stage.declared import GLUE_PYTHON_MODULES, SPARK_PYTHON_MODULES, glue_jobs, wheels_key

    glue = provisioned.glue
    names = glue_jobs(settings, stage)
    assert len(names) == 15 and "lakehouse-local-process-order-items" in names
    # the job that runs a small run whole: Spark's minimum (two G.1X workers; the ETL runs on the driver)
    whole = glue.get_job(JobName="lakehouse-local-run-batch")["Job"]
    assert (whole["WorkerType"], whole["NumberOfWorkers"]) == ("G.1X", 2) and "--dataset" not in whole[
        "DefaultArguments"
    ]
    job = glue.get_job(JobName="lakehouse-local-process-orders")["Job"]
    assert job["GlueVersion"] == "5.0" and job["Command"]["Name"] == "glueetl"
    # one entry point for every dataset, told which by its job's --dataset
    assert job["Command"]["ScriptLocation"] == "s3://lakehouse-local-lake/glue/scripts/process_dataset.py"
    assert job["DefaultArguments"]["--dataset"] == "orders"
    args = job["DefaultArguments"]
    # the pinned modules from a zip of their wheels in the bucket, never from PyPI (tests/test_glue_wheels.py)
    assert args["--additional-python-modules"] == f"s3://lakehouse-local-lake/{wheels_key(GLUE_PYTHON_MODULES)}"
    assert args["--python-modules-installer-option"] == "--no-index"
    assert args["--extra-py-files"] == "s3://lakehouse-local-lake/glue/lakehouse_libs.zip"
    assert (args["--stage"], args["--bucket"]) == ("local", "lakehouse-local-lake")
    script = provisioned.s3.get_object(Bucket=stage.bucket, Key="glue/scripts/process_dataset.py")["Body"].read()
    assert b"entry.process_dataset()" in script
    scripts = provisioned.s3.list_objects_v2(Bucket=stage.bucket, Prefix="glue/scripts/")["Contents"]
    uploaded = sorted(o["Key"].rsplit("/", 1)[1] for o in scripts)
    assert uploaded == ["housekeeping.py", "master_merge.py", "process_dataset.py", "run_batch.py", "spark_dataset.py"]
    # each dataset's Spark job: Glue's own Delta Lake with its SQL extension and catalog, sqlglot for the rendering
    spark = glue.get_job(JobName="lakehouse-local-spark-orders")["Job"]
    args = spark["DefaultArguments"]
    assert spark["Command"]["ScriptLocation"].endswith("/spark_dataset.py") and args["--dataset"] == "orders"
    assert args["--datalake-formats"] == "delta"
    assert args["--additional-python-modules"] == f"s3://lakehouse-local-lake/{wheels_key(SPARK_PYTHON_MODULES)}"
    # started on the workers the plan sizes from the batch: a ceiling that auto scaling stays under while idle
    assert args["--enable-auto-scaling"] == "true" and "--enable-auto-scaling" not in job["DefaultArguments"]
    assert "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension" in args["--conf"]
    assert "spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog" in args["--conf"]
    # The versions Glue installs are the versions the tests run with (pins travel), every library the ETL imports.
    from importlib.metadata import version

    pinned = (ROOT / "requirements-dev.txt").read_text() + (ROOT / "requirements.txt").read_text()
    glue = dict(pin.split("==") for pin in SPARK_PYTHON_MODULES.split(","))  # the single-node jobs' and sqlglot
    assert {"pyarrow", "deltalake", "duckdb", "msgspec"} <= set(glue)
    for name, wanted in glue.items():
        assert f"{name}=={wanted}" in pinned and version(name) == wanted, name


def test_provisioning_declares_the_athena_workgroup_with_its_guards(provisioned, settings, stage):
    from deploy.provision import ensure_workgroup

    group = provisioned.athena.get_work_group(WorkGroup="lakehouse-local-analytics")["WorkGroup"]["Configuration"]
    assert group["EnforceWorkGroupConfiguration"] is True
    assert group["ResultConfiguration"]["OutputLocation"] == "s3://lakehouse-local-lake/athena-results/"
    assert group["ResultConfiguration"]["EncryptionConfiguration"] == {"EncryptionOption": "SSE_S3"}
    assert group["BytesScannedCutoffPerQuery"] == settings.limits.athena_bytes_scanned_cutoff
    assert ensure_workgroup(provisioned.athena, settings, stage).endswith(": up to date")


def test_provisioning_keeps_the_example_queries_as_named_queries(provisioned, stage):
    from chalicelib import QUERIES_DIR
    from deploy.provision import ensure_named_queries

    ids = provisioned.athena.list_named_queries(WorkGroup=stage.athena_workgroup)["NamedQueryIds"]
    queries = {q["Name"]: q for q in (provisioned.athena.get_named_query(NamedQueryId=i)["NamedQuery"] for i in ids)}
    assert set(queries) == {p.stem for p in QUERIES_DIR.glob("*.sql")}
    top = queries["top_products"]
    assert top["QueryString"] == (QUERIES_DIR / "top_products.sql").read_text()
    assert top["Database"] == stage.glue_database
    assert ensure_named_queries(provisioned.athena, stage) == "athena named queries: 0 written of 3"
