"""Bucket lifecycle definitions: TOML files (under the lake's `config/lifecycle/`) -> S3 lifecycle rules.

A definition file declares rules per bucket:

    [[buckets."@lake".rules]]              # "@lake" is the stage's lake bucket; any other key is a bucket name
    id = "archive-to-colder-storage"
    filter = { prefix = "archive/" }      # prefix, tags = {k = "v"}, object_size_greater_than/less_than
    transitions = [{ days = 30, storage_class = "STANDARD_IA" }, { days = 120, storage_class = "GLACIER_IR" }]
    expiration = { days = 730 }           # or date = "2027-01-01", or expired_object_delete_marker = true
    noncurrent_version_transitions = [{ noncurrent_days = 30, storage_class = "GLACIER_IR" }]
    noncurrent_version_expiration = { noncurrent_days = 90, newer_noncurrent_versions = 3 }
    abort_incomplete_multipart_upload_days = 7

`rules = []` for a bucket says it must have no lifecycle configuration at all.

Every rule becomes the S3 API's own shape, normalised (sorted transitions and tags, one filter form), so a
rule read back from S3 and the same rule from TOML have the same fingerprint, whatever the order or
formatting. Validation refuses what S3 would refuse and what is almost certainly a mistake, naming the file,
bucket and rule. Written by hand: no library models S3 lifecycle rules.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, get_args

from chalicelib.config.model import BUCKET_NAME
from chalicelib.config.reader import Where, read, text_of
from chalicelib.errors import ConfigError
from chalicelib.lifecycle.documents import LifecycleRule, StorageClass

LAKE_ALIAS = "@lake"
MAX_RULES = 1000  # S3's limit per bucket
# Storage classes in the order S3 lets objects move ("waterfall"), with the days S3 requires before moving
# there from STANDARD and the days each bills at least (expiring earlier still pays for them).
WATERFALL: tuple[str, ...] = get_args(StorageClass)  # the order S3 lets objects move down
MIN_DAYS = {"STANDARD_IA": 30, "ONEZONE_IA": 30}
MIN_STORAGE_DAYS = {"STANDARD_IA": 30, "ONEZONE_IA": 30, "GLACIER_IR": 90, "GLACIER": 90, "DEEP_ARCHIVE": 180}
_BUCKET = re.compile(BUCKET_NAME)


@dataclass(frozen=True)
class BucketDefinition:
    bucket: str
    rules: tuple[dict[str, Any], ...]  # S3 API shape, normalised
    files: tuple[str, ...] = ()  # the definition files that declare this bucket


@dataclass
class Definitions:
    buckets: dict[str, BucketDefinition] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)  # bucket or file -> why it is left untouched


def fingerprint(rule: Mapping[str, Any]) -> str:
    """One hash of a rule whatever the order or form of its fields."""
    return hashlib.sha256(json.dumps(rule, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def normalise(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A rule in S3's shape, as S3 returns it or as `rule_from_toml` builds it, in one canonical form."""
    out: dict[str, Any] = {"ID": rule.get("ID", ""), "Status": rule.get("Status", "Enabled")}
    flt = dict(rule.get("Filter") or {})
    if "Prefix" in rule and not flt:  # the legacy top-level prefix
        flt = {"Prefix": rule["Prefix"]}
    parts = dict(flt.pop("And", {}) or {})
    parts.update(flt)
    tags = list(parts.pop("Tags", []) or []) + ([parts.pop("Tag")] if "Tag" in parts else [])
    parts = {k: v for k, v in parts.items() if v not in ("", None)}
    if tags:
        parts["Tags"] = sorted(({"Key": t["Key"], "Value": t["Value"]} for t in tags), key=lambda t: t["Key"])
    if len(parts) > 1:
        out["Filter"] = {"And": parts}
    elif "Tags" in parts:
        out["Filter"] = {"Tag": parts["Tags"][0]}
    else:
        out["Filter"] = parts or {"Prefix": ""}
    for key, day_key in (("Transitions", "Days"), ("NoncurrentVersionTransitions", "NoncurrentDays")):
        items = [{k: v for k, v in t.items() if v is not None} for t in rule.get(key) or []]
        if items:
            out[key] = sorted(items, key=lambda t: (t.get(day_key, 0), str(t.get("Date", ""))))
    expiration = {k: v for k, v in (rule.get("Expiration") or {}).items() if v not in (None, False)}
    if expiration:
        out["Expiration"] = expiration
    for key in ("NoncurrentVersionExpiration", "AbortIncompleteMultipartUpload"):
        if rule.get(key):
            out[key] = {k: v for k, v in rule[key].items() if v is not None}
    return out


