"""The local stage enforces IAM (lakehouse/local_iam.py): moto's access control, with the resources it does not see."""

import json

import boto3
import pytest
from botocore.exceptions import ClientError

from chalicelib.aws import Credentials
from chalicelib.stage.roles import trust
from lakehouse import local_iam

ACCOUNT = "123456789012"
ADMIN = Credentials("FOOBARKEY", "FOOBARSECRET")  # the keys mock_aws gives clients
TABLE = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/ledger"


def admin(service):
    return boto3.client(service, region_name="us-east-1")


def as_role(service, keys):
    return boto3.client(
        service,
        region_name="us-east-1",
        aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=keys["AWS_SESSION_TOKEN"],
    )


def role(name, statements, service="lambda.amazonaws.com"):
    iam = admin("iam")
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust(service, ACCOUNT, source_account=False)))
    policy = {"Version": "2012-10-17", "Statement": statements}
    iam.put_role_policy(RoleName=name, PolicyName="lakehouse", PolicyDocument=json.dumps(policy))
    return local_iam.assume(ACCOUNT, name, service, "test")


@pytest.fixture
def enforced(aws_env):
    ddb = admin("dynamodb")
    key = [{"AttributeName": "pk", "KeyType": "HASH"}]
    ddb.create_table(
        TableName="ledger",
        KeySchema=key,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.create_table(
        TableName="other",
        KeySchema=key,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    admin("s3").create_bucket(Bucket="lake-bucket")
    with local_iam.enforcing(ACCOUNT, ADMIN):
        yield


def test_a_role_may_do_what_its_policy_allows_on_the_resource_named_and_nothing_else(enforced):
    keys = role("writer", [{"Effect": "Allow", "Action": ["dynamodb:PutItem", "dynamodb:GetItem"], "Resource": TABLE}])
    ddb = as_role("dynamodb", keys)
    ddb.put_item(TableName="ledger", Item={"pk": {"S": "a"}})  # moto alone judges this against "*": denied
    assert ddb.get_item(TableName="ledger", Key={"pk": {"S": "a"}})["Item"]["pk"] == {"S": "a"}
    with pytest.raises(ClientError) as other_table:
        ddb.put_item(TableName="other", Item={"pk": {"S": "a"}})
    error = other_table.value.response["Error"]
    assert error["Code"] == "AccessDeniedException"  # as DynamoDB names it, not moto's XML "403"
    assert "assumed-role/writer is not authorized to perform: dynamodb:PutItem on resource: " in error["Message"]
    assert error["Message"].endswith(":table/other")
    with pytest.raises(ClientError, match="dynamodb:DeleteItem"):
        ddb.delete_item(TableName="ledger", Key={"pk": {"S": "a"}})


def test_s3_is_judged_by_key_and_the_admin_user_may_do_anything(enforced):
    keys = role("reader", [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::lake-bucket/raw/*"}])
    s3 = admin("s3")
    s3.put_object(Bucket="lake-bucket", Key="raw/a.csv", Body=b"x")
    s3.put_object(Bucket="lake-bucket", Key="processed/a", Body=b"x")
    assert as_role("s3", keys).get_object(Bucket="lake-bucket", Key="raw/a.csv")["Body"].read() == b"x"
    with pytest.raises(ClientError, match="AccessDenied"):
        as_role("s3", keys).get_object(Bucket="lake-bucket", Key="processed/a")


def test_glue_table_calls_need_the_catalog_the_database_and_the_table(enforced):
    admin("glue").create_database(DatabaseInput={"Name": "lake"})
    admin("glue").create_table(DatabaseName="lake", TableInput={"Name": "orders"})
    glue = f"arn:aws:glue:us-east-1:{ACCOUNT}"
    only_table = role("t", [{"Effect": "Allow", "Action": "glue:GetTable", "Resource": f"{glue}:table/lake/*"}])
    with pytest.raises(ClientError, match=r"glue:GetTable on resource: arn:aws:glue:us-east-1:\d+:catalog"):
        as_role("glue", only_table).get_table(DatabaseName="lake", Name="orders")
    every = [f"{glue}:catalog", f"{glue}:database/lake", f"{glue}:table/lake/*"]
    keys = role("all", [{"Effect": "Allow", "Action": "glue:GetTable", "Resource": every}])
    assert as_role("glue", keys).get_table(DatabaseName="lake", Name="orders")["Table"]["Name"] == "orders"


def test_an_explicit_deny_wins_and_sns_is_judged_by_topic(enforced):
    arn = admin("sns").create_topic(Name="alerts")["TopicArn"]
    keys = role(
        "publisher",
        [
            {"Effect": "Allow", "Action": "sns:Publish", "Resource": "*"},
            {"Effect": "Deny", "Action": "sns:Publish", "Resource": arn},
        ],
    )
    with pytest.raises(ClientError, match="sns:Publish on resource: arn:aws:sns:us-east-1:123456789012:alerts"):
        as_role("sns", keys).publish(TopicArn=arn, Message="m")


def test_a_role_is_given_only_to_the_service_its_trust_policy_names(enforced):
    role("glue-only", [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}], service="glue.amazonaws.com")
    with pytest.raises(Exception, match=r"does not let lambda\.amazonaws\.com assume it"):
        local_iam.assume(ACCOUNT, "glue-only", "lambda.amazonaws.com", "s")
    with pytest.raises(Exception, match="no role nope on the local stage"):
        local_iam.assume(ACCOUNT, "nope", "lambda.amazonaws.com", "s")


def test_the_evaluator_needs_an_allow_and_honours_a_deny():
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/raw/*"},
            {"Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::b/raw/secret*"},
        ],
    }
    assert local_iam.allowed([policy], "s3:GetObject", "arn:aws:s3:::b/raw/x.csv")
    assert not local_iam.allowed([policy], "s3:GetObject", "arn:aws:s3:::b/processed/x")
    assert not local_iam.allowed([policy], "s3:PutObject", "arn:aws:s3:::b/raw/x.csv")
    assert not local_iam.allowed([policy], "s3:GetObject", "arn:aws:s3:::b/raw/secret.csv")


def test_actions_are_named_as_iam_names_them():
    c = local_iam.checks
    assert c("sqs", "DeleteMessageBatch", {"QueueUrl": "http://h/1/q"}, "r", "1") == [
        ("sqs:DeleteMessage", "arn:aws:sqs:r:1:q")
    ]
    items = [{"Put": {"TableName": "a"}}, {"ConditionCheck": {"TableName": "b"}}]
    assert c("dynamodb", "TransactWriteItems", {"TransactItems": items}, "r", "1") == [
        ("dynamodb:PutItem", "arn:aws:dynamodb:r:1:table/a"),
        ("dynamodb:ConditionCheckItem", "arn:aws:dynamodb:r:1:table/b"),
    ]


def test_s3_head_bucket_is_allowed_by_list_bucket(enforced):
    keys = role("lister", [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::lake-bucket"}])
    as_role("s3", keys).head_bucket(Bucket="lake-bucket")  # moto alone asks for "s3:HeadBucket", no IAM action


def test_resources_of_the_calls_moto_judges_against_star():
    r = local_iam.resources
    assert r("dynamodb", "Query", {"TableName": "t", "IndexName": "i"}, "eu-west-1", "1") == [
        "arn:aws:dynamodb:eu-west-1:1:table/t/index/i"
    ]
    assert r("dynamodb", "BatchGetItem", {"RequestItems": {"a": {}, "b": {}}}, "r", "1") == [
        "arn:aws:dynamodb:r:1:table/a",
        "arn:aws:dynamodb:r:1:table/b",
    ]
    assert r("glue", "GetJob", {"JobName": "j"}, "r", "1") == ["arn:aws:glue:r:1:job/j"]
    assert r("glue", "GetCrawler", {"Name": "c"}, "r", "1") == ["arn:aws:glue:r:1:crawler/c"]
    assert r("glue", "CreateTable", {"DatabaseName": "d", "TableInput": {"Name": "t"}}, "r", "1") == [
        "arn:aws:glue:r:1:catalog",
        "arn:aws:glue:r:1:database/d",
        "arn:aws:glue:r:1:table/d/t",
    ]
    assert r("states", "DescribeExecution", {"executionArn": "arn:x"}, "r", "1") == ["arn:x"]
    assert r("athena", "GetWorkGroup", {"WorkGroup": "w"}, "r", "1") == ["arn:aws:athena:r:1:workgroup/w"]
    assert r("sqs", "GetQueueUrl", {"QueueName": "q"}, "r", "1") == ["arn:aws:sqs:r:1:q"]
    assert r("sns", "ListTopics", {}, "r", "1") == ["*"]


# -- end to end: the local stage, each component as its role ------------------------------------------------------
# a small run's roles: its one Glue job (kind `run`), a Lambda step, the state machine
GLUE_ROLE, LAMBDA_ROLE = "lakehouse-local-glue-run", "serverless-lakehouse-local-finish_run"
PIPELINE_ROLE = "lakehouse-local-pipeline"
HEADER = b"order_id,customer_id,order_ts,status,total_amount,currency,order_date\n"


@pytest.fixture(scope="module")
def stage_env(tmp_path_factory):
    from test_local_stage import lakehouse

    home = tmp_path_factory.mktemp("lakehouse-iam")
    try:
        lakehouse(home, "up")
        exported = dict(
            line.removeprefix("export ").split("=", 1) for line in lakehouse(home, "env").stdout.splitlines()
        )
        assert "IAM enforced" in (home / "local.log").read_text()
        yield home, exported
    finally:
        lakehouse(home, "down", "--discard", check=False)


def stage_client(service, env):
    return boto3.client(
        service,
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def drop_orders(home, tmp_path, name, row):
    from test_local_stage import lakehouse, ledger, wait_until

    path = tmp_path / name
    path.write_bytes(HEADER + row)
    lakehouse(home, "drop", str(path), "--dataset", "orders")
    wait_until(lambda: [r for r in ledger(home) if r["key"].endswith(name) and r["status"] == "VALID"])


def calls(env, method):
    import urllib.request

    url = f"{env['AWS_ENDPOINT_URL']}{local_iam.ROUTE}calls"
    with urllib.request.urlopen(urllib.request.Request(url, method=method)) as answer:
        return json.loads(answer.read()).get("calls")


@pytest.mark.e2e
def test_every_call_of_a_run_is_made_as_the_component_s_role_and_its_policy_allows_it(stage_env, tmp_path):
    """moto judged what it judges; the evaluator judges every call against the role's policy, the calls moto does not
    judge (an S3 copy's source, as the archive step copies raw files) included."""
    from test_local_stage import lakehouse

    home, env = stage_env
    drop_orders(home, tmp_path, "iam_1.csv", b"O1,C1,2025-03-01T10:00:00Z,shipped,10.00,EUR,2025-03-01\n")
    calls(env, "POST")  # recording on
    run = lakehouse(home, "run")
    assert "SUCCEEDED" in run.stdout
    made = calls(env, "GET")
    iam = stage_client("iam", env)
    policies = {
        role: json.loads(json.dumps(iam.get_role_policy(RoleName=role, PolicyName="lakehouse")["PolicyDocument"]))
        for role in {c["role"] for c in made}
    }
    assert {GLUE_ROLE, LAMBDA_ROLE, PIPELINE_ROLE} <= set(policies)  # the Glue job, the Lambda steps, the state machine
    assert all(c["allowed"] is not False for c in made), [c for c in made if c["allowed"] is False]
    unjudged = [c for c in made if c["allowed"] is None]
    assert any(
        c["action"].startswith("s3:GetObject") and ":::lakehouse-local-lake/raw/" in c["resource"] for c in unjudged
    )  # the archive's copy of the raw file, which moto lets through unjudged
    refused = [c for c in made if not local_iam.allowed([policies[c["role"]]], c["action"], c["resource"])]
    assert refused == []


@pytest.mark.e2e
def test_a_run_fails_with_access_denied_when_the_glue_role_loses_a_permission_it_needs(stage_env, tmp_path):
    from test_local_stage import lakehouse

    home, env = stage_env
    iam = stage_client("iam", env)
    policy = iam.get_role_policy(RoleName=GLUE_ROLE, PolicyName="lakehouse")["PolicyDocument"]
    kept = [s for s in policy["Statement"] if s.get("Sid") != "Ledger"]  # the job reads its run's plan there
    assert len(kept) == len(policy["Statement"]) - 1
    iam.put_role_policy(
        RoleName=GLUE_ROLE, PolicyName="lakehouse", PolicyDocument=json.dumps({**policy, "Statement": kept})
    )
    try:
        drop_orders(home, tmp_path, "iam_2.csv", b"O2,C1,2025-03-02T10:00:00Z,shipped,20.00,EUR,2025-03-02\n")
        run = lakehouse(home, "run", check=False)
    finally:
        iam.put_role_policy(RoleName=GLUE_ROLE, PolicyName="lakehouse", PolicyDocument=json.dumps(policy))
    assert run.returncode == 1 and "FAILED" in run.stdout
    # reported with the failed step, as AWS words it, not swallowed
    assert "AccessDeniedException" in run.stdout and "is not authorized to perform: dynamodb:" in run.stdout
