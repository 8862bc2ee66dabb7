"""Lifecycle definitions and the sync: every validation error, the never-wipe rule, one read and one write per
bucket, dry runs, history and rollback (in-process moto)."""

from __future__ import annotations

from collections import Counter

import pytest
from conftest import SHIPPED_CONFIG

from chalicelib.errors import ConfigError, NotFoundError
from chalicelib.lifecycle.rules import fingerprint, normalise, parse_definitions, parse_file
from chalicelib.lifecycle.sync import LifecycleSync, live_rules

SHIPPED = (SHIPPED_CONFIG / "lifecycle" / "lake.toml").read_text()  # the rules a user deploys
LAKE = "lakehouse-local-lake"


def rule(body: str, bucket: str = "b-one") -> str:
    return f'[[buckets."{bucket}".rules]]\nid = "r1"\n{body}\n'


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        (rule('transitions = [{ days = 10, storage_class = "STANDARD_IA" }]'), "transitions[0].days", "at least 30"),
        (
            rule('noncurrent_version_transitions = [{ noncurrent_days = 5, storage_class = "ONEZONE_IA" }]'),
            "noncurrent_version_transitions[0].noncurrent_days",
            "at least 30",
        ),
        (
            rule('transitions = [{ days = 400, storage_class = "GLACIER" }]\nexpiration = { days = 365 }'),
            "transitions",
            "on or after they expire (expiration.days = 365)",
        ),
        (
            rule('transitions = [{ days = 100, storage_class = "GLACIER" }]\nexpiration = { days = 120 }'),
            "expiration.days",
            "which bills 90 days at least",
        ),
        (
            rule(
                'transitions = [{ days = 30, storage_class = "STANDARD_IA" }, { days = 45, storage_class = "GLACIER" }]'
            ),
            "transitions",
            "must stay 30 days in STANDARD_IA",
        ),
        (
            rule(
                'transitions = [{ days = 0, storage_class = "GLACIER" }, { days = 60, storage_class = "STANDARD_IA" }]'
            ),
            "transitions",
            "cannot move objects from GLACIER to STANDARD_IA",
        ),
        (rule('transitions = [{ days = 0, storage_class = "COLD" }]'), "transitions[0].storage_class", "one of"),
        (rule("expiration = { days = 3, date = 2027-01-01 }"), "expiration", "exactly one of"),
        (rule('expiration = { date = "soon" }'), "expiration.date", "must be a date"),
        (
            rule('filter = { tags = { a = "b" } }\nexpiration = { expired_object_delete_marker = true }'),
            "expiration.expired_object_delete_marker",
            "filtered by tags",
        ),
        (
            rule('filter = { tags = { a = "b" } }\nabort_incomplete_multipart_upload_days = 7'),
            "abort_incomplete_multipart_upload_days",
            "filtered by tags or object size",
        ),
        (rule('filter = { prefix = "x/" }'), "", "has no action"),
        (rule("expiration = { days = 0 }"), "expiration.days", "at least 1"),
        (rule('transitions = { days = 30, storage_class = "GLACIER" }'), "transitions", "must be a list of tables"),
        (rule("expiration = { days = 3 }\nwhen = 1"), "when", "unknown key"),
        (
            rule("expiration = { days = 3 }\nfilter = { object_size_greater_than = 10, object_size_less_than = 5 }"),
            "filter.object_size_less_than",
            "must be above",
        ),
        ('[[buckets."B_ad".rules]]\nid = "r"\nexpiration = { days = 3 }\n', None, "not a bucket name"),
        ('[buckets."b-one"]\nrule = []\n', None, "needs `rules`"),
        ("[buckets\n", None, "not valid TOML"),
    ],
)
def test_a_definition_s3_would_refuse_or_a_likely_mistake_names_file_bucket_and_rule(text, key, problem):
    with pytest.raises(ConfigError) as caught:
        parse_file("defs/lake.toml", text, LAKE)
    message = str(caught.value)
    assert message.startswith("defs/lake.toml: ") and problem in message
    if key is not None:
        assert caught.value.key.startswith("buckets.\"b-one\".rules[0] (id 'r1')") and caught.value.key.endswith(key)


