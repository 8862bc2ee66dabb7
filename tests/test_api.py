"""The HTTP API as a whole: the dashboard route, the OpenAPI document (and schemathesis run against it over a
real HTTP server finding no 500), per-stage authorization, and the cost what-ifs."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import schemathesis
from conftest import CONFIG, ROOT
from hypothesis import HealthCheck
from hypothesis import settings as examples
from schemathesis.specs.openapi.checks import positive_data_acceptance

import app
from chalicelib import QUERIES_DIR
from chalicelib.api import openapi
from chalicelib.cost import estimate as cost
from chalicelib.cost import savings
from chalicelib.errors import ConfigError
from chalicelib.lifecycle.rules import lake_rules
from deploy.provision import upload_config

LAKE_TOML = (CONFIG / "lifecycle" / "lake.toml").read_text()


def test_the_dashboard_is_one_html_page_with_no_outside_resources(client):
    response = client.http.get("/")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    page = response.body.decode()
    assert '<svg id="chart"' in page and 'api("status' in page and 'api("cost' in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "") and "https://" not in page  # no CDN
    assert "innerHTML" not in page  # API text (file names, reasons) is set as text only


def test_the_openapi_document_is_valid_and_describes_every_cost_parameter(client):
    from openapi_spec_validator import validate

    response = client.http.get("/openapi.json")
    document = json.loads(response.body)
    validate(document)
    parameters = {p["name"]: p["schema"] for p in document["paths"]["/cost"]["get"]["parameters"]}
    assert set(parameters) == {"scenario", *(f for f in cost.Usage.__dataclass_fields__)}
    assert parameters["glue_dpus"] == {"type": "number", "minimum": 0, "maximum": 1000}
    assert parameters["scenario"]["enum"] == ["light", "medium", "heavy"]
    assert "security" not in document["paths"]["/status"]["get"]  # the local stage: open on loopback
    iam, key = openapi.document("iam", app.openapi_routes()), openapi.document("iam+api_key", app.openapi_routes())
    assert iam["paths"]["/cost"]["post"]["security"] == [{"sigv4": []}]
    assert key["paths"]["/cost"]["post"]["security"] == [{"sigv4": [], "api_key": []}]  # both at once
    assert key["components"]["securitySchemes"]["api_key"]["name"] == "x-api-key"
    assert "security" not in iam["paths"]["/"]["get"]  # the page itself holds no data


def test_every_route_of_the_app_is_in_its_openapi_document_and_nothing_else():
    document = openapi.document("iam", app.openapi_routes())
    documented = {(path, method.upper()) for path, ops in document["paths"].items() for method in ops}
    assert documented == {(path, method) for path, methods in app.app.routes.items() for method in methods}
    assert all(op["summary"] for ops in document["paths"].values() for op in ops.values())  # from the docstrings
    data = {(r.path, r.method) for r in app.openapi_routes() if r.protected}
    assert data == {("/cost", "GET"), ("/cost", "POST"), ("/status", "GET")}
    assert all(app.app.routes[p][m].authorizer is None for p, m in data)  # this test process: the local stage's none


def test_each_stage_protects_its_api_as_configured_and_a_key_is_never_the_authorization():
    """An API key is not authorization (API Gateway, usage plans): every deployed stage signs with IAM, and a key
    only adds throttling."""
    from chalice import IAMAuthorizer

    stages = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"]
    modes = {name: s["environment_variables"]["LAKEHOUSE_API_AUTH"] for name, s in stages.items()}
    assert modes == {"local": "none", "dev": "iam", "prod": "iam"}
    assert isinstance(app._api_auth("iam")["authorizer"], IAMAuthorizer)
    both = app._api_auth("iam+api_key")
    assert isinstance(both["authorizer"], IAMAuthorizer) and both["api_key_required"] is True
    assert app._api_auth("none") == {}
    with pytest.raises(ConfigError, match=r"'api_key': an API key is not authorization .* iam, iam\+api_key or none"):
        app._api_auth("api_key")
    with pytest.raises(ConfigError, match=r"LAKEHOUSE_API_AUTH = 'open': must be iam, iam\+api_key or none"):
        app._api_auth("open")


def test_the_lifecycle_what_if_follows_the_rules_class_by_class(settings):
    rules = [
        {
            "ID": "a",
            "Status": "Enabled",
            "Filter": {"Prefix": "archive/"},
            "Transitions": [{"Days": 30, "StorageClass": "STANDARD_IA"}],
            "Expiration": {"Days": 100},
        },
        {"ID": "t", "Status": "Enabled", "Filter": {"Tag": {"Key": "k", "Value": "v"}}, "Expiration": {"Days": 1}},
    ]
    usage = replace(cost.SCENARIOS["medium"], files_per_day=1024, avg_file_mb=1)  # 1 GB a day
    p = cost.prices()
    got = savings.lifecycle_saving(usage, rules, settings.zones, p)
    archive = got["gb_by_class_after_a_year"]["archive/ (current versions)"]
    assert archive == {"STANDARD": 30, "STANDARD_IA": 70}  # expired after 100 days; the tag rule is not judged
    assert got["gb_by_class_after_a_year"]["raw/ (noncurrent versions)"] == {"STANDARD": 365}
    standard, ia = p["s3_storage_gb_month"]["STANDARD"], p["s3_storage_gb_month"]["STANDARD_IA"]
    moves = 1024 * cost.DAYS * p["s3_lifecycle_transition_per_1000"]["STANDARD_IA"] / 1000
    assert got["without_rules_monthly"] == round(2 * 365 * standard, 2)
    assert got["with_rules_monthly"] == round(30 * standard + 70 * ia + 365 * standard + moves, 2)
    assert savings.lifecycle_saving(usage, None, settings.zones, p)["monthly_saving"] == 0


def test_the_pruning_what_if_prunes_only_date_partitioned_tables(settings):
    assert savings.tables_named((QUERIES_DIR / "top_products.sql").read_text()) == [
        "processed_order_items",
        "processed_products",
    ]
    usage = replace(cost.SCENARIOS["medium"], queries_per_day=30, gb_scanned_per_query=2)
    got = savings.pruning_saving(usage, settings.datasets, QUERIES_DIR, cost.prices())
    top = got["queries"]["top_products"]
    assert top["date_partitioned"] == ["processed_order_items"]  # products is partitioned by department, not date
    assert top["gb_scanned_pruned"] == pytest.approx(1 * 30 / 365 + 1, abs=1e-4)
    assert got["queries"]["conversion_funnel"]["gb_scanned_pruned"] == pytest.approx(2 * 30 / 365, abs=1e-4)
    assert got["monthly_saving"] == pytest.approx(sum(q["monthly_saving"] for q in got["queries"].values()), abs=0.02)


def test_get_cost_prices_the_pushed_lifecycle_rules(client, provisioned, stage):
    before = json.loads(client.http.get("/cost").body)["what_if"][0]
    assert before["monthly_saving"] == 0 and "lakehouse lifecycle push" in before["detail"]
    upload_config(provisioned.s3, stage.bucket, "config/lifecycle/", {"lake.toml": LAKE_TOML})
    from chalicelib import runtime

    runtime.reset()
    body = json.loads(client.http.get("/cost?scenario=heavy").body)
    lifecycle = body["what_if"][0]
    expected = savings.lifecycle_saving(
        cost.SCENARIOS["heavy"],
        lake_rules({"lake.toml": LAKE_TOML}, stage.bucket),
        runtime.current().settings.zones,
        cost.prices(),
    )
    assert lifecycle == expected and lifecycle["monthly_saving"] > 0
    assert body["what_if"][1]["name"] == "partition pruning" and body["what_if"][1]["monthly_saving"] > 0


# schemathesis: every operation of the document, generated from it, against the API over real HTTP.
SCHEMA = schemathesis.openapi.from_dict(openapi.document("none", app.openapi_routes()))


@SCHEMA.parametrize()
@examples(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_schemathesis_finds_no_server_error(case, api_url):
    if case.method.upper() != case.operation.method.upper():
        return  # a probe with an undeclared method (TRACE) tests the HTTP server (API Gateway on AWS), not app.py
    # Every default check but one: a schema-valid request may still be refused, as storage_split's shares must add
    # up to 1, which JSON Schema cannot say.
    case.call_and_validate(base_url=api_url, excluded_checks=[positive_data_acceptance])


def test_an_aws_stage_whose_names_lakehouse_deploy_has_not_written_is_refused_at_chalice_deploy(monkeypatch):
    """`chalice deploy` imports app.py with the stage's environment: without what `lakehouse deploy` writes there,
    it would deploy a validator on no queue and Lambdas that find no configuration."""
    monkeypatch.setenv("LAKEHOUSE_STAGE", "prod")
    monkeypatch.delenv("LAKEHOUSE_INGEST_QUEUE", raising=False)
    with pytest.raises(ConfigError, match=r"run `lakehouse deploy --stage prod` before `chalice deploy --stage prod`"):
        app._ingest_queue()
    monkeypatch.setenv("LAKEHOUSE_INGEST_QUEUE", "acme-prod-in")
    assert app._ingest_queue() == "acme-prod-in"
