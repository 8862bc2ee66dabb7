"""The shape of a lifecycle rule in a definition file, as msgspec Structs for the typed reader
(`chalicelib.config.reader`): each key's type, bounds and choices. What S3 refuses across keys is checked by
`rules.rule_from_toml`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from chalicelib.config.documents import Document

StorageClass = Literal["STANDARD_IA", "INTELLIGENT_TIERING", "ONEZONE_IA", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE"]
Days = Annotated[int, Meta(ge=0)]
AtLeastOne = Annotated[int, Meta(ge=1)]


class Filter(Document, kw_only=True):
    """`filter`: which objects the rule applies to (all of them when empty)."""

    prefix: str = ""
    tags: dict[str, str] = msgspec.field(default_factory=dict)
    object_size_greater_than: Days | None = None
    object_size_less_than: Days | None = None


class Transition(Document, kw_only=True):
    """One of `transitions`: after `days`, or on `date`, objects move to `storage_class`."""

    storage_class: StorageClass
    days: Days | None = None
    date: Any = None  # a TOML date, or a string holding one


class Expiration(Document, kw_only=True):
    """`expiration`: exactly one of days, date, expired_object_delete_marker."""

    days: AtLeastOne | None = None
    date: Any = None
    expired_object_delete_marker: bool | None = None


class NoncurrentTransition(Document, kw_only=True):
    """One of `noncurrent_version_transitions`."""

    storage_class: StorageClass
    noncurrent_days: Days
    newer_noncurrent_versions: AtLeastOne | None = None


class NoncurrentExpiration(Document, kw_only=True):
    """`noncurrent_version_expiration`."""

    noncurrent_days: AtLeastOne
    newer_noncurrent_versions: AtLeastOne | None = None


class LifecycleRule(Document, kw_only=True):
    """One `[[buckets."<name>".rules]]` table."""

    id: Annotated[str, Meta(min_length=1, max_length=255)]
    status: Literal["Enabled", "Disabled"] = "Enabled"
    filter: Filter = msgspec.field(default_factory=Filter)
    transitions: list[Transition] = msgspec.field(default_factory=list)
    expiration: Expiration | None = None
    noncurrent_version_transitions: list[NoncurrentTransition] = msgspec.field(default_factory=list)
    noncurrent_version_expiration: NoncurrentExpiration | None = None
    abort_incomplete_multipart_upload_days: AtLeastOne | None = None