def test_duplicate_rule_ids_and_too_many_rules_leave_the_bucket_untouched():
    twice = rule("expiration = { days = 3 }")
    many = "".join(f'[[buckets."b-two".rules]]\nid = "r{i}"\nexpiration = {{ days = 3 }}\n' for i in range(1001))
    defs = parse_definitions({"a.toml": twice, "b.toml": twice, "c.toml": many}, LAKE)
    assert defs.buckets == {}
    assert defs.problems["b-one"] == "left untouched: rule id 'r1' is defined twice (a.toml and b.toml)"
    assert defs.problems["b-two"] == "left untouched: 1001 rules, S3 allows 1000"


def test_a_rule_has_one_fingerprint_whatever_its_order_or_form():
    a = parse_file(
        "a.toml", rule('filter = { tags = { x = "1", y = "2" }, prefix = "p/" }\nexpiration = { days = 3 }'), LAKE
    )
    b = parse_file("b.toml", rule('expiration={days=3}\nfilter={prefix="p/",tags={y="2",x="1"}}'), LAKE)
    assert fingerprint(a["b-one"][0]) == fingerprint(b["b-one"][0])
    legacy = {
        "ID": "r1",
        "Prefix": "p/",
        "Status": "Enabled",
        "Expiration": {"Days": 3, "ExpiredObjectDeleteMarker": False},
    }
    modern = {"ID": "r1", "Filter": {"Prefix": "p/"}, "Status": "Enabled", "Expiration": {"Days": 3}}
    assert fingerprint(normalise(legacy)) == fingerprint(normalise(modern))


@pytest.fixture
def s3(aws_env):
    import boto3

    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=LAKE)
    client.put_bucket_versioning(Bucket=LAKE, VersioningConfiguration={"Status": "Enabled"})
    return client


def push(s3, files: dict[str, str]) -> None:
    for name, text in files.items():
        s3.put_object(Bucket=LAKE, Key=f"config/lifecycle/{name}", Body=text.encode())


def count_calls(s3) -> Counter:
    calls: Counter = Counter()
    s3.meta.events.register("before-call.s3", lambda model, **_: calls.update([model.name]))
    return calls


def test_the_sync_reads_once_and_writes_once_per_differing_bucket_and_dry_runs_change_nothing(s3):
    for name in ("b-same", "b-differs", "b-unmanaged"):
        s3.create_bucket(Bucket=name)
    same = rule("expiration = { days = 30 }", "b-same")
    s3.put_bucket_lifecycle_configuration(
        Bucket="b-same", LifecycleConfiguration={"Rules": parse_file("x", same, LAKE)["b-same"]}
    )
    differs = rule("expiration = { days = 30 }", "b-differs").replace('"r1"', '"keep"') + (
        '[[buckets."b-differs".rules]]\nid = "new"\nabort_incomplete_multipart_upload_days = 3\n'
    )
    s3.put_bucket_lifecycle_configuration(
        Bucket="b-differs",
        LifecycleConfiguration={
            "Rules": [{"ID": "old", "Filter": {"Prefix": ""}, "Status": "Enabled", "Expiration": {"Days": 9}}]
        },
    )
    push(
        s3,
        {
            "lake.toml": SHIPPED,
            "same.toml": same,
            "differs.toml": differs,
            "ghost.toml": rule("expiration = { days = 1 }", "b-ghost"),
        },
    )
    sync = LifecycleSync(s3, LAKE, "config/", "reports/", workers=4)

    calls = count_calls(s3)
    dry = sync.run()  # a sync is a dry run unless told to apply
    assert {c.bucket: c.action for c in dry.changes} == {LAKE: "put", "b-differs": "put", "b-same": "unchanged"}
    assert (calls["PutBucketLifecycleConfiguration"], calls["PutObject"]) == (0, 0)  # a dry run writes nothing
    assert dry.missing == ["b-ghost"] and live_rules(s3, "b-differs")[0]["ID"] == "old"
    differing = {c.bucket: (c.added, c.removed) for c in dry.changes}["b-differs"]
    assert differing == (["keep", "new"], ["old"])

    calls.clear()
    applied = sync.run(dry_run=False)
    assert calls["GetBucketLifecycleConfiguration"] == 3  # one read per defined, existing bucket
    assert calls["PutBucketLifecycleConfiguration"] == 2  # one write per differing bucket, whatever its rule count
    assert (
        calls["PutObject"] == 3 and calls["DeleteBucketLifecycle"] == 0
    )  # a history document per change + latest.json
    assert [r["ID"] for r in live_rules(s3, "b-differs")] == ["keep", "new"]
    assert live_rules(s3, "b-same") == parse_file("x", same, LAKE)["b-same"]
    assert "b-unmanaged" not in {c.bucket for c in applied.changes}

    calls.clear()
    again = sync.run(dry_run=False)  # what S3 gives back has the definitions' fingerprints: nothing to do
    assert {c.action for c in again.changes} == {"unchanged"} and calls["PutBucketLifecycleConfiguration"] == 0


