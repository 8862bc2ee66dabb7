"""`lakehouse deploy`: the IAM roles with least-privilege policies, access logging, the API key of an api_key
stage, and `--plan`, which changes nothing and lists exactly what a deployment would change (moto)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import CONFIG, ROOT

import app
from chalicelib import names
from chalicelib.aws import Clients
from chalicelib.config import config_files, parse_settings
from chalicelib.errors import ConfigError, DeploymentError
from chalicelib.stage import roles as declared_roles
from deploy import provision
from deploy.plan import plan


def statements(policy):
    return policy["Statement"]


def _wildcards(policy) -> list[str]:
    """Statements allowing a whole service (or everything) on every resource."""
    bad = []
    for st in statements(policy):
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        if any(a == "*" or a.endswith(":*") for a in actions) and "*" in resources:
            bad.append(st.get("Sid", "?"))
    return bad


def test_each_glue_role_may_write_every_object_its_jobs_write(settings):
    """The keys each kind of job writes, held against its kind's policy: a Spark job stages its batch under the
    scratch zone, a single-node job writes its table and rejected rows, the run's job curated/ too."""
    from fnmatch import fnmatchcase

    stage = settings.stage("dev")
    zones, lake = settings.zones, f"arn:aws:s3:::{stage.bucket}"
    staged = f"{zones.spark_batch('orders', 7)}/part-00000.snappy.parquet"
    table = f"{zones.processed}orders/_delta_log/00000000000000000001.json"
    curated = f"{zones.curated}customer_summary/part-0.parquet"
    writes = {
        "process": [zones.rejected_rows("orders", 7), table],
        "spark": [staged, zones.rejected_rows("orders", 7), table],
        "run": [zones.rejected_rows("orders", 7), zones.rolled_back_mark("orders", 7), table, curated],
        "housekeeping": [table, curated],
    }
    for kind, keys in writes.items():
        policy = declared_roles.glue_policy(settings, stage, "111122223333", kind)

        def allowed(action, key, policy=policy):
            resources = [r for st in statements(policy) if action in st["Action"] for r in st["Resource"]]
            return any(fnmatchcase(f"{lake}/{key}", r) for r in resources)

        for key in keys:
            assert allowed("s3:PutObject", key) and allowed("s3:GetObject", key), (kind, key)
        assert not allowed("s3:PutObject", f"{zones.archive}x"), kind  # archive/ is the archiver's
        assert allowed("s3:PutObject", curated) == (kind in ("run", "housekeeping")), kind
        assert allowed("s3:PutObject", staged) == (kind == "spark"), kind
        assert not allowed("s3:DeleteObject", zones.rejected_rows("orders", 7)), kind  # nothing of theirs deletes there


@pytest.mark.parametrize("stage_name", ["dev", "prod"])
def test_every_policy_names_its_actions_and_the_stages_own_resources(settings, stage_name):
    stage = settings.stage(stage_name)
    for name, (trust, policy) in declared_roles.declared_roles(settings, stage, "111122223333").items():
        assert _wildcards(policy) == [], name
        guard = {"StringEquals": {"aws:SourceAccount": "111122223333"}}
        assert trust["Statement"][0].get("Condition") == (None if name != stage.pipeline_role else guard), name
        for st in statements(policy):
            for resource in st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]:
                scoped = stage_name in resource or "/aws-glue/" in resource or resource.endswith(":catalog")
                assert scoped or (resource == "*" and "Condition" in st), (name, st["Sid"], resource)
    pipeline = declared_roles.pipeline_policy(settings, stage, "111122223333")
    jobs = next(st for st in statements(pipeline) if st["Sid"] == "GlueJobsSync")["Resource"]
    # each processing job, the master merge and the job that runs a small run whole, by name
    assert sorted(jobs) == sorted(
        f"arn:aws:glue:{stage.region}:111122223333:job/{n}"
        for n in [
            *(names.process_job(stage, d) for d in settings.datasets),
            *(names.spark_job(stage, d) for d in settings.datasets),
            names.job_name(stage, "master_merge.py"),
            names.run_job(stage),
        ]
    )


