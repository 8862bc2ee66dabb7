"""The cost estimate: its arithmetic (per-run and per-query minimums), scenarios, the stage-derived usage, and
every bad parameter answered with a 400 naming it (GET and POST /cost through the Chalice test client)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from chalicelib.cost import estimate as cost

NOTHING = replace(
    cost.Usage(),
    **{name: 0.0 for name in cost.LIMITS if name not in ("lambda_memory_mb", "vpc_azs", "storage_split")},
    storage_split={"STANDARD": 1.0},
)


HOUSEKEEPING = ("Glue", "housekeeping job (compaction, VACUUM; [schedules] housekeeping; a minute at least)")


def lines(estimate):
    return {(line["service"], line["item"]): line for line in estimate["lines"]}


def test_glue_and_athena_are_billed_with_their_minimums():
    usage = replace(NOTHING, pipeline_runs_per_day=10, single_job_share=1, glue_dpus=2, glue_minutes_per_job=0.2)
    usage = replace(usage, crawls_per_month=3, crawler_dpus=2, crawler_minutes=1, queries_per_day=100)
    usage = replace(usage, gb_scanned_per_query=0.001)  # 1 MB: billed as 10 MB
    got = lines(cost.estimate(usage))
    etl = got[("Glue", "ETL jobs (per-run minimum billed; one job for a small run)")]
    assert etl["quantity"] == pytest.approx(10 * cost.DAYS * 2 * 60 / 3600, abs=1e-3)  # 12 s billed as 60 s
    assert etl["monthly"] == round(etl["quantity"] * 0.44, 2)
    big = lines(cost.estimate(replace(usage, single_job_share=0, datasets_per_run=6)))
    per_dataset = big[("Glue", "ETL jobs (per-run minimum billed; one job for a small run)")]
    assert per_dataset["quantity"] == pytest.approx(7 * etl["quantity"], abs=1e-3)  # a job per dataset, the merge
    crawlers = got[("Glue", "crawlers (on a raw layout change; 10 minutes at least)")]
    assert crawlers["quantity"] == pytest.approx(3 * 2 * 600 / 3600, abs=1e-3)  # per crawl, not per run
    athena = got[("Athena", "data scanned (10 MB minimum a query)")]
    assert athena["quantity"] == pytest.approx(100 * cost.DAYS * (10 / 1024) / 1024, abs=1e-4)


def test_every_line_is_its_quantity_times_its_unit_price_and_the_total_their_sum():
    for name, usage in cost.SCENARIOS.items():
        estimate = cost.estimate(usage)
        for line in estimate["lines"]:
            assert line["monthly"] == pytest.approx(line["quantity"] * line["unit_price"] / line["per"], abs=0.01), line
        assert estimate["monthly_total"] == pytest.approx(sum(line["monthly"] for line in estimate["lines"]), abs=0.01)
        assert estimate["prices_as_of"] and estimate["region"] == "us-east-1", name
    totals = [cost.estimate(cost.SCENARIOS[s])["monthly_total"] for s in ("light", "medium", "heavy")]
    assert totals == sorted(totals) and totals[0] > 0
    heavy = lines(cost.estimate(cost.SCENARIOS["heavy"]))
    assert heavy[("S3", "storage GLACIER_IR")]["quantity"] == 4000  # 40% of 10 TB
    assert ("VPC endpoints", "interface endpoint hours") in heavy and ("Firehose", "data ingested") not in heavy


def test_the_stage_configuration_sets_how_often_runs_start_and_what_each_starts(settings):
    usage = cost.usage_for_stage(settings)
    assert usage.pipeline_runs_per_day == 86400 / settings.pipeline.window_seconds  # a trickle: a run per window
    # 500 files a day over 288 runs: about 1.7 datasets a run, 3.5 MB: one Glue job runs each run whole
    files_per_run = cost.SCENARIOS["medium"].files_per_day / usage.pipeline_runs_per_day
    assert usage.datasets_per_run == pytest.approx(files_per_run, abs=0.01)
    assert (usage.single_job_share, usage.glue_jobs_per_run) == (1.0, 1.0)
    # a crawl when a raw layout changes, of the datasets their contract cannot catalogue (products, reviews)
    assert usage.crawls_per_month == 2
    few = cost.usage_for_stage(settings, replace(cost.SCENARIOS["medium"], files_per_day=20))
    assert few.pipeline_runs_per_day == 20  # never more runs than files
    many = cost.usage_for_stage(settings, replace(cost.SCENARIOS["medium"], files_per_day=100_000))
    # every dataset has files in every run, 694 MB of them: past single_job_bytes, a job per dataset and the merge
    assert many.single_job_share == 0 and many.glue_jobs_per_run == len(settings.datasets) + 1
    big = cost.usage_for_stage(settings, replace(cost.SCENARIOS["medium"], avg_file_mb=1000))
    assert big.single_job_share == 0 and big.datasets_per_run == pytest.approx(files_per_run, abs=0.01)


def test_crawling_only_on_a_layout_change_against_every_run_and_the_gate_reading_the_batch(settings):
    usage = replace(cost.SCENARIOS["medium"], pipeline_runs_per_day=10, datasets_per_run=2, crawls_per_month=2)
    what = {w["name"]: w for w in cost.estimate_for(settings, None, {}, None)["what_if"]}  # the stage's own
    crawl = what["crawl only on a layout change"]
    assert crawl["every_run"] > crawl["on_layout_change"] > 0
    flex = what["Glue Flex execution"]
    estimate = cost.estimate(cost.usage_for_stage(settings))
    glue = estimate["by_service"]["Glue"] - lines(estimate)[HOUSEKEEPING]["monthly"]
    assert flex["standard"] == pytest.approx(glue - 0.29, abs=0.02)  # the job runs' line: Glue less 2 crawls
    assert flex["flex"] == pytest.approx(flex["standard"] * 0.29 / 0.44, abs=0.01) and flex["monthly_saving"] > 0
    from chalicelib.cost.prices import prices
    from chalicelib.cost.savings import crawl_saving

    saving = crawl_saving(usage, prices())
    per_crawl = 2 * 600 / 3600 * prices()["glue_crawler_dpu_hour"]
    assert saving["every_run"] == pytest.approx(10 * cost.DAYS * 2 * per_crawl, abs=0.01)  # 2 datasets a run
    assert saving["on_layout_change"] == pytest.approx(2 * per_crawl, abs=0.01)
    gate_line = ("Athena", "quality gate of big runs (the batch's rows; 10 MB minimum a query)")
    big_runs = replace(usage, files_per_day=100, avg_file_mb=1, single_job_share=0)
    gate = lines(cost.estimate(big_runs))[gate_line]
    assert gate["quantity"] == pytest.approx(10 * cost.DAYS * 2 * (10 / 1024) / 1024, abs=1e-4)  # 5 MB: billed 10
    # a small run's job audits on DuckDB: no Athena query; half the runs small, half the queries
    assert lines(cost.estimate(replace(big_runs, single_job_share=1)))[gate_line]["quantity"] == 0
    half = lines(cost.estimate(replace(big_runs, single_job_share=0.5)))[gate_line]["quantity"]
    assert half == pytest.approx(gate["quantity"] / 2, abs=1e-4)


@pytest.mark.parametrize(
    ("params", "parameter", "problem"),
    [
        ({"stored_gb": "-1"}, "stored_gb", "between 0 and"),
        ({"stored_gb": "1e12"}, "stored_gb", "between 0 and"),
        ({"stored_gb": "lots"}, "stored_gb", "must be a number"),
        ({"stored_gb": "nan"}, "stored_gb", "between 0 and"),
        ({"queries_per_day": True}, "queries_per_day", "must be a number"),
        ({"lambda_memory_mb": 64}, "lambda_memory_mb", "between 128 and"),
        ({"region": "mars-1"}, "region", "no price table"),
        ({"storage_split": "STANDARD:0.5"}, "storage_split", "add up to 0.5"),
        ({"storage_split": "TAPE:1"}, "storage_split", "unknown storage class"),
        ({"storage_split": "STANDARD"}, "storage_split", "CLASS:SHARE"),
        ({"storage_split": {"STANDARD": 2, "GLACIER": -1}}, "storage_split", "between 0 and 1"),
        ({"storage_split": []}, "storage_split", "must map"),
        ({"stored_tb": "1"}, "stored_tb", "unknown parameter"),
    ],
)
def test_a_bad_parameter_is_refused_with_its_name(params, parameter, problem):
    with pytest.raises(cost.UsageError) as caught:
        cost.parse_usage(params, cost.SCENARIOS["medium"])
    assert caught.value.parameter == parameter and problem in str(caught.value)


def test_get_and_post_cost(client, settings):
    default = client.http.get("/cost")
    assert default.status_code == 200
    body = json.loads(default.body)
    assert body["scenario"] == "this stage's configuration"
    assert body["usage"]["pipeline_runs_per_day"] == 86400 / settings.pipeline.window_seconds
    light = json.loads(
        client.http.get("/cost?scenario=light&stored_gb=1000&storage_split=STANDARD:0.5,GLACIER_IR:0.5").body
    )
    assert lines(light)[("S3", "storage GLACIER_IR")]["monthly"] == round(500 * 0.004, 2)
    posted = client.http.post(
        "/cost",
        headers={"Content-Type": "application/json"},
        body=json.dumps({"scenario": "heavy", "storage_split": {"STANDARD": 1}, "firehose_gb_per_day": 10}),
    )
    assert posted.status_code == 200 and ("Firehose", "data ingested") in lines(json.loads(posted.body))


@pytest.mark.parametrize(
    ("method", "path", "body", "message"),
    [
        ("get", "/cost?stored_gb=-5", None, "stored_gb: must be between 0 and"),
        ("get", "/cost?scenario=huge", None, "scenario: unknown scenario 'huge'"),
        ("get", "/cost?region=eu-west-9", None, "region: no price table"),
        ("post", "/cost", "[1, 2]", "body: must be a JSON object"),
        ("post", "/cost", "{not json", "body: not valid JSON"),
        ("post", "/cost", '{"glue_dpus": "many"}', "glue_dpus: must be a number"),
        ("post", "/cost", '{"scenario": {}}', "scenario: unknown scenario {}"),  # found by schemathesis
        ("post", "/cost", '{"region": ["us-east-1"]}', "region: no price table"),
    ],
)
def test_bad_requests_get_a_400_naming_the_parameter(client, method, path, body, message):
    kwargs = {"headers": {"Content-Type": "application/json"}, "body": body} if method == "post" else {}
    response = getattr(client.http, method)(path, **kwargs)
    assert response.status_code == 400, response.body
    assert message in json.loads(response.body)["Message"]


def test_a_spark_batch_is_priced_as_its_workers_times_its_minutes_and_makes_the_run_a_job_per_dataset(settings):
    """Batches past [pipeline] spark_bytes (or of a contract that says spark) are priced as engines.spark_run
    prices them: the driver and an executor per spark_worker_bytes, auto scaled; such a run is a job per dataset."""
    from chalicelib.pipeline.engines import spark_run

    small = cost.usage_for_stage(settings)
    assert (small.spark_share, small.spark_jobs_per_run) == (0.0, 0.0)
    assert not [k for k in lines(cost.estimate(small)) if k[1].startswith("Spark")]
    # 100 files a day of 10 GB over the stage's runs: each dataset's batch is past 8 GiB
    big = cost.usage_for_stage(settings, replace(cost.SCENARIOS["medium"], files_per_day=100, avg_file_mb=10_000))
    batch = 100 * 10_000 * 2**20 / big.pipeline_runs_per_day / big.datasets_per_run
    assert batch >= settings.pipeline.spark_bytes and big.spark_share == 1.0
    assert big.spark_dpu_minutes_per_job == pytest.approx(spark_run(batch, settings.pipeline).dpu_hours * 60, rel=1e-3)
    assert big.glue_jobs_per_run == big.datasets_per_run + 1 and big.spark_jobs_per_run == big.datasets_per_run
    got = lines(cost.estimate(big))
    spark = got[("Glue", "Spark batch jobs (workers x minutes, auto scaled)")]
    runs = big.pipeline_runs_per_day * cost.DAYS
    assert spark["quantity"] == pytest.approx(
        runs * big.datasets_per_run * big.spark_dpu_minutes_per_job / 60, rel=1e-3
    )
    single = got[("Glue", "ETL jobs (per-run minimum billed; one job for a small run)")]
    assert single["quantity"] == pytest.approx(runs * 1 * 2 * 60 / 3600, rel=1e-3)  # only the master merge is left
    # a contract that always runs on Spark: its share of the batches, whatever their size
    contracts = dict(settings.datasets, orders=replace(settings.datasets["orders"], engine="spark"))
    one = cost.usage_for_stage(replace(settings, datasets=contracts))
    assert one.spark_share == pytest.approx(1 / len(settings.datasets), abs=1e-4) and one.per_dataset_share == 1.0


def test_the_engines_table_shows_where_spark_bytes_sits_and_what_each_engine_costs(settings):
    engines = cost.estimate_for(settings, None, {}, None)["engines"]
    gib = 2**30
    rows = {row["bytes"] // gib if row["bytes"] >= gib else row["bytes"] / gib: row for row in engines["rows"]}
    assert sorted(rows) == [0.25, 2, 8, 32, 128] and engines["spark_bytes"] == 8 * gib
    assert [rows[k]["chosen"] for k in sorted(rows)] == ["single", "single", "spark", "spark", "spark"]
    # an executor per 2 GiB and a driver, at most 20; one node moves to G.2X past 10 GiB
    assert [rows[k]["spark"]["workers"] for k in (2, 8, 32, 128)] == ["2 G.1X", "5 G.1X", "17 G.1X", "20 G.1X"]
    assert [rows[k]["single"]["workers"] for k in (8, 32)] == ["2 G.1X", "2 G.2X"]
    for row in engines["rows"]:
        for engine in ("single", "spark"):
            assert row[engine]["price"] == pytest.approx(row[engine]["dpu_hours"] * 0.44, abs=0.01)
            assert row[engine]["dpu_hours"] >= round(2 / 60, 3)  # a minute of two workers at least
    # from the threshold Spark finishes sooner; where one node needs a G.2X it is cheaper too
    for k in (8, 32, 128):
        assert rows[k]["spark"]["minutes"] < rows[k]["single"]["minutes"] / 1.5
    for k in (32, 128):
        assert rows[k]["spark"]["price"] < rows[k]["single"]["price"]


def test_an_estimate_for_a_region_without_prices_is_labelled_with_the_prices_it_uses(settings):
    """Not US East prices under another region's name: the estimate says whose prices it has, and why."""
    estimate = cost.estimate_for(replace(settings, region="ap-southeast-2"), None, {}, None)
    assert estimate["region"] == "us-east-1" and estimate["usage"]["region"] == "us-east-1"
    assert estimate["notice"] == (
        "no price table for ap-southeast-2 (the stage's region): this estimate is at us-east-1 prices, which may "
        "differ; known: us-east-1, us-east-2, us-west-2"
    )
    assert cost.estimate_for(settings, None, {}, None)["notice"] is None  # us-east-1: its own prices