def rule_from_toml(file: str, bucket: str, index: int, data: Any) -> dict[str, Any]:
    """One TOML rule -> the S3 API's rule, checked: the typed reader checks each key's type, bounds and choices;
    what S3 refuses across keys (and what would bill for nothing) is checked here."""
    where = f'buckets."{bucket}".rules[{index}]'
    if isinstance(data, dict) and isinstance(data.get("id"), str):
        where += f" (id {data['id']!r})"
    r = Where(file, where)
    doc = read(file, data, LifecycleRule, at=where)
    rule: dict[str, Any] = {"ID": doc.id, "Status": doc.status}

    flt = doc.filter
    parts: dict[str, Any] = {}
    if flt.prefix:
        parts["Prefix"] = flt.prefix
    if flt.tags:
        parts["Tags"] = [{"Key": k, "Value": v} for k, v in flt.tags.items()]
    low, high = flt.object_size_greater_than, flt.object_size_less_than
    if low is not None:
        parts["ObjectSizeGreaterThan"] = low
    if high is not None:
        parts["ObjectSizeLessThan"] = high
    if low is not None and high is not None and low >= high:
        raise r.fail("filter.object_size_less_than", high, f"must be above object_size_greater_than = {low}")
    rule["Filter"] = {"And": parts} if parts else {}

    transitions = []
    for i, tr in enumerate(doc.transitions):
        at = f"transitions[{i}]"
        _at_least(r, f"{at}.days", tr.days, MIN_DAYS.get(tr.storage_class, 0))
        if (tr.days is None) == (tr.date is None):
            raise r.fail(at, _given(tr), "needs days or date, not both")
        transitions.append(
            {"Days": tr.days, "StorageClass": tr.storage_class}
            if tr.days is not None
            else {"Date": _date(r, tr.date, f"{at}.date"), "StorageClass": tr.storage_class}
        )
    if transitions:
        rule["Transitions"] = transitions

    expiration = doc.expiration
    if expiration is not None:
        given = _given(expiration)
        if len(given) != 1:
            raise r.fail("expiration", given, "takes exactly one of days, date, expired_object_delete_marker")
        if expiration.days is not None:
            rule["Expiration"] = {"Days": expiration.days}
        elif expiration.date is not None:
            rule["Expiration"] = {"Date": _date(r, expiration.date, "expiration.date")}
        else:
            if expiration.expired_object_delete_marker is not True:
                raise r.fail(
                    "expiration.expired_object_delete_marker",
                    expiration.expired_object_delete_marker,
                    "can only be true",
                )
            if flt.tags:
                raise r.fail(
                    "expiration.expired_object_delete_marker", True, "S3 refuses it in a rule filtered by tags"
                )
            rule["Expiration"] = {"ExpiredObjectDeleteMarker": True}

    nc_transitions = []
    for i, nc in enumerate(doc.noncurrent_version_transitions):
        at = f"noncurrent_version_transitions[{i}]"
        _at_least(r, f"{at}.noncurrent_days", nc.noncurrent_days, MIN_DAYS.get(nc.storage_class, 0))
        nc_transitions.append(
            {
                "NoncurrentDays": nc.noncurrent_days,
                "StorageClass": nc.storage_class,
                "NewerNoncurrentVersions": nc.newer_noncurrent_versions,
            }
        )
    if nc_transitions:
        rule["NoncurrentVersionTransitions"] = nc_transitions
    nc_exp = doc.noncurrent_version_expiration
    if nc_exp is not None:
        rule["NoncurrentVersionExpiration"] = {
            "NoncurrentDays": nc_exp.noncurrent_days,
            "NewerNoncurrentVersions": nc_exp.newer_noncurrent_versions,
        }
    abort = doc.abort_incomplete_multipart_upload_days
    if abort is not None:
        if flt.tags or low is not None or high is not None:
            raise r.fail(
                "abort_incomplete_multipart_upload_days",
                abort,
                "S3 refuses it in a rule filtered by tags or object size",
            )
        rule["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": abort}

    if not any(
        k in rule
        for k in (
            "Transitions",
            "Expiration",
            "NoncurrentVersionTransitions",
            "NoncurrentVersionExpiration",
            "AbortIncompleteMultipartUpload",
        )
    ):
        raise r.fail(
            "",
            doc.id,
            "has no action: give transitions, expiration, noncurrent_version_* or "
            "abort_incomplete_multipart_upload_days",
        )
    _check_order(r, transitions, "Days", "transitions", (rule.get("Expiration") or {}).get("Days"), "expiration.days")
    _check_order(
        r,
        nc_transitions,
        "NoncurrentDays",
        "noncurrent_version_transitions",
        (rule.get("NoncurrentVersionExpiration") or {}).get("NoncurrentDays"),
        "noncurrent_version_expiration.noncurrent_days",
    )
    return normalise(rule)