def test_deploy_creates_the_roles_and_access_logging_and_a_second_run_changes_nothing(provisioned, settings, stage):
    roles = {r["RoleName"]: r for r in provisioned.iam.list_roles()["Roles"]}
    kinds = ("process", "spark", "run", "housekeeping", "crawler")
    assert set(roles) == {stage.pipeline_role, *(f"{stage.glue_role}-{kind}" for kind in kinds)}  # a role per kind
    for kind in kinds:
        glue_trust, glue_policy = declared_roles.live_role(provisioned.iam, declared_roles.role_name(stage, kind))
        assert glue_trust["Statement"][0]["Principal"] == {"Service": "glue.amazonaws.com"}
        assert glue_policy == declared_roles.glue_policy(settings, stage, "123456789012", kind)
    jobs = {j["Name"]: j["Role"].rsplit("/", 1)[-1] for j in provisioned.glue.get_jobs()["Jobs"]}
    assert jobs[names.process_job(stage, "orders")] == f"{stage.glue_role}-process"
    assert jobs[names.job_name(stage, "master_merge.py")] == jobs[names.run_job(stage)] == f"{stage.glue_role}-run"
    crawler = provisioned.glue.get_crawler(Name=names.crawler_name(stage, "orders"))["Crawler"]
    assert crawler["Role"].rsplit("/", 1)[-1] == f"{stage.glue_role}-crawler"
    logging_status = provisioned.s3.get_bucket_logging(Bucket=stage.bucket)["LoggingEnabled"]
    assert logging_status == {"TargetBucket": stage.log_bucket, "TargetPrefix": "lake/"}
    (retention,) = provisioned.s3.get_bucket_lifecycle_configuration(Bucket=stage.log_bucket)["Rules"]
    assert retention["Expiration"] == {"Days": settings.limits.access_log_days}
    assert plan(settings, stage, provisioned, config_files(CONFIG)) == []
    steps = provision.provision(settings, stage, provisioned, config_files(CONFIG), progress=lambda _: None)
    assert steps[0] == "iam roles: up to date"


def test_the_plan_changes_nothing_and_lists_what_deploy_would_change(provisioned, settings, stage):
    c = provisioned
    c.s3.put_bucket_versioning(Bucket=stage.bucket, VersioningConfiguration={"Status": "Suspended"})
    policy = declared_roles.glue_policy(settings, stage, "123456789012", "process")
    policy["Statement"].append({"Sid": "Extra", "Effect": "Allow", "Action": "s3:*", "Resource": "*"})
    process_role = declared_roles.role_name(stage, "process")
    c.iam.put_role_policy(
        RoleName=process_role, PolicyName=declared_roles.POLICY_NAME, PolicyDocument=json.dumps(policy)
    )
    job = names.job_name(stage, "process_orders.py")
    c.glue.delete_job(JobName=job)
    c.sns.delete_topic(TopicArn=stage.topic_arn(stage.alerts_topic, "123456789012"))
    c.s3.delete_bucket_lifecycle(Bucket=stage.log_bucket)  # access logs would be kept forever
    files = dict(config_files(CONFIG))
    files["datasets/orders.toml"] += "\n# a local edit\n"

    found = {(f.resource, f.property): f for f in plan(settings, stage, c, files)}
    assert set(found) == {
        (f"s3://{stage.bucket}", "versioning"),
        (f"iam role {process_role}", "inline policy"),
        (f"glue job {job}", "exists"),
        (f"sns {stage.alerts_topic}", "exists"),
        (f"s3://{stage.log_bucket}", "log retention"),
        (f"s3://{stage.bucket}/config/datasets/orders.toml", "content"),
    }
    assert found[(f"s3://{stage.bucket}", "versioning")].actual == "Suspended"  # the plan changed nothing
    assert c.s3.get_bucket_versioning(Bucket=stage.bucket)["Status"] == "Suspended"
    provision.provision(settings, stage, c, files, progress=lambda _: None)
    assert plan(settings, stage, c, files) == []


