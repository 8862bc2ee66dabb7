"""Where the tables live and how delta-rs reaches them (same endpoint and credentials as boto3)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from chalicelib.aws import acting
from chalicelib.config import Settings, Stage


def session_credentials() -> dict[str, str]:
    """The job role's credentials as boto3 resolves them, for delta-rs: its own default chain has failed on Glue
    (delta-rs issue 3188), so they are handed over explicitly. They are the session's at the job's start: a job
    outliving them (Glue's role sessions last an hour or more) would need them again."""
    import boto3

    found = boto3.Session().get_credentials()
    frozen = found.get_frozen_credentials() if found is not None else None
    if frozen is None or frozen.access_key is None or frozen.secret_key is None:
        return {}
    options = {"AWS_ACCESS_KEY_ID": frozen.access_key, "AWS_SECRET_ACCESS_KEY": frozen.secret_key}
    if frozen.token:
        options["AWS_SESSION_TOKEN"] = frozen.token
    return options


@dataclass(frozen=True)
class Lake:
    """Table locations under one root: `s3://<bucket>` on a stage, a directory in some tests."""

    root: str
    settings: Settings
    storage_options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_stage(cls, settings: Settings, stage: Stage) -> Lake:
        options = {"AWS_REGION": stage.region}
        endpoint = os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:  # the local stage: plain HTTP on loopback, credentials from the environment ...
            options.update(AWS_ENDPOINT_URL=endpoint, AWS_ALLOW_HTTP="true")
            for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
                if os.environ.get(name):
                    options[name] = os.environ[name]
            role = acting()  # ... or a local Lambda's role (the quality gate's DuckDB reads as its Lambda, as Athena)
            if role is not None:
                options.pop("AWS_SESSION_TOKEN", None)
                options.update(AWS_ACCESS_KEY_ID=role.access_key_id, AWS_SECRET_ACCESS_KEY=role.secret_access_key)
                options.update({"AWS_SESSION_TOKEN": role.session_token} if role.session_token else {})
        else:
            options.update(session_credentials())
        return cls(f"s3://{stage.bucket}", settings, options)

    def processed(self, dataset: str) -> str:
        return f"{self.root}/{self.settings.zones.processed}{dataset}"

    def curated(self, table: str) -> str:
        return f"{self.root}/{self.settings.zones.curated}{table}"

    def rejected_rows(self, dataset: str, batch: int) -> str:
        return self.settings.zones.rejected_rows(dataset, batch)

    def rolled_back_mark(self, dataset: str, batch: int) -> str:
        return self.settings.zones.rolled_back_mark(dataset, batch)
