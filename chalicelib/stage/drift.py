"""The nightly drift report: the setup a stage declares, read back from the live account, property by property.

Desired state: the configuration published in the lake bucket (lakehouse.toml and the contracts), the
lifecycle definitions, and what the last deployment recorded (its state machine definition and config
fingerprint); the documents provisioning writes (`deploy.provision`) are the same objects it compares
against. Each finding names the resource, the property, what was expected, what is there, a suggested fix,
and since which deployment it has moved. The report goes to `reports/drift/` as JSON and Markdown; a summary
goes to the alerts topic only when something drifted.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chalicelib.aws import Clients, account_id
from chalicelib.config import Settings, Stage
from chalicelib.lifecycle.rules import fingerprint
from chalicelib.names import crawler_name
from chalicelib.stage import declared, resources
from chalicelib.stage.catalog import declared_tables
from chalicelib.stage.resources import Resource, answer

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client
    from types_boto3_sqs import SQSClient

log = logging.getLogger(__name__)
REPORTS = "drift/"  # under the reports zone


@dataclass
class Finding:
    resource: str
    property: str
    expected: Any
    actual: Any
    fix: str


@dataclass
class DriftReport:
    stage: str
    time: str
    findings: list[Finding]
    checked: list[str]  # the resources read back
    deployment: dict[str, Any] | None  # the last successful deployment the live state should match
    keys: list[str] = field(default_factory=list)  # where the report was written

    @property
    def drifted(self) -> bool:
        """Whether anything differs from the declared setup."""
        return bool(self.findings)

    def as_dict(self) -> dict[str, Any]:
        """The report as its JSON document."""
        data = asdict(self)
        data["drifted"] = self.drifted
        return data

    def since(self) -> str:
        """The deployment the findings are measured against, for people."""
        d = self.deployment
        if not d:
            return "no successful deployment is recorded"
        return f"since deployment {d['time']} by {d['who']} (config {d['config_fingerprint'][:12]})"

    def summary(self) -> str:
        """A few lines for the alert: each finding and its fix."""
        head = f"Drift on stage {self.stage} at {self.time}: {len(self.findings)} findings, {self.since()}."
        lines = [
            f"- {f.resource} {f.property}: expected {_short(f.expected)}, found {_short(f.actual)}"
            for f in self.findings
        ]
        return "\n".join([head, *lines[:40], *(["- ..."] if len(lines) > 40 else [])])

    def markdown(self) -> str:
        """The report as a Markdown table."""
        out = [
            f"# Drift report: stage `{self.stage}`",
            "",
            f"{self.time}. {len(self.checked)} resources checked; "
            + (f"**{len(self.findings)} findings**, {self.since()}." if self.findings else "no drift."),
            "",
        ]
        if self.findings:
            out += ["| resource | property | expected | actual | suggested fix |", "|---|---|---|---|---|"]
            out += [
                f"| `{f.resource}` | {f.property} | {_md(f.expected)} | {_md(f.actual)} | {_md(f.fix)} |"
                for f in self.findings
            ]
        out += ["", "Checked: " + ", ".join(f"`{r}`" for r in self.checked), ""]
        return "\n".join(out)


def _short(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _md(value: Any) -> str:
    return _short(value, 300).replace("|", "\\|").replace("\n", " ")


class DriftCheck:
    """Reads a stage's resources back and compares them with what it declares."""

    def __init__(self, settings: Settings, stage: Stage, clients: Clients, sync: Any, sqs: SQSClient) -> None:
        self.settings, self.stage, self.c, self.sync, self.sqs = settings, stage, clients, sync, sqs
        self.findings: list[Finding] = []
        self.checked: list[str] = []
        self.provision_fix = f"lakehouse deploy --stage {stage.name}"

    @classmethod
    def for_stage(cls, settings: Settings, stage: Stage) -> DriftCheck:
        from chalicelib.aws import ClientSettings, client
        from chalicelib.lifecycle.sync import LifecycleSync

        clients = Clients.for_stage(stage)
        return cls(
            settings,
            stage,
            clients,
            LifecycleSync.for_stage(settings, stage),
            client("sqs", ClientSettings.for_stage(stage)),
        )

    def differs(self, resource: str, prop: str, expected: Any, actual: Any, fix: str | None = None) -> None:
        """Record a finding when the live value is not the declared one."""
        if expected != actual:
            self.findings.append(Finding(resource, prop, expected, actual, fix or self.provision_fix))

    def run(
        self, deployment: dict[str, Any] | None, now: datetime | None = None, lifecycle: bool = True
    ) -> DriftReport:
        """Every check against the live stage, the state machine against `deployment`'s definition."""
        checks = [self.roles, self.declared_resources, self.glue_jobs, self.catalog, self.state_machine]
        for check in checks + ([self.lifecycle] if lifecycle else []):
            self._checking(check.__name__, functools.partial(check, deployment))
        stamp = (now or datetime.now(UTC)).isoformat()
        return DriftReport(self.stage.name, stamp, self.findings, self.checked, deployment)

    def _checking(self, what: str, check: Callable[[], Any]) -> None:
        """Run one check; one unreadable resource is itself a finding, and the rest is still checked."""
        try:
            check()
        except Exception as exc:
            log.exception("drift check %s failed", what)
            self.findings.append(
                Finding(what, "readable", "readable", f"{type(exc).__name__}: {exc}", "check permissions")
            )

    def declared_resources(self, _: Any) -> None:
        """Every entry of the stage's resource table (chalicelib.stage.resources), each as its kind compares it."""
        for resource in resources.stage_resources(self.settings, self.stage, account_id(self.c.sts)):
            self.checked.append(resource.label)
            self._checking(resource.label, functools.partial(self._compare, resource))

    def _compare(self, resource: Resource) -> None:
        for d in resource.compare(self.c):
            self.differs(resource.label, d.property, d.expected, d.actual, d.fix)

    def roles(self, _: Any) -> None:
        """The Glue and pipeline roles: trust and inline policy."""
        from chalicelib.stage.roles import declared_roles, live_role

        for name, (trust, policy) in declared_roles(self.settings, self.stage, account_id(self.c.sts)).items():
            resource = f"iam role {name}"
            self.checked.append(resource)
            have_trust, have_policy = live_role(self.c.iam, name)
            if have_trust is None:
                self.differs(resource, "exists", True, False)
                continue
            self.differs(resource, "trust policy", trust, have_trust)
            self.differs(resource, "inline policy", policy, have_policy)

    def glue_jobs(self, _: Any) -> None:
        """Every Glue job exists as declared."""
        account = account_id(self.c.sts)
        for name, glue_job in declared.glue_jobs(self.settings, self.stage).items():
            resource = f"glue job {name}"
            self.checked.append(resource)
            job = answer(lambda n=name: self.c.glue.get_job(JobName=n)["Job"], ("EntityNotFoundException",))
            if job is None:
                self.differs(resource, "exists", True, False)
                continue
            for key, value in declared.job_definition(self.stage, glue_job, account).items():
                self.differs(resource, key, value, job.get(key))

    def lifecycle(self, _: Any) -> None:
        """The buckets' lifecycle rules against the pushed definitions (a sync's dry run)."""
        report = self.sync.run(dry_run=True)
        fix = f"lakehouse lifecycle sync --stage {self.stage.name}"
        for change in report.changes:
            self.checked.append(f"s3://{change.bucket} lifecycle")
            if change.action in ("put", "delete"):  # the rules that differ, as defined and as they are
                defined, live = {fingerprint(r) for r in change.after}, {fingerprint(r) for r in change.before}
                self.findings.append(
                    Finding(
                        f"s3://{change.bucket}",
                        "lifecycle rules",
                        [r for r in change.after if fingerprint(r) not in live],
                        [r for r in change.before if fingerprint(r) not in defined],
                        f"{fix} (adds {change.added or 'none'}, removes {change.removed or 'none'})",
                    )
                )
        for where, problem in report.problems.items():
            self.findings.append(
                Finding(
                    f"lifecycle definition {where}",
                    "valid",
                    "valid",
                    problem,
                    "fix the definition, then lakehouse lifecycle push",
                )
            )

    def catalog(self, _: Any) -> None:
        """The Glue database, the crawlers and the declared tables."""
        glue, db = self.c.glue, self.stage.glue_database
        self.checked.append(f"glue database {db}")
        if answer(lambda: glue.get_database(Name=db), ("EntityNotFoundException",)) is None:
            self.differs(f"glue database {db}", "exists", True, False)
            return
        account = account_id(self.c.sts)
        for dataset in self.settings.datasets:
            name = crawler_name(self.stage, dataset)
            self.checked.append(f"glue crawler {name}")
            crawler = answer(lambda name=name: glue.get_crawler(Name=name)["Crawler"], ("EntityNotFoundException",))
            if crawler is None:
                self.differs(f"glue crawler {name}", "exists", True, False)
                continue
            want = declared.comparable_crawler(declared.crawler_definition(self.settings, self.stage, dataset, account))
            have = declared.comparable_crawler(crawler)
            for key, value in want.items():
                self.differs(f"glue crawler {name}", key, value, have[key])
        for table in declared_tables(self.settings, self.stage, self.c.s3):
            resource = f"glue table {db}.{table['Name']}"
            self.checked.append(resource)
            have = answer(
                lambda t=table: glue.get_table(DatabaseName=db, Name=t["Name"])["Table"], ("EntityNotFoundException",)
            )
            fix = "runs again with the next pipeline run (RefreshTables), or lakehouse run"
            if have is None:
                self.differs(resource, "exists", True, False, fix)
                continue
            for key in ("table_type", "projection.enabled", "storage.location.template"):
                if key in table["Parameters"]:
                    self.differs(resource, key, table["Parameters"][key], have.get("Parameters", {}).get(key), fix)
            self.differs(
                resource,
                "location",
                table["StorageDescriptor"]["Location"],
                have.get("StorageDescriptor", {}).get("Location"),
                fix,
            )

    def state_machine(self, deployment: dict[str, Any] | None) -> None:
        """The state machine exists and is the definition the last deployment recorded."""
        arn = self.stage.state_machine_arn(account_id(self.c.sts))
        resource = f"state machine {self.stage.state_machine}"
        self.checked.append(resource)
        sfn = self.c.stepfunctions
        live = answer(lambda: sfn.describe_state_machine(stateMachineArn=arn), ("StateMachineDoesNotExist",))
        if live is None:
            self.differs(resource, "exists", True, False)
            return
        if deployment and deployment.get("state_machine_definition"):
            wanted, have = deployment["state_machine_definition"], json.loads(live["definition"])
            if wanted != have:
                changed = sorted(
                    s
                    for s in set(wanted["States"]) | set(have.get("States", {}))
                    if wanted["States"].get(s) != have.get("States", {}).get(s)
                )
                self.differs(resource, "definition (states that differ)", changed, "changed outside a deployment")