def test_on_an_empty_account_the_plan_lists_every_resource_and_creates_none(aws_env, settings):
    settings = settings.for_account("123456789012")
    stage = settings.stage("dev")
    c = Clients.for_stage(stage)
    found = {(f.resource, f.property) for f in plan(settings, stage, c, config_files(CONFIG))}
    for resource in (
        f"iam role {stage.glue_role}-process",
        f"iam role {stage.glue_role}-crawler",
        f"iam role {stage.pipeline_role}",
        f"s3://{stage.bucket}",
        f"dynamodb {stage.ledger_table}",
        f"sqs {stage.ingest_dlq}",
        f"glue database {stage.glue_database}",
        f"athena workgroup {stage.athena_workgroup}",
        f"state machine {stage.state_machine}",
    ):
        assert (resource, "exists") in found
    assert (f"s3://{stage.bucket}/config/lakehouse.toml", "content") in found
    assert c.s3.list_buckets()["Buckets"] == [] and c.iam.list_roles()["Roles"] == []


def _rest_api(apigateway) -> str:
    """An API with the app's name, deployed to Chalice's `api` stage, as `chalice deploy` makes one per stage."""
    api = apigateway.create_rest_api(name="serverless-lakehouse")["id"]
    root = apigateway.get_resources(restApiId=api)["items"][0]["id"]
    apigateway.put_method(restApiId=api, resourceId=root, httpMethod="GET", authorizationType="NONE")
    apigateway.put_integration(restApiId=api, resourceId=root, httpMethod="GET", type="MOCK")
    apigateway.create_deployment(restApiId=api, stageName="api")
    return api


def _chalice_record(project: Path, stage: str, api: str) -> None:
    """`.chalice/deployed/<stage>.json` as Chalice writes it after a deploy (its resources, the API among them)."""
    (project / ".chalice" / "deployed").mkdir(parents=True, exist_ok=True)
    resources = [
        {"name": "api_handler", "resource_type": "lambda_function", "lambda_arn": "arn:aws:lambda:..."},
        {"name": "rest_api", "resource_type": "rest_api", "rest_api_id": api, "rest_api_url": f"https://{api}/api/"},
    ]
    record = {"resources": resources, "schema_version": "2.0", "backend": "api"}
    (project / ".chalice" / "deployed" / f"{stage}.json").write_text(json.dumps(record))


def _key_too(monkeypatch, stage_name: str = "dev") -> None:
    """The stage signs with IAM and has an API key as well, for its usage plan's throttling."""
    auth = {stage_name: "iam+api_key"}
    monkeypatch.setattr(provision, "chalice_stage_env", lambda s: {"LAKEHOUSE_API_AUTH": auth.get(s, "iam")})


def test_an_iam_stage_with_a_key_gets_a_key_bound_to_its_own_deployed_api(aws_env, settings, tmp_path, monkeypatch):
    _key_too(monkeypatch)
    stage = settings.for_account("123456789012").stage("dev")
    c = Clients.for_stage(stage)
    assert "no API yet" in provision.ensure_api_key(c.apigateway, stage, tmp_path)
    # prod's API, made first and named as dev's: only Chalice's record of dev's deploy tells them apart
    prod_api, dev_api = _rest_api(c.apigateway), _rest_api(c.apigateway)
    _chalice_record(tmp_path, "prod", prod_api)
    assert "no API yet" in provision.ensure_api_key(c.apigateway, stage, tmp_path)
    _chalice_record(tmp_path, "dev", dev_api)
    said = provision.ensure_api_key(c.apigateway, stage, tmp_path)
    assert said == provision.ensure_api_key(c.apigateway, stage, tmp_path)  # a second run makes nothing new
    (key,) = c.apigateway.get_api_keys()["items"]
    (usage_plan,) = c.apigateway.get_usage_plans()["items"]
    assert usage_plan["apiStages"] == [{"apiId": dev_api, "stage": "api"}]
    assert [k["id"] for k in c.apigateway.get_usage_plan_keys(usagePlanId=usage_plan["id"])["items"]] == [key["id"]]
    assert f"--api-key {key['id']} --include-value" in said
    assert "not used (LAKEHOUSE_API_AUTH = iam)" in provision.ensure_api_key(c.apigateway, settings.stage("prod"))


def test_an_api_key_is_not_bound_to_an_api_the_account_does_not_have(aws_env, settings, tmp_path, monkeypatch):
    _key_too(monkeypatch)
    stage = settings.for_account("123456789012").stage("dev")
    _chalice_record(tmp_path, "dev", "abc123gone")  # a record left from a deploy with other credentials
    with pytest.raises(DeploymentError, match="records API abc123gone, which this account and region do not have"):
        provision.ensure_api_key(Clients.for_stage(stage).apigateway, stage, tmp_path)


