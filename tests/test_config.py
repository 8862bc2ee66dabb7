import json

import pytest
from conftest import CONFIG, ROOT

from chalicelib.config import load_settings, parse_contract, parse_settings
from chalicelib.errors import ConfigError

GOOD_SETTINGS = (CONFIG / "lakehouse.toml").read_text()
ORDERS = (CONFIG / "datasets" / "orders.toml").read_text()


def files(settings_text=GOOD_SETTINGS, **contracts):
    return {
        "lakehouse.toml": settings_text,
        **{f"datasets/{k}.toml": v for k, v in (contracts or {"orders": ORDERS}).items()},
    }


def test_the_suites_config_has_the_seed_datasets(settings):  # the shipped one: test_fixture_config.py
    assert set(settings.datasets) == {"orders", "order_items", "products", "customers", "clickstream", "reviews"}
    assert settings.datasets["clickstream"].formats == ("jsonl",)
    assert settings.datasets["order_items"].primary_key == ("order_id", "product_id")
    assert settings.datasets["products"].partition_column == "department_id"
    assert settings.datasets["orders"].columns[4].type == "decimal(12,2)"


def test_stage_names_are_derived_and_overridable(settings):
    local = settings.stage("local")
    assert local.bucket == "lakehouse-local-lake"
    assert local.ingest_queue == "lakehouse-local-ingest"
    assert local.lease_seconds == 30 and not local.enforce_tls
    prod = settings.stage("prod")
    assert prod.lease_seconds == 960 and prod.enforce_tls and prod.retry_mode == "adaptive"


def test_chalice_stage_environment_matches_lakehouse_toml(settings):
    """The Lambdas find their stage through .chalice/config.json. What config/ can change there (bucket, queue,
    account) is written by `lakehouse deploy` (and `lakehouse up`), never by hand: the file holds the rest."""
    from deploy.chalice_project import stage_environment

    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    for name, chalice_stage in config["stages"].items():
        env = chalice_stage["environment_variables"]
        local = {"LAKEHOUSE_SQL_ENGINE": "duckdb"} if name == "local" else {}  # AWS stages: Athena
        written = stage_environment(settings.for_account("123456789012").stage(name), "123456789012")
        assert env == {
            "LAKEHOUSE_STAGE": name,
            "LAKEHOUSE_API_AUTH": {"local": "none", "dev": "iam", "prod": "iam"}[name],
            **local,
            **(written if name == "local" else {}),  # as `lakehouse up` writes it (moto's account)
        }


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [
        (
            '[project]\nname = "lakehouse"\nregion = "us-east-1"\n[stages.local]\nlease_seconds = "ten"\n',
            "stages.local.lease_seconds",
            "ten",
        ),
        ('[project]\nname = "lakehouse"\nregion = "mars-1"\n[stages.local]\n', "project.region", "mars-1"),
        ('zones = 3\n[project]\nname = "lakehouse"\nregion = "us-east-1"\n[stages.local]\n', "zones", 3),
        (
            '[project]\nname = "lakehouse"\nregion = "us-east-1"\n[stages.local]\nretry_mode = "hope"\n',
            "stages.local.retry_mode",
            "hope",
        ),
        (
            '[project]\nname = "lakehouse"\nregion = "us-east-1"\n[stages.local]\nbuckit = "x"\n',
            "stages.local.buckit",
            "x",
        ),
        (
            '[project]\nname = "lakehouse"\nregion = "us-east-1"\n[limits]\nmax_file_bytes = -1\n[stages.local]\n',
            "limits.max_file_bytes",
            -1,
        ),
        (
            '[project]\nname = "lakehouse"\nregion = "us-east-1"\n[zones]\nraw = "data/"\nprocessed = "data/"\n'
            "[stages.local]\n",
            "zones.processed",
            "data/",
        ),
        ('[project]\nname = "lakehouse"\nregion = "us-east-1"\n', "stages", {}),
        (  # Glue runs a G.1X Spark job on 2-299 workers
            '[project]\nname = "lakehouse"\nregion = "us-east-1"\n'
            "[pipeline]\nspark_max_workers = 300\n[stages.local]\n",
            "pipeline.spark_max_workers",
            300,
        ),
        (
            '[project]\nname = "lakehouse"\nregion = "us-east-1"\n[pipeline]\nspark_max_workers = 1\n[stages.local]\n',
            "pipeline.spark_max_workers",
            1,
        ),
        (
            '[project]\nname = "lakehouse"\nregion = "us-east-1"\n[stages.local]\nbucket = "Not_A_Bucket"\n',
            "stages.local.bucket",
            "Not_A_Bucket",
        ),
    ],
)
def test_bad_settings_name_file_key_and_value(text, key, value):
    with pytest.raises(ConfigError) as err:
        parse_settings(files(text))
    assert (err.value.file, err.value.key, err.value.value) == ("lakehouse.toml", key, value)
    assert f"lakehouse.toml: {key} = {value!r}" in str(err.value)


