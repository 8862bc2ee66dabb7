"""The local stage's journal: what moto acknowledged is on disk before the answer, and replaying it on the
snapshot it follows gives back the same objects (with the version ids the first answers named), items and
catalog; a record cut short by a kill is left out, never half applied."""

from __future__ import annotations

import socket

import boto3
import pytest

from lakehouse import journal as journal_module
from lakehouse.journal import Journal, records
from lakehouse.localstage import moto_app, serve_moto
from lakehouse.snapshot import Gate, _backends


def _state(s3, dynamodb, glue) -> dict:
    versions = s3.list_object_versions(Bucket="journal-lake")
    return {
        "versions": sorted((v["Key"], v["VersionId"], v["ETag"]) for v in versions.get("Versions", [])),
        "markers": sorted((m["Key"], m["VersionId"]) for m in versions.get("DeleteMarkers", [])),
        "bodies": {
            (v["Key"], v["VersionId"]): s3.get_object(Bucket="journal-lake", Key=v["Key"], VersionId=v["VersionId"])[
                "Body"
            ].read()
            for v in versions.get("Versions", [])
        },
        "items": sorted(str(i) for i in dynamodb.scan(TableName="journal-ledger")["Items"]),
        "tables": sorted(t["Name"] for t in glue.get_tables(DatabaseName="journal_db")["TableList"]),
    }


@pytest.fixture
def journaled_moto(tmp_path, monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app, journal = moto_app(), Journal(tmp_path, 0)
    for backends in _backends().values():
        backends.reset()
    server = serve_moto(port, Gate(), app, journal)
    clients = [
        boto3.client(name, endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1")
        for name in ("s3", "dynamodb", "glue")
    ]
    yield app, journal, clients
    server.shutdown()
    for backends in _backends().values():
        backends.reset()


def test_replaying_the_journal_gives_back_every_version_item_and_table(journaled_moto, tmp_path):
    app, _, (s3, dynamodb, glue) = journaled_moto
    s3.create_bucket(Bucket="journal-lake")
    s3.put_bucket_versioning(Bucket="journal-lake", VersioningConfiguration={"Status": "Enabled"})
    for body in (b"one", b"two"):  # two versions of one key
        s3.put_object(Bucket="journal-lake", Key="raw/orders/a b ü.csv", Body=body)
    s3.copy_object(
        Bucket="journal-lake", Key="copy.csv", CopySource={"Bucket": "journal-lake", "Key": "raw/orders/a b ü.csv"}
    )
    upload = s3.create_multipart_upload(Bucket="journal-lake", Key="big.parquet")["UploadId"]
    parts = [
        {
            "PartNumber": n,
            "ETag": s3.upload_part(
                Bucket="journal-lake",
                Key="big.parquet",
                UploadId=upload,
                PartNumber=n,
                Body=bytes([n]) * (5 * 2**20 if n == 1 else 10),
            )["ETag"],
        }
        for n in (1, 2)
    ]
    s3.complete_multipart_upload(
        Bucket="journal-lake", Key="big.parquet", UploadId=upload, MultipartUpload={"Parts": parts}
    )
    s3.put_object(Bucket="journal-lake", Key="gone.csv", Body=b"x")
    s3.delete_object(Bucket="journal-lake", Key="gone.csv")  # a delete marker
    s3.put_object(Bucket="journal-lake", Key="gone-too.csv", Body=b"y")
    s3.delete_objects(Bucket="journal-lake", Delete={"Objects": [{"Key": "gone-too.csv"}, {"Key": "copy.csv"}]})
    dynamodb.create_table(
        TableName="journal-ledger",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(TableName="journal-ledger", Item={"pk": {"S": "file#1"}, "n": {"N": "1"}})
    dynamodb.update_item(
        TableName="journal-ledger",
        Key={"pk": {"S": "file#1"}},
        UpdateExpression="ADD n :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )
    with pytest.raises(dynamodb.exceptions.ConditionalCheckFailedException):  # refused: nothing to journal
        dynamodb.put_item(
            TableName="journal-ledger", Item={"pk": {"S": "file#1"}}, ConditionExpression="attribute_not_exists(pk)"
        )
    glue.create_database(DatabaseInput={"Name": "journal_db"})
    glue.create_table(DatabaseName="journal_db", TableInput={"Name": "processed_orders"})
    before = _state(s3, dynamodb, glue)
    assert len(before["versions"]) == 6 and len(before["markers"]) == 3 and before["items"]

    for backends in _backends().values():  # the kill: moto's memory is gone, the journal is on disk
        backends.reset()
    found = records(tmp_path, 0)
    assert journal_module.replay(app, found) == []
    assert _state(s3, dynamodb, glue) == before


def test_a_record_cut_short_by_a_kill_is_left_out(tmp_path):
    journal = Journal(tmp_path, 3)
    journal.append({"n": 1})
    journal.append({"n": 2})
    journal.close()
    path = next(tmp_path.glob("journal-*.log"))
    whole = path.read_bytes()
    path.write_bytes(whole[:-3])  # the kill came mid-append: that request was never answered
    assert records(tmp_path, 0) == [{"n": 1}]
    assert records(tmp_path, 4) == []  # a snapshot holds generation 3 and before
    later = Journal(tmp_path, 4)  # a restarted stage writes a new file, never after the torn record
    later.append({"n": 3})
    assert records(tmp_path, 0) == [{"n": 1}, {"n": 3}]