@pytest.mark.parametrize(
    ("head", "create"),
    [
        ("403", None),  # another account's bucket (or one whose owner is not ExpectedBucketOwner)
        ("404", "BucketAlreadyExists"),  # made elsewhere between our HeadBucket and CreateBucket
    ],
)
def test_a_bucket_name_taken_by_another_account_says_which_setting_picks_another(aws_env, settings, head, create):
    from botocore.stub import Stubber

    stage = settings.for_account("123456789012").stage("dev")
    s3 = Clients.for_stage(stage).s3
    with Stubber(s3) as stub:
        stub.add_client_error(
            "head_bucket",
            service_error_code=head,
            http_status_code=int(head),
            expected_params={"Bucket": stage.bucket, "ExpectedBucketOwner": "123456789012"},
        )
        if create:
            stub.add_client_error("create_bucket", service_error_code=create, http_status_code=409)
        with pytest.raises(DeploymentError) as raised:
            provision.ensure_bucket(s3, stage, "123456789012")
    assert f"bucket name {stage.bucket} is taken" in str(raised.value)
    assert 'set bucket = "<a name of your own>" under [stages.dev] in config/lakehouse.toml' in str(raised.value)


def test_default_bucket_names_carry_the_account_and_region_and_must_fit_s3s_limit(settings):
    with pytest.raises(ConfigError, match=r"stages.dev.bucket .*needs the AWS account"):
        Clients.for_stage(settings.stage("dev"))  # never sent to AWS with "{account}" in it
    dev = settings.for_account("111122223333").stage("dev")
    assert (dev.bucket, dev.log_bucket) == (
        "lakehouse-dev-lake-111122223333-us-east-1",
        "lakehouse-dev-access-logs-111122223333-us-east-1",
    )
    assert settings.for_account("111122223333").stage("local").bucket == "lakehouse-local-lake"  # declared
    long = parse_settings({**config_files(CONFIG), "lakehouse.toml": LONG_PROJECT})
    with pytest.raises(ConfigError, match=r"stages.dev.bucket = .*longer than S3's 63 characters: set bucket"):
        long.for_account("111122223333")


LONG_PROJECT = '[project]\nname = "a-much-longer-project-name-here"\nregion = "ap-southeast-2"\n[stages.dev]\n'


def test_deploy_writes_the_stages_names_and_each_lambdas_policy_into_the_chalice_project(settings, tmp_path):
    """`chalice deploy` reads .chalice/: what it needs from config/ is written there, never by hand; each function
    names its own policy file, so Chalice gives it a role of its own."""
    import shutil

    from chalice.config import Config

    from deploy.chalice_project import write_stage

    shutil.copytree(ROOT / ".chalice", tmp_path / ".chalice", ignore=shutil.ignore_patterns("deployed", "policy-*"))
    renamed = parse_settings(
        {
            **config_files(CONFIG),
            "lakehouse.toml": (CONFIG / "lakehouse.toml").read_text()
            + '\n[stages.qa]\nbucket = "acme-qa-lake"\ningest_queue = "acme-qa-in"\nledger_table = "acme-qa-files"\n',
        }
    ).for_account("111122223333")
    for name in ("dev", "qa"):
        stage = renamed.stage(name)
        functions = declared_roles.lambda_policies(renamed, stage, "111122223333")
        assert write_stage(renamed, stage, "111122223333", tmp_path) == [
            ".chalice/config.json",
            *(f".chalice/policy-{name}-{f}.json" for f in functions),
        ]
        assert write_stage(renamed, stage, "111122223333", tmp_path) == []  # the same again: nothing to write
        chalice = json.loads((tmp_path / ".chalice" / "config.json").read_text())["stages"][name]
        env = chalice["environment_variables"]
        assert {k: env[k] for k in ("LAKEHOUSE_BUCKET", "LAKEHOUSE_INGEST_QUEUE", "LAKEHOUSE_ACCOUNT")} == {
            "LAKEHOUSE_BUCKET": stage.bucket,
            "LAKEHOUSE_INGEST_QUEUE": stage.ingest_queue,
            "LAKEHOUSE_ACCOUNT": "111122223333",
        }
        on_disk = json.loads((tmp_path / ".chalice" / "config.json").read_text())
        for function, policy in functions.items():
            chalice_sees = Config(chalice_stage=name, function_name=function, config_from_disk=on_disk)
            assert (
                chalice_sees.autogen_policy is False
                and chalice_sees.iam_policy_file == f"policy-{name}-{function}.json"
            )
            assert json.loads((tmp_path / ".chalice" / chalice_sees.iam_policy_file).read_text()) == policy
            assert _wildcards(policy) == [], function
        validate = json.dumps(functions["validate"])
        for resource in (f":::{stage.bucket}", f":{stage.ingest_queue}", f"table/{stage.ledger_table}"):
            assert resource in validate, (name, resource)
    assert (
        json.loads((tmp_path / ".chalice" / "config.json").read_text())["stages"]["prod"]
        == json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"]["prod"]
    )  # other stages untouched