def test_a_broken_definition_never_wipes_rules_and_only_an_explicit_empty_list_deletes(s3):
    s3.create_bucket(Bucket="b-one")
    s3.create_bucket(Bucket="b-two")
    for bucket in ("b-one", "b-two"):
        s3.put_bucket_lifecycle_configuration(
            Bucket=bucket,
            LifecycleConfiguration={
                "Rules": [{"ID": "x", "Filter": {"Prefix": ""}, "Status": "Enabled", "Expiration": {"Days": 9}}]
            },
        )
    push(s3, {"one.toml": rule("expiration = { days = 0 }", "b-one"), "two.toml": '[buckets."b-two"]\nrules = []\n'})
    report = LifecycleSync(s3, LAKE, "config/", "reports/").run(dry_run=False)
    assert "expiration.days" in report.problems["one.toml"] and "b-one" in report.problems
    assert [r["ID"] for r in live_rules(s3, "b-one")] == ["x"]  # untouched
    assert {c.bucket: c.action for c in report.changes} == {"b-two": "delete"}
    assert live_rules(s3, "b-two") == []

    push(s3, {"one.toml": "[[[", "two.toml": '[buckets."b-two"]\nrules = []\n'})  # unreadable: could name any bucket
    unreadable = LifecycleSync(s3, LAKE, "config/", "reports/").run(dry_run=False)
    assert unreadable.changes == [] and "not valid TOML" in unreadable.problems["one.toml"]


def test_a_definition_that_is_not_utf8_is_one_problem_naming_the_file_and_touches_nothing(s3):
    s3.create_bucket(Bucket="b-two")
    rules = {"Rules": [{"ID": "x", "Filter": {"Prefix": ""}, "Status": "Enabled", "Expiration": {"Days": 9}}]}
    s3.put_bucket_lifecycle_configuration(Bucket="b-two", LifecycleConfiguration=rules)
    latin1 = '# caf\xe9\n[buckets."b-two"]\nrules = []\n'.encode("latin-1")
    s3.put_object(Bucket=LAKE, Key="config/lifecycle/one.toml", Body=latin1)
    push(s3, {"two.toml": '[buckets."b-two"]\nrules = []\n'})
    report = LifecycleSync(s3, LAKE, "config/", "reports/").run(dry_run=False)  # the nightly Lambda alerts these
    assert report.problems["one.toml"] == "one.toml: (encoding) = None: not UTF-8: invalid continuation byte at byte 5"
    assert report.changes == [] and [r["ID"] for r in live_rules(s3, "b-two")] == ["x"]  # could name any bucket