def test_toml_syntax_error_names_the_line():
    with pytest.raises(ConfigError) as err:
        parse_settings(files('[project]\nname = "lakehouse\n'))
    assert err.value.key == "(syntax)"
    assert str(err.value) == "lakehouse.toml:2:18: not valid TOML: Illegal character '\\n'"


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [
        ('primary_key = ["id"]\n[columns]\nid = { type = "varchar" }\n', "columns.id.type", "varchar"),
        (
            'primary_key = ["id"]\n[columns]\nid = { type = "decimal(40,2)", nullable = false }\n',
            "columns.id.type",
            "decimal(40,2)",
        ),
        ('primary_key = ["nope"]\n[columns]\nid = { type = "string", nullable = false }\n', "primary_key", ["nope"]),
        ('primary_key = ["id"]\n[columns]\nid = { type = "string" }\n', "primary_key", ["id"]),
        (
            'primary_key = ["id"]\nformats = ["xml"]\n[columns]\nid = { type = "string", nullable = false }\n',
            "formats",
            ["xml"],
        ),
        (
            'primary_key = ["id"]\npartition_column = "day"\n[columns]\nid = { type = "string", nullable = false }\n',
            "partition_column",
            "day",
        ),
        (
            'primary_key = ["id"]\ndelimiter = ";;"\n[columns]\nid = { type = "string", nullable = false }\n',
            "delimiter",
            ";;",
        ),
        (
            'primary_key = ["id"]\n[columns]\nid = { type = "string", nullable = false, unique = true }\n',
            "columns.id.unique",
            True,
        ),
        (
            'primary_key = ["id"]\nengine = "flink"\n[columns]\nid = { type = "string", nullable = false }\n',
            "engine",
            "flink",
        ),
        ('primary_key = ["id"]\n', "columns", {}),
        ('primary_key = ["id"]\n[columns]\nId = { type = "string", nullable = false }\n', "columns.Id", "Id"),
    ],
)
def test_bad_contracts_name_file_key_and_value(text, key, value):
    with pytest.raises(ConfigError) as err:
        parse_contract("datasets/things.toml", text)
    assert (err.value.file, err.value.key, err.value.value) == ("datasets/things.toml", key, value)


def test_a_settings_file_without_contracts_is_refused():
    with pytest.raises(ConfigError, match="no dataset contracts"):
        parse_settings({"lakehouse.toml": GOOD_SETTINGS})


def test_unknown_stage_lists_the_known_ones(settings):
    with pytest.raises(ConfigError, match=r"no such stage; known: \['dev', 'local', 'prod'\]"):
        settings.stage("qa")


def test_load_from_directory_equals_load_from_s3(provisioned, settings, stage):
    from chalicelib.config import load_settings_from_s3

    assert load_settings_from_s3(provisioned.s3, stage.bucket, settings.zones.config) == load_settings(CONFIG)


def test_the_accepted_queue_must_be_fifo():
    text = GOOD_SETTINGS.replace("[stages.dev]\n", '[stages.dev]\naccepted_queue = "lakehouse-dev-accepted"\n')
    with pytest.raises(ConfigError) as err:
        parse_settings(files(text))
    assert err.value.key == "stages.dev.accepted_queue" and "FIFO" in str(err.value)


def test_a_foreign_key_cycle_between_contracts_is_refused_when_the_config_loads():
    a = 'primary_key = ["id"]\n[columns]\nid = { type = "string", nullable = false }\nb_id = { type = "string" }\n'
    b = 'primary_key = ["id"]\n[columns]\nid = { type = "string", nullable = false }\na_id = { type = "string" }\n'
    a += '[foreign_keys]\nb_id = "b.id"\n'
    b += '[foreign_keys]\na_id = "a.id"\n'
    with pytest.raises(ConfigError) as refused:
        parse_settings(files(a=a, b=b))
    assert str(refused.value) == "datasets/a.toml: foreign_keys = 'a -> b -> a': foreign keys form a cycle"
    self_reference = a.replace('b_id = "b.id"', 'b_id = "a.id"')  # a parent row in the same dataset is fine
    assert parse_settings(files(a=self_reference, b=b.replace('a_id = "a.id"', 'a_id = "b.id"'))).datasets


def test_a_config_file_that_is_not_utf8_is_refused_naming_it(tmp_path):
    from chalicelib.config import config_files

    (tmp_path / "datasets").mkdir()
    (tmp_path / "lakehouse.toml").write_text(GOOD_SETTINGS)
    (tmp_path / "datasets" / "orders.toml").write_bytes("# commandes passées\n".encode("latin-1") + ORDERS.encode())
    with pytest.raises(ConfigError, match=r"orders.toml: \(encoding\) = None: not UTF-8: invalid continuation byte"):
        config_files(tmp_path)