def test_a_new_role_is_waited_for_but_a_real_denial_is_not(monkeypatch):
    from botocore.exceptions import ClientError

    monkeypatch.setattr(provision.time, "sleep", lambda _: None)
    calls = []

    def create():
        calls.append(1)
        if len(calls) < 3:
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "cannot assume"}}, "Create")
        return "made"

    assert provision._while_role_is_new(create, "AccessDeniedException", new_role=True) == "made" and len(calls) == 3
    calls.clear()
    with pytest.raises(ClientError):
        provision._while_role_is_new(create, "AccessDeniedException", new_role=False)
    assert len(calls) == 1


def test_teardown_is_a_dry_run_unless_told_and_keeps_the_data_unless_told(provisioned, settings, stage):
    from deploy.teardown import teardown

    c = provisioned
    c.s3.put_object(Bucket=stage.bucket, Key="processed/orders/part-0.parquet", Body=b"data")
    c.s3.delete_object(Bucket=stage.bucket, Key="processed/orders/part-0.parquet")  # a version and a delete marker
    listed, kept = teardown(settings, stage, c)
    assert f"state machine {stage.state_machine}" in listed and f"iam role {stage.glue_role}-run" in listed
    assert c.stepfunctions.list_state_machines()["stateMachines"]  # a dry run deleted nothing
    deleted, kept = teardown(settings, stage, c, apply=True)
    assert deleted == listed
    assert kept == [
        f"dynamodb {stage.ledger_table} (the file ledger)",
        f"s3://{stage.bucket} (the lake: every version of every object)",
        f"s3://{stage.log_bucket} (its access logs)",
    ]
    assert not c.stepfunctions.list_state_machines()["stateMachines"] and not c.iam.list_roles()["Roles"]
    assert not c.glue.get_crawlers()["Crawlers"] and not c.sqs.list_queues().get("QueueUrls")
    assert c.s3.get_bucket_notification_configuration(Bucket=stage.bucket).get("QueueConfigurations", []) == []
    assert teardown(settings, stage, c, apply=True) == ([], kept)  # nothing left but the data
    deleted, kept = teardown(settings, stage, c, apply=True, delete_data=True)
    assert len(deleted) == 3 and kept == []
    assert c.s3.list_buckets()["Buckets"] == [] and c.dynamodb.list_tables()["TableNames"] == []
    # and `lakehouse deploy` brings it all back
    provision.provision(settings, stage, c, config_files(CONFIG), progress=lambda _: None)
    assert plan(settings, stage, c, config_files(CONFIG)) == []


def test_teardown_stops_when_s3_refuses_to_delete_objects(provisioned, settings, stage, monkeypatch):
    from deploy.teardown import teardown

    c = provisioned
    c.s3.put_object(Bucket=stage.bucket, Key="processed/orders/part-0.parquet", Body=b"data")
    refusal = {"Errors": [{"Key": "processed/orders/part-0.parquet", "Code": "AccessDenied", "Message": "denied"}]}
    monkeypatch.setattr(c.s3, "delete_objects", lambda **_: refusal)  # per-key errors come inside a 200
    with pytest.raises(DeploymentError, match=f"s3://{stage.bucket}: could not delete 1 objects: .*AccessDenied"):
        teardown(settings, stage, c, apply=True, delete_data=True)
    assert c.s3.head_bucket(Bucket=stage.bucket)  # the lake is still there, and a second run can finish


