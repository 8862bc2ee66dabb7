"""`chalice package` for each AWS stage: the deployment package fits Lambda's 250 MB unzipped limit with its
layer, the template passes cfn-lint, and the API is protected as the stage says."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import CONFIG, ROOT

pytestmark = pytest.mark.e2e  # runs `chalice package`

LIMIT_MB = 250  # Lambda: function code and all its layers, unzipped
# The AWS SDK for pandas layer cannot be downloaded here. Its unzipped size, as measured in aws/aws-sdk-pandas
# issue 3331: 167 MB for releases 3.15.1 and 3.16.0, 204 MB for 3.16.1 (the largest recent one).
SDK_PANDAS_LAYER_MB = 204
HEAVY = ("pandas/", "pyarrow/", "deltalake/", "duckdb/", "numpy/")
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module", params=["dev", "prod"])
def package(request, tmp_path_factory):
    """`chalice package` of the Chalice project as `lakehouse deploy` leaves it (its stage's names and policy
    written from config/), in a copy: the repository's own .chalice/ stays as committed."""
    from chalicelib.config import load_settings
    from deploy.chalice_project import write_stage

    project, out = tmp_path_factory.mktemp("project"), tmp_path_factory.mktemp(f"package-{request.param}")
    skip = (".venv", ".git", ".lakehouse", "*cache*", "deployed", "policy-*.json", "*.egg-info", ".hypothesis")
    shutil.copytree(ROOT, project, ignore=shutil.ignore_patterns(*skip), dirs_exist_ok=True)
    settings = load_settings(CONFIG).for_account("111122223333")
    write_stage(settings, settings.stage(request.param), "111122223333", project)
    env = {"AWS_DEFAULT_REGION": "us-east-1", "PATH": str(BIN), "HOME": str(out)}
    done = subprocess.run(
        [str(BIN / "chalice"), "package", "--stage", request.param, str(out)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return request.param, out


def test_the_package_and_its_layer_fit_lambdas_limit(package):
    _, out = package
    with zipfile.ZipFile(out / "deployment.zip") as archive:
        names = archive.namelist()
        unzipped_mb = sum(i.file_size for i in archive.infolist()) / 1024**2
    assert "app.py" in names and "chalicelib/api/dashboard.html" in names and "chalicelib/cost/prices.json" in names
    assert "chalicelib/queries/top_products.sql" in names  # the cost what-if reads the example queries
    assert not [n for n in names if n.startswith(HEAVY)]  # from the layer, or not in a Lambda at all
    assert unzipped_mb + SDK_PANDAS_LAYER_MB < LIMIT_MB, f"{unzipped_mb:.1f} MB + the layer"


def test_the_package_holds_no_deployment_cli_or_glue_code(package):
    _, out = package
    with zipfile.ZipFile(out / "deployment.zip") as archive:
        names = archive.namelist()
    assert [n for n in names if n.startswith(("deploy/", "lakehouse/", "lakehouse_etl/", "glue_scripts/"))] == []
    assert not [n for n in names if n.startswith("chalicelib/") and n.rsplit("/", 1)[-1] in ("provision.py", "iam.py")]


def test_the_template_passes_cfn_lint(package):
    _, out = package
    done = subprocess.run([str(BIN / "cfn-lint"), str(out / "sam.json")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_template_has_each_functions_settings_and_the_stages_authorization(package):
    stage, out = package
    template = json.loads((out / "sam.json").read_text())
    resources = template["Resources"]
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    layers = {n: f["layers"] for n, f in config["stages"][stage]["lambda_functions"].items() if "layers" in f}
    assert set(layers) == {"validate"}  # only the validator parses with pyarrow; the others stay small
    for name, settings in config["lambda_functions"].items():
        logical = "APIHandler" if name == "api_handler" else "".join(p.title() for p in name.split("_"))
        properties = resources[logical]["Properties"]
        assert (properties["Timeout"], properties["MemorySize"]) == (
            settings["lambda_timeout"],
            settings["lambda_memory_size"],
        ), name
        assert properties.get("Layers") == layers.get(name), name
        assert properties["Environment"]["Variables"]["LAKEHOUSE_STAGE"] == stage
    paths = resources["RestAPI"]["Properties"]["DefinitionBody"]["paths"]
    for path, method in (("/cost", "get"), ("/cost", "post"), ("/status", "get")):  # IAM on every AWS stage
        assert paths[path][method]["security"] == [{"sigv4": []}], (path, method)
    assert "security" not in paths["/"]["get"]  # the page; its data comes from the protected routes


def test_the_validator_has_its_queue_trigger_and_the_steps_their_handlers(package):
    stage, out = package
    resources = json.loads((out / "sam.json").read_text())["Resources"]
    (event,) = resources["Validate"]["Properties"]["Events"].values()
    assert event["Type"] == "SQS" and f"lakehouse-{stage}-ingest" in event["Properties"]["Queue"]["Fn::Sub"]
    assert event["Properties"]["BatchSize"] == 1  # a file per invocation: each gets the whole timeout
    assert event["Properties"]["ScalingConfig"] == {"MaximumConcurrency": 20}  # app.VALIDATE_CONCURRENCY
    (schedule,) = resources["Batcher"]["Properties"]["Events"].values()
    assert schedule["Type"] == "Schedule" and schedule["Properties"]["Schedule"] == "rate(1 minute)"
    for step in ("QualityCheck", "RefreshTables", "FinishRun", "FailRun"):
        assert resources[step]["Properties"]["Handler"].startswith("app.")


def test_each_function_runs_as_a_role_of_its_own_with_its_own_policy(package):
    """Chalice turns each function's `iam_policy_file` into a role for that function alone."""
    from chalicelib.config import load_settings
    from chalicelib.stage.roles import lambda_policies

    stage, out = package
    resources = json.loads((out / "sam.json").read_text())["Resources"]
    settings = load_settings(CONFIG).for_account("111122223333")
    policies = lambda_policies(settings, settings.stage(stage), "111122223333")
    roles = set()
    for name, policy in policies.items():
        logical = "APIHandler" if name == "api_handler" else "".join(p.title() for p in name.split("_"))
        (role, _) = resources[logical]["Properties"]["Role"]["Fn::GetAtt"]
        roles.add(role)
        (document,) = [p["PolicyDocument"] for p in resources[role]["Properties"]["Policies"]]
        assert document == policy, name
    assert len(roles) == len(policies)