def latest_deployment(s3: S3Client, settings: Settings, stage: Stage) -> dict[str, Any] | None:
    """The newest deployment that succeeded, or None."""
    return next((d for d in declared.deployments(s3, settings, stage) if d["result"] == "succeeded"), None)


def run_report(
    settings: Settings, stage: Stage, check: DriftCheck | None = None, now: datetime | None = None
) -> DriftReport:
    """Check the stage, write the report to reports/drift/ (JSON, Markdown, and latest.json)."""
    check = check or DriftCheck.for_stage(settings, stage)
    s3 = check.c.s3
    report = check.run(latest_deployment(s3, settings, stage), now)
    if report.deployment:  # the report names the deployment; the documents it declared stay in its record
        report.deployment = {k: report.deployment[k] for k in ("time", "who", "config_fingerprint", "result")}
    prefix = f"{settings.zones.reports}{REPORTS}"
    stamp = datetime.fromisoformat(report.time).strftime("%Y%m%dT%H%M%SZ")
    report.keys = [f"{prefix}{stamp}.json", f"{prefix}{stamp}.md", f"{prefix}latest.json"]
    body = json.dumps(report.as_dict(), indent=2, default=str).encode()
    s3.put_object(Bucket=stage.bucket, Key=report.keys[0], Body=body, ContentType="application/json")
    s3.put_object(Bucket=stage.bucket, Key=report.keys[1], Body=report.markdown().encode(), ContentType="text/markdown")
    s3.put_object(Bucket=stage.bucket, Key=report.keys[2], Body=body, ContentType="application/json")
    return report