def _client_error(code, message="", operation="Call"):
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


def test_point_in_time_recovery_is_retried_while_a_new_table_cannot_take_it_yet(monkeypatch):
    """UpdateContinuousBackups often answers a new table ContinuousBackupsUnavailableException: wait, then on."""
    from chalicelib.ledger import LEDGER_INDEXES

    monkeypatch.setattr(provision.time, "sleep", lambda _: None)

    class Ddb:
        calls = 0

        def describe_table(self, TableName):
            return {
                "Table": {
                    "GlobalSecondaryIndexes": [
                        {"IndexName": i["IndexName"], "IndexStatus": "ACTIVE"} for i in LEDGER_INDEXES
                    ]
                }
            }

        def get_waiter(self, name):
            return type("W", (), {"wait": lambda *a, **k: None})()

        def update_continuous_backups(self, **kwargs):
            Ddb.calls += 1
            if Ddb.calls < 3:
                raise _client_error("ContinuousBackupsUnavailableException", "Backups are being enabled")

    stage = type("S", (), {"ledger_table": "t"})()
    assert "point-in-time recovery on" in provision.ensure_ledger_table(Ddb(), stage) and Ddb.calls == 3


def test_the_bucket_notification_is_retried_while_s3_cannot_validate_the_queue(monkeypatch):
    from chalicelib.stage.resources import BucketNotification

    monkeypatch.setattr(provision.time, "sleep", lambda _: None)
    ours = BucketNotification(
        name="lakehouse-ingest", arn="arn:aws:sqs:us-east-1:123456789012:q", bucket="b", prefix="raw/"
    )
    answers = [_client_error("InvalidArgument", "Unable to validate the following destination configurations")] * 2

    class S3:
        puts = 0

        def get_bucket_notification_configuration(self, Bucket):
            return {}

        def put_bucket_notification_configuration(self, **kwargs):
            S3.puts += 1
            if answers:
                raise answers.pop()

    assert "raw/ -> q" in provision.ensure_notification(S3(), ours) and S3.puts == 3
    answers.append(_client_error("InvalidArgument", "The ARN is not well formed"))  # a real error is not retried
    with pytest.raises(Exception, match="not well formed"):
        provision.ensure_notification(S3(), ours)


def test_trust_and_queue_policies_carry_only_the_condition_keys_the_services_send(provisioned, settings, stage):
    clients = Clients.for_stage(stage)
    account = clients.sts.get_caller_identity()["Account"]
    roles = declared_roles.declared_roles(settings, stage, account)
    glue_trust, _ = roles[declared_roles.role_name(stage, "process")]
    assert "Condition" not in glue_trust["Statement"][0]  # Glue documents no aws:SourceAccount when assuming
    url = clients.sqs.get_queue_url(QueueName=stage.ingest_queue)["QueueUrl"]
    policy = json.loads(
        clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]["Policy"]
    )
    condition = policy["Statement"][0]["Condition"]
    assert condition["StringEquals"] == {"aws:SourceAccount": account} and "aws:SourceArn" in condition["ArnLike"]