def _given(doc: Any) -> dict[str, Any]:
    """The keys a document was given (those not left at None), as written."""
    return {k: v for k in doc.__struct_fields__ if (v := getattr(doc, k)) is not None}


def _at_least(r: Where, key: str, days: int | None, minimum: int) -> None:
    """S3's minimum days before a transition to some classes (30 for the IA classes)."""
    if days is not None and days < minimum:
        raise r.fail(key, days, f"must be a whole number of days, at least {minimum}")


def _date(r: Where, value: Any, key: str) -> str:
    try:
        day = value if isinstance(value, date) else date.fromisoformat(str(value))
    except ValueError:
        raise r.fail(key, value, "must be a date, e.g. 2027-01-01 (S3 acts at midnight UTC)") from None
    return f"{day.isoformat()}T00:00:00Z"


def _check_order(
    r: Where, transitions: list[dict[str, Any]], key: str, where: str, expires: int | None, exp_where: str
) -> None:
    """Transitions go down the waterfall, one class each, IA classes stay 30 days before moving on, nothing
    moves on or after the day it expires, and nothing expires before its class's minimum billed days."""
    dated = [t for t in transitions if t.get(key) is not None]
    seen: set[str] = set()
    previous: dict[str, Any] | None = None
    for t in sorted(dated, key=lambda t: t[key]):
        cls = t["StorageClass"]
        if cls in seen:
            raise r.fail(where, cls, f"two transitions to {cls}")
        seen.add(cls)
        if previous is not None:
            if WATERFALL.index(cls) <= WATERFALL.index(previous["StorageClass"]):
                raise r.fail(where, cls, f"S3 cannot move objects from {previous['StorageClass']} to {cls}")
            if previous["StorageClass"] in MIN_DAYS and t[key] - previous[key] < 30:
                raise r.fail(
                    where, t[key], f"objects must stay 30 days in {previous['StorageClass']} before moving to {cls}"
                )
        if expires is not None and t[key] >= expires:
            raise r.fail(where, t[key], f"moves objects to {cls} on or after they expire ({exp_where} = {expires})")
        previous = t
    if previous is not None and expires is not None:
        billed = MIN_STORAGE_DAYS.get(previous["StorageClass"], 0)
        if expires - previous[key] < billed:
            raise r.fail(
                exp_where,
                expires,
                f"expires {expires - previous[key]} days after moving to {previous['StorageClass']}, "
                f"which bills {billed} days at least",
            )