def test_every_change_is_recorded_and_can_be_rolled_back(s3):
    s3.create_bucket(Bucket="b-one")
    original = [{"ID": "x", "Filter": {"Prefix": "tmp/"}, "Status": "Enabled", "Expiration": {"Days": 9}}]
    s3.put_bucket_lifecycle_configuration(Bucket="b-one", LifecycleConfiguration={"Rules": original})
    push(s3, {"one.toml": rule("expiration = { days = 30 }")})
    sync = LifecycleSync(s3, LAKE, "config/", "reports/")
    (change,) = sync.run(dry_run=False, who="tester").changes
    (recorded,) = sync.history("b-one")
    assert recorded["id"] == change.change_id and recorded["who"] == "tester" and recorded["reason"] == "sync"
    assert (recorded["added"], recorded["removed"]) == (["r1"], ["x"])
    assert recorded["before"] == [normalise(original[0])] and list(recorded["definition_files"]) == ["one.toml"]
    assert recorded["definition_files"]["one.toml"]  # the file's version id

    undone = sync.rollback(change.change_id)
    assert undone.action == "put" and live_rules(s3, "b-one") == [normalise(original[0])]
    assert [h["reason"] for h in sync.history("b-one")] == [f"rollback of {change.change_id}", "sync"]
    with pytest.raises(NotFoundError, match="no recorded lifecycle change"):
        sync.rollback("b-one/nope")


def test_s3_throttling_is_absorbed_by_the_clients_retry_mode(s3):
    """S3 answers 503 SlowDown under load; the sync's client (standard retry mode) retries, nothing is lost."""
    import boto3
    from botocore.awsrequest import AWSResponse
    from botocore.config import Config

    class Body:
        def stream(self, **_):
            yield b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"

    left = {"n": 3}

    def slow_down(request, **_):
        if left["n"] > 0:
            left["n"] -= 1
            return AWSResponse(request.url, 503, {}, Body())
        return None

    client = boto3.client("s3", region_name="us-east-1", config=Config(retries={"mode": "standard", "max_attempts": 5}))
    client.meta.events.register("before-send.s3.GetBucketLifecycleConfiguration", slow_down)
    for bucket in ("b-one", "b-two"):
        s3.create_bucket(Bucket=bucket)
    push(s3, {"x.toml": rule("expiration = { days = 3 }", "b-one") + rule("expiration = { days = 3 }", "b-two")})
    report = LifecycleSync(client, LAKE, "config/", "reports/", workers=2).run(dry_run=False)
    assert left["n"] == 0 and report.failed == []
    assert {c.bucket: c.action for c in report.changes} == {"b-one": "put", "b-two": "put"}


def test_the_shipped_rules_really_delete_in_the_versioned_lake_bucket(settings):
    """An expiration or a delete in a versioned bucket only hides an object behind a delete marker: each prefix the
    lakehouse deletes from (VACUUM, curated rewrites, rejected rows, query results) also expires its noncurrent
    versions, and the Delta tables' only after their 30 days of time travel."""
    from lakehouse_etl.delta import RETENTION_DAYS

    rules = parse_file("lake.toml", SHIPPED, LAKE)[LAKE]
    noncurrent = {
        r["Filter"].get("Prefix"): r["NoncurrentVersionExpiration"]["NoncurrentDays"]
        for r in rules
        if "NoncurrentVersionExpiration" in r
    }
    zones = settings.zones
    for prefix in (zones.processed, zones.curated, zones.rejected, zones.athena_results, zones.raw, zones.scratch):
        assert prefix in noncurrent, f"{prefix} keeps its deleted versions for ever"
    assert min(noncurrent[zones.processed], noncurrent[zones.curated]) > RETENTION_DAYS


def test_the_buckets_are_listed_without_the_list_buckets_paginator():
    """Older Lambda runtimes' botocore has no list_buckets paginator: the sync follows ContinuationToken itself."""

    class S3:  # no get_paginator at all
        def list_buckets(self, **kwargs):
            if "ContinuationToken" not in kwargs:
                return {"Buckets": [{"Name": "a"}, {"Name": "b"}], "ContinuationToken": "t1"}
            assert kwargs == {"ContinuationToken": "t1"}
            return {"Buckets": [{"Name": "c"}]}

    assert LifecycleSync(S3(), LAKE, "config/", "reports/").existing_buckets() == {"a", "b", "c"}