def test_a_crawler_as_getcrawler_tells_it_is_not_updated_and_a_running_one_is_left_for_later(
    provisioned, settings, stage
):
    """GetCrawler adds empty target lists and exclusions and compacts the configuration JSON: that is no
    difference. A real difference on a crawler that is crawling is left for the next deploy (UpdateCrawler would
    fail with CrawlerRunningException)."""
    clients = Clients.for_stage(stage)
    account = clients.sts.get_caller_identity()["Account"]
    from chalicelib.stage.declared import crawler_definition

    def as_aws_tells(dataset, state="READY", **changes):
        declared = crawler_definition(settings, stage, dataset, account)
        path = declared["Targets"]["S3Targets"][0]["Path"]
        return {
            **declared,
            **changes,
            "Name": names.crawler_name(stage, dataset),
            "State": state,
            "Role": declared_roles.role_name(stage, "crawler"),  # without the ARN
            "Targets": {"S3Targets": [{"Path": path, "Exclusions": []}], "JdbcTargets": [], "CatalogTargets": []},
            "Configuration": json.dumps(json.loads(declared["Configuration"]), separators=(",", ":")),
        }

    class Glue:
        exceptions = clients.glue.exceptions

        def __init__(self, crawlers):
            self.crawlers, self.updated = crawlers, []

        def get_database(self, Name):
            return {}

        def get_crawler(self, Name):
            return {"Crawler": next(c for c in self.crawlers if c["Name"] == Name)}

        def update_crawler(self, Name, **definition):
            self.updated.append(Name)

        def __getattr__(self, name):  # the raw tables' refresh goes to moto
            return getattr(clients.glue, name)

    same = Glue([as_aws_tells(d) for d in settings.datasets])
    provision.ensure_catalog(same, clients.sts, settings, stage)
    assert same.updated == []
    busy = Glue(
        [as_aws_tells(d, "RUNNING" if d == "orders" else "READY", TablePrefix="old_") for d in settings.datasets]
    )
    said = provision.ensure_catalog(busy, clients.sts, settings, stage)
    orders = names.crawler_name(stage, "orders")
    assert orders not in busy.updated and len(busy.updated) == len(settings.datasets) - 1
    assert f"not updated while crawling (deploy again): {orders}" in said


def test_deploy_refuses_a_python_or_a_region_the_layer_and_the_stage_do_not_share(settings):
    from deploy.chalice_project import layer_arns, preflight

    prod = settings.stage("prod")
    region = prod.region
    assert layer_arns("prod") and preflight(settings, prod, python=(3, 11), cli_region=region) == []
    assert preflight(settings, prod, python=(3, 11), cli_region=None) == []  # no profile region: boto3 uses the stage's
    (python,) = preflight(settings, prod, python=(3, 12), cli_region=region)
    assert "python3.12 runtime" in python and "Python 3.11 build" in python
    elsewhere = replace(prod, region="eu-west-1")
    layer, profile = preflight(settings, elsewhere, python=(3, 11), cli_region=region)
    assert f"is in {region}, stage prod in eu-west-1" in layer and "set AWS_REGION=eu-west-1" in profile


def test_every_file_the_limits_allow_is_validated_within_the_validators_timeout(settings):
    """One file a validator invocation (a batch shares one timeout and comes back whole), 15 minutes, capped
    concurrency; the limits, the queue's visibility and the lease are checked against that timeout before deploying."""
    from deploy.chalice_project import VALIDATOR_BYTES_PER_SECOND, chalice_config, validator_sizing

    validate = chalice_config()["lambda_functions"]["validate"]
    assert (validate["lambda_timeout"], validate["lambda_memory_size"]) == (900, 1769)  # Lambda's longest; one vCPU
    assert settings.limits.max_decompressed_bytes / VALIDATOR_BYTES_PER_SECOND < 0.8 * 900
    (route,) = [h for h in app.app.event_sources if h.name == "validate"]
    assert (route.batch_size, route.maximum_concurrency) == (1, app.VALIDATE_CONCURRENCY)
    for name in ("dev", "prod"):
        assert validator_sizing(settings, settings.stage(name)) == []
    prod = settings.stage("prod")
    bigger = replace(settings, limits=replace(settings.limits, max_decompressed_bytes=100 * 1024**3))
    (limit,) = validator_sizing(bigger, prod)
    assert "max_decompressed_bytes = 107,374,182,400 takes about 2560 s to validate" in limit
    hidden, lease = validator_sizing(settings, replace(prod, queue_visibility_seconds=1800, lease_seconds=600))
    assert (
        "queue_visibility_seconds = 1800 (stage prod): make it at least six times the validator's timeout, 5400"
        in hidden
    )
    assert "lease_seconds = 600 (stage prod): make it longer than the validator's timeout (900 s)" in lease