def definition_text(body: bytes) -> str | bytes:
    """A definition file's text, or its bytes when it is not UTF-8 (parse_file then names the file)."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body


def parse_file(file: str, text: str | bytes, lake_bucket: str) -> dict[str, list[dict[str, Any]]]:
    """bucket -> its rules, from one definition file; raises ConfigError on the first problem."""
    try:
        data = tomllib.loads(text_of(file, text))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, "(syntax)", None, f"not valid TOML: {exc}") from exc
    if set(data) - {"buckets"} or not isinstance(data.get("buckets"), dict):
        raise ConfigError(file, "(top level)", sorted(data), "a definition file holds [buckets.<name>] tables only")
    out = {}
    for key, spec in data["buckets"].items():
        bucket = lake_bucket if key == LAKE_ALIAS else key
        if not _BUCKET.fullmatch(bucket):
            raise ConfigError(file, f'buckets."{key}"', key, "not a bucket name (or @lake for the stage's lake bucket)")
        if not isinstance(spec, dict) or set(spec) != {"rules"} or not isinstance(spec["rules"], list):
            raise ConfigError(file, f'buckets."{key}"', spec, "needs `rules`: a list of rules, or [] for no lifecycle")
        out[bucket] = [rule_from_toml(file, key, i, rule) for i, rule in enumerate(spec["rules"])]
    return out


def parse_definitions(files: Mapping[str, str | bytes], lake_bucket: str) -> Definitions:
    """Every definition file, merged per bucket. A file that does not parse or validate leaves each bucket it
    names untouched (even where another file names it too); the problem is reported, never papered over."""
    result, bad = Definitions(), set()
    per_bucket: dict[str, list[tuple[str, list[dict[str, Any]]]]] = {}
    for file in sorted(files):
        try:
            parsed = parse_file(file, files[file], lake_bucket)
        except ConfigError as exc:
            result.problems[file] = str(exc)
            bad |= _named_buckets(files[file], lake_bucket)
            continue
        for bucket, bucket_rules in parsed.items():
            per_bucket.setdefault(bucket, []).append((file, bucket_rules))
    for bucket in sorted((bad | set(per_bucket)) if "*" in bad else bad):
        if bucket != "*":
            result.problems[bucket] = "left untouched: a definition file naming it has a problem"
    for bucket, entries in sorted(per_bucket.items()):
        if bucket in result.problems or "*" in bad:
            continue
        rules: list[dict[str, Any]] = []
        ids: dict[str, str] = {}
        for file, file_rules in entries:
            for rule in file_rules:
                if rule["ID"] in ids:
                    result.problems[bucket] = (
                        f"left untouched: rule id {rule['ID']!r} is defined twice ({ids[rule['ID']]} and {file})"
                    )
                    break
                ids[rule["ID"]] = file
                rules.append(rule)
        if bucket in result.problems:
            continue
        if len(rules) > MAX_RULES:
            result.problems[bucket] = f"left untouched: {len(rules)} rules, S3 allows {MAX_RULES}"
            continue
        result.buckets[bucket] = BucketDefinition(bucket, tuple(rules), tuple(f for f, _ in entries))
    return result


def lake_rules(files: Mapping[str, str | bytes], lake_bucket: str) -> list[dict[str, Any]] | None:
    """The rules the definitions give the lake bucket; None when none do (or a broken file names it)."""
    found = parse_definitions(files, lake_bucket).buckets.get(lake_bucket)
    return list(found.rules) if found else None


def _named_buckets(text: str | bytes, lake_bucket: str) -> set[str]:
    """The buckets a broken file names, as far as it can be read (so none of them is touched)."""
    try:
        data = tomllib.loads(text if isinstance(text, str) else text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {"*"}  # unreadable: it could name any bucket
    names = data.get("buckets", {}) if isinstance(data.get("buckets"), dict) else {}
    return {lake_bucket if k == LAKE_ALIAS else k for k in names}
