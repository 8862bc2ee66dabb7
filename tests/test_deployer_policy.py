"""The deployer's policy (deploy/deployer-policy.json, README "Deploy to AWS") allows every call `lakehouse deploy`
makes, on its create paths and on its update paths (a changed query, crawler, job or role), and what `lakehouse
smoke` needs on an `iam` stage. Every call is recorded and held against the policy (tests/policy_calls.py)."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace

import boto3
import pytest
from conftest import CONFIG, ROOT
from policy_calls import Places, Recorder, denied

from chalicelib import QUERIES_DIR
from chalicelib.aws import Clients
from chalicelib.config import config_files
from chalicelib.names import crawler_name, process_job
from chalicelib.stage import roles
from deploy import provision
from deploy.iam import ensure_roles

ACCOUNT = "123456789012"  # moto's
DEPLOYER = json.loads((ROOT / "deploy" / "deployer-policy.json").read_text())


def _snake(name: str) -> str:
    """An API field as moto's attribute (`SchemaChangePolicy` -> schema_change_policy)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _moto_gaps(clients: Clients) -> None:
    """UpdateNamedQuery, DeleteNamedQuery, UpdateCrawler and UpdateJob as the API references have them (moto 5.2
    has none):
    a named query's update sets its name, description and text, and has no Database parameter."""
    from botocore.awsrequest import AWSResponse
    from moto.athena.models import athena_backends
    from moto.glue.models import glue_backends

    def serve(model, params, **_):
        region = clients.sts.meta.region_name
        params = json.loads(params["body"] or b"{}")  # the serialized request: both services speak JSON
        queries = athena_backends[ACCOUNT][region].named_queries
        if model.name == "UpdateNamedQuery":
            query = queries[params["NamedQueryId"]]
            query.name, query.description = params["Name"], params.get("Description", "")
            query.query_string = params["QueryString"]
        elif model.name == "DeleteNamedQuery":
            del queries[params["NamedQueryId"]]
        elif model.name == "UpdateCrawler":
            crawler = glue_backends[ACCOUNT][region].crawlers[params.pop("Name")]
            for key, value in params.items():
                setattr(crawler, _snake(key), value)
        elif model.name == "UpdateJob":
            job = glue_backends[ACCOUNT][region].jobs[params["JobName"]]
            for key, value in params["JobUpdate"].items():
                setattr(job, _snake(key), value)
        else:
            return None
        return AWSResponse("", 200, {}, None), {"ResponseMetadata": {"HTTPStatusCode": 200}}

    clients.athena.meta.events.register("before-call.athena.*", serve)
    clients.glue.meta.events.register("before-call.glue.*", serve)


@pytest.fixture
def dev(aws_env, settings):
    """A stage in moto, named as AWS stages are (`lakehouse-<stage>-...`); the local stage's own settings (no TLS-only
    bucket policy, which moto's in-process requests would not satisfy)."""
    settings = settings.for_account(ACCOUNT)
    stage = settings.stage("local")
    clients = Clients.for_stage(stage)
    _moto_gaps(clients)
    return settings, stage, clients


def test_a_database_change_makes_the_named_queries_again_once(dev, tmp_path):
    """UpdateNamedQuery cannot move a query to another database: updated, it differed again on every deploy."""
    settings, stage, clients = dev
    provision.ensure_workgroup(clients.athena, settings, stage)
    provision.ensure_named_queries(clients.athena, stage)
    moved = replace(stage, glue_database=f"{stage.glue_database}_v2")
    total = len(list(QUERIES_DIR.glob("*.sql")))
    assert provision.ensure_named_queries(clients.athena, moved) == f"athena named queries: {total} written of {total}"
    assert provision.ensure_named_queries(clients.athena, moved) == f"athena named queries: 0 written of {total}"
    ids = clients.athena.list_named_queries(WorkGroup=stage.athena_workgroup)["NamedQueryIds"]
    queries = [clients.athena.get_named_query(NamedQueryId=i)["NamedQuery"] for i in ids]
    assert sorted(q["Name"] for q in queries) == sorted(p.stem for p in QUERIES_DIR.glob("*.sql"))  # none twice
    assert {q["Database"] for q in queries} == {moved.glue_database}


def test_deploying_a_stage_and_then_its_changes_needs_only_what_the_deployer_policy_allows(dev, tmp_path):
    settings, stage, clients = dev
    recorder = Recorder(vars(clients).values())
    provision.provision(settings, stage, clients, config_files(CONFIG), progress=lambda _: None)
    from moto.glue.models import glue_backends

    # what changed since: edited by hand, through clients the recorder does not see
    iam = boto3.client("iam", region_name=stage.region)
    glue_backends[ACCOUNT][stage.region].crawlers[crawler_name(stage, "orders")].table_prefix = "old_"
    glue_backends[ACCOUNT][stage.region].jobs[process_job(stage, "orders")].timeout = 5
    other = json.dumps(roles.glue_policy(settings, stage, ACCOUNT, "crawler"))  # another kind's
    iam.put_role_policy(RoleName=roles.role_name(stage, "process"), PolicyName=roles.POLICY_NAME, PolicyDocument=other)
    queries = tmp_path / "queries"
    shutil.copytree(QUERIES_DIR, queries)
    changed = sorted(queries.glob("*.sql"))[0]
    changed.write_text(changed.read_text() + "\n-- changed\n")

    ensure_roles(clients.iam, settings, stage, ACCOUNT)
    provision.ensure_glue_jobs(clients.glue, clients.s3, clients.sts, settings, stage, ROOT)
    provision.ensure_catalog(clients.glue, clients.sts, settings, stage)
    provision.ensure_named_queries(clients.athena, stage, queries)  # a changed .sql file
    provision.ensure_named_queries(clients.athena, replace(stage, glue_database=f"{stage.glue_database}_v2"), queries)

    done = recorder.operations()
    created = {"iam:CreateRole", "glue:CreateJob", "glue:CreateCrawler", "athena:CreateNamedQuery"}
    updated = {"iam:PutRolePolicy", "glue:UpdateJob", "glue:UpdateCrawler", "athena:UpdateNamedQuery"}
    assert created | updated | {"athena:DeleteNamedQuery"} <= done
    assert denied(DEPLOYER, recorder.calls, Places(stage.region, ACCOUNT, stage.athena_workgroup)) == []


def test_the_deployer_may_do_what_smoke_does_on_an_iam_stage():
    """`lakehouse smoke` signs its GET of the API's /status (execute-api:Invoke on an `iam` stage) and its forced
    failure publishes to the stage's alerts topic."""
    from moto.iam.access_control import IAMPolicy, PermissionResult

    evaluator = IAMPolicy(json.dumps(DEPLOYER))
    for action, resource in (
        ("execute-api:Invoke", "arn:aws:execute-api:us-east-1:111122223333:a1b2c3d4e5/api/GET/status"),
        ("sns:Publish", "arn:aws:sns:us-east-1:111122223333:lakehouse-dev-alerts"),
    ):
        assert evaluator.is_action_permitted(action, resource) == PermissionResult.PERMITTED, action