# The IAM action of an API call where it is not `<service>:<operation>` (the Service Authorization Reference).
IAM_ACTION = {
    "s3:HeadBucket": "s3:ListBucket",
    "s3:HeadObject": "s3:GetObject",
    "s3:ListObjectsV2": "s3:ListBucket",
    "s3:ListObjectVersions": "s3:ListBucketVersions",
    "s3:ListBuckets": "s3:ListAllMyBuckets",
    "s3:DeleteObjects": "s3:DeleteObject",
    "s3:GetBucketEncryption": "s3:GetEncryptionConfiguration",
    "s3:PutBucketEncryption": "s3:PutEncryptionConfiguration",
    "s3:GetPublicAccessBlock": "s3:GetBucketPublicAccessBlock",
    "s3:PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "s3:GetBucketLifecycleConfiguration": "s3:GetLifecycleConfiguration",
    "s3:PutBucketLifecycleConfiguration": "s3:PutLifecycleConfiguration",
    "s3:GetBucketNotificationConfiguration": "s3:GetBucketNotification",
    "s3:PutBucketNotificationConfiguration": "s3:PutBucketNotification",
}
SERVICE_PREFIX = {"sfn": "states", "api-gateway": "apigateway"}
API_GATEWAY_VERB = {"Get": "GET", "Create": "POST", "Update": "PATCH", "Delete": "DELETE", "Put": "PUT"}


def _iam_action(service: str, operation: str) -> str:
    prefix = SERVICE_PREFIX.get(service, service)
    if prefix == "apigateway":  # API Gateway's management API is authorized by HTTP verb
        return f"apigateway:{next(v for k, v in API_GATEWAY_VERB.items() if operation.startswith(k))}"
    return IAM_ACTION.get(f"{prefix}:{operation}", f"{prefix}:{operation}")


def test_the_deployer_policy_in_the_repository_allows_every_call_deploy_drift_and_teardown_make(aws_env, settings):
    """deploy/deployer-policy.json is what the README asks the deploying user to have: every AWS call that
    `lakehouse deploy` (with --plan), `drift` and `teardown` make on an empty account is among its actions."""
    import fnmatch

    from chalicelib.stage.drift import DriftCheck
    from deploy.teardown import teardown

    settings = settings.for_account("123456789012")
    stage = replace(settings.stage("dev"), enforce_tls=False)  # moto denies its own TLS-only policy over mock HTTPS
    clients, calls = Clients.for_stage(stage), set()
    for service_client in vars(clients).values():
        service_client.meta.events.register(
            "before-call", lambda model, event_name, **_: calls.add((event_name.split(".")[1], model.name))
        )
    files = config_files(CONFIG)
    plan(settings, stage, clients, files)
    provision.provision(settings, stage, clients, files, progress=lambda _: None)
    provision.provision(settings, stage, clients, files, progress=lambda _: None)
    DriftCheck.for_stage(settings, stage).run(None)
    teardown(settings, stage, clients, apply=True, delete_data=True, progress=lambda _: None)
    policy = json.loads((ROOT / "deploy" / "deployer-policy.json").read_text())
    allowed = [a for st in statements(policy) for a in st["Action"]]
    needed = {_iam_action(s, o) for s, o in calls} - {"sts:GetCallerIdentity"}  # needs no permission
    assert len(needed) > 50
    assert sorted(a for a in needed if not any(fnmatch.fnmatch(a, p) for p in allowed)) == []


@pytest.mark.parametrize(
    "endpoint, replaced", [("http://127.0.0.1:4566", True), ("https://glue.us-east-1.amazonaws.com", False)]
)
def test_a_changed_glue_job_is_replaced_only_where_the_local_stage_lacks_update_job(endpoint, replaced):
    """moto has no Glue UpdateJob or UpdateCrawler (a 500): a local stage made by an earlier release could not take a
    changed job, so it is deleted and created again there; on AWS a 500 is reported, never a reason to delete."""
    from types import SimpleNamespace

    from botocore.exceptions import ClientError

    from deploy.provision import _update_or_replace

    calls = []

    def update():
        raise ClientError({"Error": {"Code": "500", "Message": "Internal Server Error"}}, "UpdateJob")

    glue = SimpleNamespace(meta=SimpleNamespace(endpoint_url=endpoint))
    if replaced:
        _update_or_replace(glue, update, lambda: calls.append("replaced"))
        assert calls == ["replaced"]
    else:
        with pytest.raises(ClientError):
            _update_or_replace(glue, update, lambda: calls.append("replaced"))
        assert calls == []
