"""Quality rules: validated when the config loads, computed in one scan on real Delta tables (DuckDB), judged,
kept as history, and gating the run."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest
from deltalake import write_deltalake
from lakehouse_etl.lake import Lake
from lakehouse_etl.local_sql import DuckDBEngine

from chalicelib.athena import QUERY_STRING_LIMIT, Athena
from chalicelib.config import parse_contract, parse_settings
from chalicelib.errors import ConfigError
from chalicelib.ledger import FileRecord, FileResult, InMemoryLedger, Status
from chalicelib.pipeline.steps import RunSteps
from chalicelib.quality import gate as quality
from chalicelib.quality.dqdl import to_dqdl
from chalicelib.quality.results import TableQuality

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
ORDERS = """
primary_key = ["order_id"]
[columns]
order_id = { type = "string", nullable = false }
customer_id = { type = "string", nullable = false }
status = { type = "string" }
total_amount = { type = "decimal(12,2)" }
email = { type = "string" }
order_ts = { type = "timestamp" }
order_date = { type = "date" }
"""


def contract_with(rules: str, text: str = ORDERS, file: str = "datasets/orders.toml"):
    return parse_contract(file, text + rules)


@pytest.mark.parametrize(
    ("rules", "key", "problem"),
    [
        ('[[rules]]\ncheck = "not_null"\ncolumn = "nope"', "rules[0].column", "no such column"),
        ('[[rules]]\ncheck = "range"\ncolumn = "status"\nmin = 0', "rules[0].column", "numeric columns, not string"),
        ('[[rules]]\ncheck = "pattern"\ncolumn = "total_amount"\npattern = "x"', "rules[0].column", "string"),
        ('[[rules]]\ncheck = "pattern"\ncolumn = "email"\npattern = "a("', "rules[0].pattern", "not a valid regular"),
        (
            '[[rules]]\ncheck = "freshness"\ncolumn = "status"\nmax_age_hours = 1',
            "rules[0].column",
            "date or timestamp",
        ),
        ('[[rules]]\ncheck = "freshness"\ncolumn = "order_ts"', "rules[0].max_age_hours", "is required"),
        (
            '[[rules]]\ncheck = "unique"\ncolumns = ["order_id", "nope"]',
            "rules[0].columns",
            "column 'nope' is not in [columns]",
        ),
        ('[[rules]]\ncheck = "accepted_values"\ncolumn = "status"\nvalues = []', "rules[0].values", "at least one"),
        ('[[rules]]\ncheck = "range"\ncolumn = "total_amount"', "rules[0].min", "needs min, max or both"),
        ('[[rules]]\ncheck = "range"\ncolumn = "total_amount"\nmin = 5\nmax = 1', "rules[0].max", "below min"),
        ('[[rules]]\ncheck = "row_count"\nmin = -1', "rules[0].min", "never negative"),
        ('[[rules]]\ncheck = "volume"\nmax_change_percent = 50\nhistory = 2', "rules[0].min_history", "above history"),
        ('[[rules]]\ncheck = "volume"', "rules[0].max_change_percent", "is required"),
        ('[[rules]]\ncheck = "nullness"\ncolumn = "email"', "rules[0].check", "must be one of"),
        ('[[rules]]\ncheck = "not_null"\ncolumn = "email"\nseverity = "fatal"', "rules[0].severity", "must be one of"),
        ('[[rules]]\ncheck = "not_null"\ncolumn = "email"\nvalues = ["a"]', "rules[0].values", "unknown key"),
        ('[[rules]]\ncheck = "references"\ncolumn = "email"\nto = "customers"', "rules[0].to", "must match"),
        (
            '[[rules]]\ncheck = "not_null"\ncolumn = "email"\n[[rules]]\ncheck = "not_null"\ncolumn = "email"',
            "rules[1].name",
            "another rule has this name",
        ),
    ],
)
def test_a_wrong_rule_is_refused_when_the_config_loads(rules, key, problem):
    with pytest.raises(ConfigError) as caught:
        contract_with(rules)
    assert caught.value.key == key and problem in str(caught.value)
    assert "datasets/orders.toml" in str(caught.value)


def test_rules_must_be_an_array_of_tables():
    with pytest.raises(ConfigError, match="array of tables"):
        contract_with("", "rules = 3\n" + ORDERS)


@pytest.mark.parametrize(
    ("rules", "key", "problem"),
    [  # a key another check type takes is not one of this check's parameters
        (
            '[[rules]]\ncheck = "range"\ncolumn = "total_amount"\nmax = 5\nvalues = ["a"]',
            "rules[0].values",
            "unknown key of a range rule; expected one of ['column', 'max', 'min', 'name', 'severity']",
        ),
        (
            '[[rules]]\ncheck = "not_null"\ncolumn = "email"\nmax_age_hours = 1',
            "rules[0].max_age_hours",
            "unknown key of a not_null rule; expected one of ['column', 'name', 'severity']",
        ),
        (
            '[[rules]]\ncheck = "volume"\ncolumn = "email"\nmax_change_percent = 5',
            "rules[0].column",
            "unknown key of a volume rule; expected one of ['history', 'max_change_percent', 'min_history', 'name', "
            "'severity']",
        ),
        (
            '[[rules]]\ncheck = "volume"\nmax_change_percent = 5\nmin_history = "3"',
            "rules[0].min_history",
            "must be a whole number, at least 1",
        ),
        ('[[rules]]\ncheck = "volume"\nmax_change_percent = 5\nhistory = 0', "rules[0].history", "at least 1"),
        ('[[rules]]\ncheck = "accepted_values"\ncolumn = "status"\nvalues = [1]', "rules[0].values[0]", "string"),
    ],
)
def test_each_check_type_takes_its_own_parameters(rules, key, problem):
    with pytest.raises(ConfigError) as caught:
        contract_with(rules)
    assert caught.value.key == key and problem in str(caught.value)
    assert str(caught.value).startswith(f"datasets/orders.toml: {key} = ")


def test_a_rule_is_its_check_types_struct_holding_that_checks_parameters_only():
    from chalicelib.config.rules import RULES, RangeRule, VolumeRule

    range_, volume = contract_with(
        '[[rules]]\ncheck = "range"\ncolumn = "total_amount"\nmax = 5\n'
        '[[rules]]\ncheck = "volume"\nmax_change_percent = 20\nseverity = "warn"\n'
    ).rules
    assert range_ == RangeRule(name="range(total_amount)", column="total_amount", max=5)
    assert volume == VolumeRule(name="volume", severity="warn", max_change_percent=20)
    assert (range_.check, volume.check, volume.columns, volume.history) == ("range", "volume", (), 10)
    assert not hasattr(range_, "max_change_percent") and not hasattr(volume, "column")
    assert RULES["range"] is RangeRule


def test_every_check_type_has_its_rule_struct_and_every_rule_struct_its_check_type():
    from chalicelib.config.rules import RULES
    from chalicelib.quality.checks import CHECKS

    assert list(RULES) == list(CHECKS)


def test_a_reference_to_a_dataset_column_that_does_not_exist_is_refused(settings):
    from chalicelib.config import config_files

    files = config_files(settings_root())
    files["datasets/reviews.toml"] += '\n[[rules]]\ncheck = "references"\ncolumn = "customer_id"\nto = "customers.id"\n'
    with pytest.raises(ConfigError) as caught:
        parse_settings(files)
    assert caught.value.key.endswith(".to") and "no such dataset column" in str(caught.value)
    assert "datasets/reviews.toml" in str(caught.value)


def settings_root():
    from conftest import CONFIG

    return CONFIG


RULES = """
[[rules]]
check = "unique"
columns = ["order_id"]
[[rules]]
check = "not_null"
column = "email"
severity = "warn"
[[rules]]
check = "accepted_values"
column = "status"
values = ["placed", "shipped"]
[[rules]]
check = "range"
column = "total_amount"
min = 0
max = 100.5
[[rules]]
check = "pattern"
column = "email"
pattern = '[a-z0-9]+@example\\.com'
severity = "warn"
[[rules]]
check = "references"
column = "customer_id"
to = "customers.customer_id"
[[rules]]
check = "freshness"
column = "order_ts"
max_age_hours = 24
[[rules]]
name = "fresh_days"
check = "freshness"
column = "order_date"
max_age_hours = 1
severity = "warn"
[[rules]]
check = "row_count"
min = 1
max = 5
"""


@pytest.fixture
def lake(tmp_path, settings):
    orders = contract_with(RULES)
    customers = parse_contract(
        "datasets/customers.toml",
        'primary_key = ["customer_id"]\n[columns]\ncustomer_id = { type = "string", nullable = false }\n',
    )
    return Lake(str(tmp_path), replace(settings, datasets={"orders": orders, "customers": customers}))


def write_orders(lake, rows, source_file="b/raw/orders/o.csv#v1", mode="overwrite"):
    """Rows of processed/orders, each from `source_file` (the lineage column the ETL writes)."""
    columns = ["order_id", "customer_id", "status", "total_amount", "email", "order_ts", "order_date", "_source_file"]
    schema = pa.schema(
        [
            ("order_id", pa.string()),
            ("customer_id", pa.string()),
            ("status", pa.string()),
            ("total_amount", pa.decimal128(12, 2)),
            ("email", pa.string()),
            ("order_ts", pa.timestamp("us", tz="UTC")),
            ("order_date", pa.date32()),
            ("_source_file", pa.string()),
        ]
    )
    table = pa.Table.from_pylist([dict(zip(columns, [*r, source_file], strict=True)) for r in rows], schema)
    write_deltalake(lake.processed("orders"), table, mode=mode)


def ts(day: int, hour: int = 0) -> datetime:
    return datetime(2025, 3, day, hour, tzinfo=UTC)


ROWS = [  # each anomaly planted once, some twice
    ("O1", "C1", "placed", Decimal("10.00"), "a@example.com", ts(10, 6), date(2025, 3, 10)),
    ("O1", "C1", "placed", Decimal("10.00"), "a@example.com", ts(9), date(2025, 3, 9)),  # duplicate key
    ("O2", "C2", "lost", Decimal("10.00"), None, ts(9), date(2025, 3, 9)),  # bad status, null email
    ("O3", "C9", "shipped", Decimal("-1.00"), "not an email", ts(8), date(2025, 3, 8)),  # orphan, range, pattern
    ("O4", "C2", None, Decimal("200.00"), "B@example.com", ts(8), date(2025, 3, 8)),  # range, pattern
    ("O'5", "C1", "o'neil", Decimal("1.00"), "c@example.com", ts(8), date(2025, 3, 8)),  # quote in a value
]


def test_one_scan_counts_every_rule_exactly_with_failing_keys(lake):
    write_orders(lake, ROWS)
    write_deltalake(lake.processed("customers"), pa.table({"customer_id": ["C1", "C2"]}))
    engine = DuckDBEngine(lake)
    contract = lake.settings.datasets["orders"]
    rows, results = quality.scan(engine, contract, engine.tables(), NOW, 60)
    by_rule = {r.rule: r for r in results}
    assert rows == 6
    assert {r: (c.observed, c.passed) for r, c in by_rule.items()} == {
        "unique(order_id)": (2, False),
        "not_null(email)": (1, False),
        "accepted_values(status)": (2, False),
        "range(total_amount)": (2, False),
        "pattern(email)": (2, False),
        "references(customer_id)": (1, False),
        "freshness(order_ts)": (6.0, True),  # newest 06:00 on the 10th, 6 hours before NOW
        "fresh_days": (-12.0, True),  # a date counts until the end of its day
        "row_count": (6, False),
    }
    assert by_rule["unique(order_id)"].sample == ["O1"]
    assert by_rule["range(total_amount)"].sample == ["O3", "O4"]
    assert by_rule["accepted_values(status)"].sample == ["O'5", "O2"]
    assert by_rule["references(customer_id)"].sample == ["O3"]
    assert by_rule["row_count"].level == "ERROR" and by_rule["not_null(email)"].level == "WARN"


def test_one_scan_is_one_query(lake):
    write_orders(lake, ROWS)
    sql = quality.scan_sql(lake.settings.datasets["orders"], {"processed_orders", "processed_customers"})
    assert sql.count("FROM processed_orders") == 1
    assert sql.count("SELECT") == 3  # the scan, its window sub-select, the parent's distinct keys


def test_a_missing_parent_table_makes_every_reference_an_orphan(lake):
    write_orders(lake, ROWS[:3])
    engine = DuckDBEngine(lake)
    _, results = quality.scan(engine, lake.settings.datasets["orders"], engine.tables(), NOW, 60)
    assert {r.rule: r.observed for r in results}["references(customer_id)"] == 3


def test_a_table_with_zero_rows_and_a_table_that_does_not_exist(lake):
    write_orders(lake, [])
    engine = DuckDBEngine(lake)
    contract = lake.settings.datasets["orders"]
    for tables in (engine.tables(), set()):  # empty Delta table; no table at all
        rows, results = quality.scan(engine, contract, tables, NOW, 60)
        by_rule = {r.rule: r for r in results}
        assert rows == 0
        assert by_rule["row_count"].passed is False and by_rule["row_count"].detail == "the table has 0 rows"
        assert by_rule["freshness(order_ts)"].passed is False and by_rule["freshness(order_ts)"].detail == "no rows"
        assert all(by_rule[r].passed for r in ("unique(order_id)", "not_null(email)", "references(customer_id)"))


def test_stale_data_fails_freshness_with_its_age(lake):
    write_orders(lake, [ROWS[3]])
    engine = DuckDBEngine(lake)
    _, results = quality.scan(engine, lake.settings.datasets["orders"], engine.tables(), NOW, 60)
    fresh = {r.rule: r for r in results}["freshness(order_ts)"]
    assert (fresh.passed, fresh.observed) == (False, 60.0)
    assert fresh.detail == "newest order_ts is 2025-03-08 00:00:00+00, 60 h old"


def test_a_batch_scan_judges_only_the_batch_s_rows_and_looks_its_keys_up_in_the_whole_table(lake):
    """The gate reads what the batch wrote: an earlier batch's bad rows are not judged again, but a key of the batch
    that another row of the table holds fails `unique`, and the row count is the table's, from the Delta log."""
    write_orders(lake, ROWS[2:5], "b/raw/orders/old.csv#v1")  # an earlier batch: bad status, orphan, range, pattern
    write_orders(lake, [ROWS[0], (*ROWS[5][:2], "placed", *ROWS[5][3:])], "b/raw/orders/new.csv#v1", mode="append")
    write_orders(lake, [(*ROWS[1][:6], date(2025, 3, 10))], "b/raw/orders/other.csv#v1", mode="append")  # O1 again
    write_deltalake(lake.processed("customers"), pa.table({"customer_id": ["C1", "C2"]}))
    engine, contract = DuckDBEngine(lake), lake.settings.datasets["orders"]
    batch = quality.BatchScope(["b/raw/orders/new.csv#v1"], table_rows=6)

    rows, results = quality.scan(engine, contract, engine.tables(), NOW, 60, batch)
    by_rule = {r.rule: (r.observed, r.passed) for r in results}
    assert rows == 6  # the table's, as the ETL read it from the log
    assert by_rule["unique(order_id)"] == (1, False)  # the batch's O1 is also in another batch's row
    assert {r: by_rule[r] for r in ("accepted_values(status)", "range(total_amount)", "references(customer_id)")} == {
        "accepted_values(status)": (0, True),
        "range(total_amount)": (0, True),
        "references(customer_id)": (0, True),
    }
    assert by_rule["row_count"] == (6, False)  # max 5: judged on the whole table, not on the batch's 2 rows
    full_rows, full = quality.scan(engine, contract, engine.tables(), NOW, 60)  # lakehouse quality check --full
    assert full_rows == 6 and {r.rule: r.observed for r in full}["range(total_amount)"] == 2
    assert {r.rule: r.observed for r in full}["unique(order_id)"] == 2


def test_a_batch_scan_names_the_batch_s_partitions_as_literals_and_parses_as_trino(settings):
    import sqlglot

    orders = settings.datasets["orders"]
    batch = quality.BatchScope(["b/raw/orders/a.csv#v1", "b/raw/orders/o'b.csv#v2"], ["2025-03-01", "2025-03-02"], 9)
    sql = quality.scan_sql(orders, {"processed_orders", "processed_customers"}, batch)
    where = """"order_date" IN (DATE '2025-03-01', DATE '2025-03-02') AND "_source_file" IN ("""
    files = "SELECT v FROM (VALUES ('b/raw/orders/a.csv#v1'), ('b/raw/orders/o''b.csv#v2')) AS l(v)"
    assert f"FROM processed_orders WHERE {where}{files})) t" in sql
    for contract in settings.datasets.values():  # every shipped contract's batch scan is Trino (Athena) SQL
        sqlglot.parse_one(
            quality.scan_sql(contract, {quality.table_name(d) for d in settings.datasets}, batch), read="trino"
        )
    nothing = quality.BatchScope(["b/raw/orders/a.csv#v1"], [], 9)  # every row of the batch was rejected
    assert "FROM processed_orders WHERE 1 = 0) t" in quality.scan_sql(orders, set(), nothing)


def test_a_1000_file_batch_is_selected_by_its_number_in_short_sql_that_athena_takes(settings, lake):
    """Defect 2 of issue 27: the gate named every file id of the batch, once per scan and once more per `unique`
    rule, and passed Athena's 262,144-byte query string at about 900 files. The ETL stamps each row with its batch
    (`_batch`), and the gate selects by it: the same short SQL whatever the batch's size, which the local stage runs
    where it refuses the old SQL as Athena refuses it."""
    from botocore.exceptions import ClientError

    files = [
        f"lakehouse-dev-123456789012/raw/orders/ingest_date=2025-03-01/orders-2025-03-01T13-05-{i:06d}.csv#{'v' * 36}"
        for i in range(1000)
    ]
    tables = {quality.table_name(d) for d in settings.datasets}
    for contract in settings.datasets.values():
        by_number = quality.scan_sql(contract, tables, quality.BatchScope(files, ["2025-03-01"], 9, number=7))
        assert len(by_number.encode()) < 8_000 and "lakehouse-dev" not in by_number, contract.name
        assert '"_batch" = 7' in by_number
    orders = settings.datasets["orders"]
    by_files = quality.scan_sql(orders, tables, quality.BatchScope(files, ["2025-03-01"], 9))  # the old SQL
    assert len(by_files.encode()) > QUERY_STRING_LIMIT
    with pytest.raises(ClientError) as refused:
        DuckDBEngine(lake).run(by_files)
    assert refused.value.response["Error"]["Code"] == "InvalidRequestException"
    assert "less than or equal to 262144" in refused.value.response["Error"]["Message"]


def test_a_batch_scan_by_number_judges_the_rows_the_batch_stamped_and_not_older_unstamped_ones(lake):
    """Rows of the batch carry its number; rows merged before the column existed read NULL there and are not the
    batch's (a table made before `_batch` keeps working)."""
    write_orders(lake, ROWS[2:5], "b/raw/orders/old.csv#v1")  # bad rows, no `_batch` column (an older table)
    stamped = pa.Table.from_pylist(
        [{"order_id": "O9", "customer_id": "C1", "status": "lost", "order_date": date(2025, 3, 10), "_batch": 3}]
    )
    write_deltalake(lake.processed("orders"), stamped, mode="append", schema_mode="merge")
    write_deltalake(lake.processed("customers"), pa.table({"customer_id": ["C1", "C2"]}))
    engine, contract = DuckDBEngine(lake), lake.settings.datasets["orders"]
    _, results = quality.scan(engine, contract, engine.tables(), NOW, 60, quality.BatchScope(["f"], None, 4, 3))
    by_rule = {r.rule: (r.observed, r.sample) for r in results}
    assert by_rule["accepted_values(status)"] == (1, ["O9"])  # the batch's own bad row, not the older ones
    assert by_rule["range(total_amount)"][0] == 0 and by_rule["references(customer_id)"][0] == 0


def test_a_refused_athena_scan_is_a_failed_scan_not_an_uncaught_client_error(lake):
    """Athena refuses a too-long query with a ClientError (InvalidRequestException) before it runs: the gate took it
    for a crash, the run failed unaudited and a later master merge published the batch. It is a failed scan."""
    from botocore.exceptions import ClientError

    class RefusingAthena(FailingAthena):
        def start_query_execution(self, **kwargs):
            error = {
                "Code": "InvalidRequestException",
                "Message": "Member must have length less than or equal to 262144",
            }
            raise ClientError({"Error": error}, "StartQueryExecution")

    athena = Athena(RefusingAthena(), "db", "wg", "s3://b/r/", sleep=lambda s: None)
    _, results = quality.scan(athena, lake.settings.datasets["orders"], {"processed_orders"}, NOW, 60)
    assert [(r.rule, r.level, r.passed) for r in results] == [("scan", "ERROR", False)]
    assert results[0].detail == (
        "the quality query was refused: InvalidRequestException: Member must have length less than or equal to 262144"
    )


class FailingAthena:
    """An Athena client whose queries fail, as a wrong column or a dropped table makes them."""

    def start_query_execution(self, **kwargs):
        return {"QueryExecutionId": "q-1"}

    def get_query_execution(self, QueryExecutionId):
        status = {"State": "FAILED", "StateChangeReason": "COLUMN_NOT_FOUND: line 1:8: Column 'x' cannot be resolved"}
        return {"QueryExecution": {"Status": status}}


def test_a_failed_athena_scan_is_an_error_that_stops_the_publish(lake):
    athena = Athena(FailingAthena(), "db", "wg", "s3://b/r/", sleep=lambda s: None)
    _, results = quality.scan(athena, lake.settings.datasets["orders"], {"processed_orders"}, NOW, 60)
    assert [(r.rule, r.level) for r in results] == [("scan", "ERROR")]
    assert "Athena query q-1 FAILED: COLUMN_NOT_FOUND" in results[0].detail


@pytest.mark.parametrize(
    ("loaded", "history", "passed", "observed"),
    [
        (100, [], True, None),  # no history: not judged
        (100, [90, 110], True, None),  # still fewer loads than min_history
        (120, [100, 90, 110, 5000], True, 14.3),  # median 105: the outlier does not move it
        (40, [100, 90, 110], False, -60.0),
        (0, [100, 90, 110], False, -100.0),
    ],
)
def test_volume_against_the_median_of_earlier_loads(loaded, history, passed, observed):
    contract = contract_with('[[rules]]\ncheck = "volume"\nmax_change_percent = 50\nhistory = 4')
    _, [result] = quality.evaluate(contract, None, NOW, loads=quality.Loads(loaded, history))
    assert (result.rule, result.passed, result.observed) == ("volume", passed, observed)


def test_volume_is_judged_through_the_check_interface_in_the_contracts_order(lake):
    """The gate judges a volume rule like any other, in its place among the contract's rules, from the loads it is
    given (none given, as by `lakehouse quality check`: not judged); a failed scan still judges it."""
    write_orders(lake, ROWS[:1])
    engine = DuckDBEngine(lake)
    contract = contract_with(
        '[[rules]]\ncheck = "not_null"\ncolumn = "email"\n'
        '[[rules]]\ncheck = "volume"\nmax_change_percent = 50\nmin_history = 1\n'
        '[[rules]]\ncheck = "row_count"\nmin = 1\n'
    )
    assert quality.earlier_loads(contract) == 10
    _, results = quality.scan(engine, contract, engine.tables(), NOW, 60, loads=quality.Loads(10, [100]))
    assert [(r.rule, r.passed, r.observed) for r in results] == [
        ("not_null(email)", True, 0),
        ("volume", False, -90.0),
        ("row_count", True, 1),
    ]
    _, results = quality.scan(engine, contract, engine.tables(), NOW, 60)
    assert [r.rule for r in results] == ["not_null(email)", "row_count"]
    athena = Athena(FailingAthena(), "db", "wg", "s3://b/r/", sleep=lambda s: None)
    _, results = quality.scan(athena, contract, {"processed_orders"}, NOW, 60, loads=quality.Loads(10, [100]))
    assert [(r.rule, r.passed) for r in results] == [("scan", False), ("volume", False)]


def loaded_run(ledger, lake, rows, merged):
    """A run whose one orders batch merged `merged` rows, `rows` written to the table: the run's name."""
    name = ledger.begin_run().name
    record = FileRecord(f"b/raw/orders/{name}#v1", "b", f"raw/orders/{name}", "v1", "orders", NOW.isoformat())
    file_id = ledger.finish(ledger.claim(record, now=NOW).record, Status.VALID).file_id
    batch = ledger.open_batch("orders")
    ledger.close_batch(batch, 1, {file_id: FileResult(merged, 0)})
    ledger.save_plan(ledger.get_run(name), {"levels": [[{"dataset": "orders", "batch": batch.number}]]}, 1, 1)
    write_orders(lake, rows, file_id)
    return name


def test_the_run_step_judges_a_new_check_type_on_earlier_loads_with_no_code_of_its_own(lake, monkeypatch):
    """The gate step asks each check type how many earlier loads it needs: a new check type judged from the load
    history (as volume is) needs no change to the step."""
    import msgspec

    from chalicelib.config import rules
    from chalicelib.quality import checks

    class NoDropRule(rules.Rule, frozen=True, kw_only=True, tag="no_drop"):
        loads: int = 2

    class NoDrop(checks.Check[NoDropRule]):
        name, scanned = "no_drop", False

        def earlier_loads(self, rule):
            return rule.loads

        def judge(self, rule, index, seen):
            least = min(seen.earlier or [0])
            return self.result(rule, seen.loaded >= least, seen.loaded, detail=f"{list(seen.earlier or [])}")

        def threshold(self, rule):
            return f"at least the fewest of the last {rule.loads} loads"

    monkeypatch.setitem(rules.RULES, "no_drop", NoDropRule)
    monkeypatch.setitem(checks.CHECKS, "no_drop", NoDrop())
    contract = contract_with('[[rules]]\ncheck = "no_drop"\n')
    assert contract.rules == (NoDropRule(name="no_drop"),) and msgspec.structs.asdict(contract.rules[0])["loads"] == 2
    settings = replace(lake.settings, datasets={**lake.settings.datasets, "orders": contract})
    ledger = InMemoryLedger()
    steps = RunSteps(settings, settings.stage("local"), ledger)
    engine = DuckDBEngine(replace(lake, settings=settings))
    details = []
    for loaded in (300, 200, 100, 250):
        name = loaded_run(ledger, lake, ROWS[:1], loaded)
        report = steps.quality(name, engine, NOW)
        ledger.end_run(name, "SUCCEEDED")
        (check,) = [c for c in report["results"][0]["checks"] if c["check"] == "no_drop"]
        details.append((check["passed"], check["detail"]))
    assert details == [(True, "[]"), (False, "[300]"), (False, "[200, 300]"), (True, "[100, 200]")]


def test_the_run_step_gates_keeps_history_and_judges_volume(lake):
    """Two runs through RunSteps.quality: the rules' outcomes per dataset, the rollback list, and the kept
    history feeding the volume rule."""
    volume = '\n[[rules]]\ncheck = "volume"\nmax_change_percent = 50\nmin_history = 1\nseverity = "warn"\n'
    warn_only = contract_with(
        RULES.replace('column = "status"\nvalues', 'column = "status"\nseverity = "warn"\nvalues') + volume
    )
    settings = replace(lake.settings, datasets={**lake.settings.datasets, "orders": warn_only})
    ledger = InMemoryLedger()
    steps = RunSteps(settings, settings.stage("local"), ledger)
    engine = DuckDBEngine(replace(lake, settings=settings))
    write_deltalake(lake.processed("customers"), pa.table({"customer_id": ["C1", "C2", "C9"]}))

    def run_with(rows, merged):
        name = loaded_run(ledger, lake, rows, merged)
        report = steps.quality(name, engine, NOW)
        ledger.end_run(name, "SUCCEEDED")
        return report

    first = run_with(ROWS[2:5], 300)  # duplicate-free, but range errors
    assert first["status"] == "ERROR" and first["datasets"] == {"orders": "ERROR"}
    assert [b["dataset"] for b in first["rollback"]] == ["orders"]
    assert (
        "ERROR orders range(total_amount): 2 of 3 rows fail (expected between 0 and 100.5); e.g. O3, O4"
        in first["summary"]
    )

    second = run_with([ROWS[0]], 100)  # clean, fresh; but a third of the rows the first run loaded
    assert second["status"] == "WARN" and second["rollback"] == []
    assert "WARN orders volume: 100 rows loaded, median of the last 1 loads 300 (-66.7%)" in second["summary"]
    history = ledger.quality_history("orders")
    assert [(h["run"], h["status"], h["rows_loaded"]) for h in history] == [
        ("run-000002", "WARN", 100),
        ("run-000001", "ERROR", 300),
    ]
    assert TableQuality.from_dict(history[1]).status == "ERROR"


def test_every_shipped_contracts_scan_is_trino_sql(settings):
    """Athena cannot run here: the scans DuckDB runs in these tests must at least parse as Trino SQL."""
    import sqlglot

    tables = {quality.table_name(d) for d in settings.datasets}
    for contract in settings.datasets.values():
        for present in (tables, set()):  # with and without the reference tables
            sqlglot.parse_one(quality.scan_sql(contract, present), read="trino")
    with pytest.raises(sqlglot.errors.ParseError):
        sqlglot.parse_one("SELECT count_if(x FROM t", read="trino")


def test_dqdl_export_names_every_rule_with_its_severity():
    from click.testing import CliRunner

    from lakehouse.cli import main

    volume = '\n[[rules]]\ncheck = "volume"\nmax_change_percent = 25\nhistory = 5\n'
    text = to_dqdl(contract_with(RULES + volume))
    rules = text.split("Rules = [\n", 1)[1].rstrip("]\n").split(",\n")
    assert [r.strip() for r in rules] == [
        'IsUnique "order_id"',
        'IsComplete "email"',
        'ColumnValues "status" in ["placed", "shipped"]',
        '(ColumnValues "total_amount" >= 0) and (ColumnValues "total_amount" <= 100.5)',
        'ColumnValues "email" matches "^(?:[a-z0-9]+@example\\\\.com)$"',
        'ReferentialIntegrity "customer_id" "customers.customer_id" = 1.0',
        'DataFreshness "order_ts" <= 24 hours',
        'DataFreshness "order_date" <= 1 hours',
        "(RowCount >= 1) and (RowCount <= 5)",
        "(RowCount >= avg(last(5)) * 0.75) and (RowCount <= avg(last(5)) * 1.25)",
    ]
    assert "#  2. not_null(email) [warn]" in text and "#  8. fresh_days [warn]" in text
    result = CliRunner().invoke(main, ["quality", "export-dqdl", "orders"])
    assert result.exit_code == 0 and result.output.startswith("# AWS Glue Data Quality ruleset for processed_orders")
    missing = CliRunner().invoke(main, ["quality", "export-dqdl", "invoices"])
    assert missing.exit_code == 2 and "not a dataset: invoices" in missing.output


def test_a_merged_batch_no_gate_has_seen_is_audited_by_the_next_run(lake):
    """A run that failed after some jobs merged (or a manual `lakehouse etl`) leaves batches no quality check
    has seen: the next run audits them too, and lists them for rollback if they fail."""
    settings = lake.settings
    ledger = InMemoryLedger()
    steps = RunSteps(settings, settings.stage("local"), ledger)
    engine = DuckDBEngine(lake)
    write_orders(lake, ROWS)  # fails its error rules (duplicate key, range)

    def close(dataset, name):
        record = FileRecord(f"b/raw/{dataset}/{name}#v1", "b", f"raw/{dataset}/{name}", "v1", dataset, NOW.isoformat())
        file_id = ledger.finish(ledger.claim(record, now=NOW).record, Status.VALID).file_id
        batch = ledger.open_batch(dataset)
        ledger.close_batch(batch, 1, {file_id: FileResult(6, 0)})
        return batch.number

    close("orders", "manual.csv")  # merged outside any run
    name = ledger.begin_run().name
    number = close("customers", "c.csv")
    plan = {"levels": [[{"dataset": "customers", "batch": number, "job": "j"}]]}
    ledger.save_plan(ledger.get_run(name), plan, 1, 1)
    write_deltalake(lake.processed("customers"), pa.table({"customer_id": ["C1", "C2"]}))
    report = steps.quality(name, engine, NOW)
    assert report["datasets"] == {"customers": "PASSED", "orders": "ERROR"}
    assert report["rollback"] == [{"dataset": "orders", "batch": 1, "job": "lakehouse-local-process-orders"}]
    ledger.end_run(name, "FAILED")

    again = ledger.begin_run().name
    ledger.save_plan(ledger.get_run(again), plan, 1, 1)
    assert steps.quality(again, engine, NOW)["datasets"] == {"customers": "PASSED"}  # orders was audited


class AnsweringAthena(FailingAthena):
    """An Athena client whose query succeeds with one row, every value a string as Athena returns them."""

    def __init__(self, row):
        self.row = row

    def get_query_execution(self, QueryExecutionId):
        return {"QueryExecution": {"Status": {"State": "SUCCEEDED"}, "Statistics": {"DataScannedInBytes": 1}}}

    def get_paginator(self, name):
        columns = list(self.row)
        cells = [{"VarCharValue": v} if v is not None else {} for v in self.row.values()]
        page = {
            "ResultSet": {
                "ResultSetMetadata": {"ColumnInfo": [{"Name": c} for c in columns]},
                "Rows": [{"Data": [{"VarCharValue": c} for c in columns]}, {"Data": cells}],
            }
        }
        return type("Pages", (), {"paginate": lambda self, **kw: [page]})()


def test_athena_answers_in_strings_are_judged_like_duckdbs(lake):
    contract = lake.settings.datasets["orders"]
    sql = quality.scan_sql(contract, {"processed_orders", "processed_customers"})
    names = [line.rsplit(" AS ", 1)[1].rstrip(",") for line in sql.splitlines() if " AS v" in line or " AS s" in line]
    row = {"row_count": "6", **dict.fromkeys(names)}
    row.update(v0="2", s0="O1 | O1", v6="2025-03-10 06:00:00.000 UTC", v7="2025-03-10")  # Trino's formats
    athena = Athena(AnsweringAthena(row), "db", "wg", "s3://b/r/", sleep=lambda s: None)
    rows, results = quality.scan(athena, contract, {"processed_orders"}, NOW, 60)
    by_rule = {r.rule: r for r in results}
    assert rows == 6 and (by_rule["unique(order_id)"].observed, by_rule["unique(order_id)"].sample) == (2, ["O1"])
    assert by_rule["not_null(email)"].observed == 0 and by_rule["not_null(email)"].passed
    assert by_rule["freshness(order_ts)"].observed == 6.0 and by_rule["fresh_days"].observed == -12.0


def test_a_new_check_type_is_one_class_parsed_scanned_judged_and_exported(lake, monkeypatch):
    """What docs/architecture.md promises: a check type is one class and its rule's Struct; registered, the config
    accepts it (with its own keys and column types), the one scan computes it, and it has a DQDL form."""
    from chalicelib.config import rules
    from chalicelib.quality import checks

    class MaxLengthRule(rules.ColumnRule, frozen=True, kw_only=True, tag="max_length"):
        max: int
        column_kinds = ("string",)

    class MaxLength(checks.RowCheck[MaxLengthRule]):
        name = "max_length"

        def failing(self, rule, index):
            return f"length({self.col(rule)}) > {checks.literal(rule.max)}"

        def outside_text(self, rule):
            return f" longer than {rule.max:g}"

        def dqdl(self, rule):
            return f"ColumnLength {checks.dqdl_text(rule.columns[0])} <= {rule.max:g}", ""

    monkeypatch.setitem(rules.RULES, "max_length", MaxLengthRule)
    monkeypatch.setitem(checks.CHECKS, "max_length", MaxLength())
    contract = contract_with('[[rules]]\ncheck = "max_length"\ncolumn = "email"\nmax = 12\n')
    with pytest.raises(ConfigError, match="max_length applies to string columns, not decimal"):
        contract_with('[[rules]]\ncheck = "max_length"\ncolumn = "total_amount"\nmax = 13\n')
    with pytest.raises(ConfigError, match=r"rules\[0\].max = 'long': must be a whole number"):  # its keys are typed
        contract_with('[[rules]]\ncheck = "max_length"\ncolumn = "email"\nmax = "long"\n')
    write_orders(lake, ROWS)
    engine = DuckDBEngine(lake)
    _, [result] = quality.scan(engine, contract, engine.tables(), NOW, 60)
    assert (result.rule, result.passed, result.observed) == ("max_length(email)", False, 4)  # 13 characters
    assert sorted(result.sample) == ["O'5", "O1", "O4"]
    assert result.threshold == "0 rows longer than 12"
    assert 'ColumnLength "email" <= 12' in to_dqdl(contract)


def test_a_failed_run_s_summary_counts_its_errors_lists_them_first_and_ends_with_its_rejected_rows():
    """The error-level count and order (it once compared against a same-named schema dict: "0 errors"), and the
    command that lists the rows the ETL rejected."""
    from chalicelib.quality.results import CheckResult

    warn = CheckResult("unique(email)", "unique", "warn", False, 1, "0 failing rows", [], "1 row fails")
    error = CheckResult("rejected_rows", "rejected_rows", "error", False, 50.0, "at most 5%", [], "1 of 2 rejected")
    passed = CheckResult("not_null(order_id)", "not_null", "error", True, 0, "0 failing rows")
    results = [
        TableQuality("customers", "run-000007", 3, 10, 2, [warn]),
        TableQuality("orders", "run-000007", 4, 10, 1, [passed, error], {"rows_rejected": 1}),
    ]
    lines = quality.summary("run-000007", results).splitlines()
    assert lines[0] == "Quality of run run-000007: 1 errors, 1 warnings, 1 of 3 checks passed."
    assert lines[1].startswith("ERROR orders rejected_rows") and lines[2].startswith("WARN customers unique(email)")
    assert lines[-1] == "1 rows rejected by the ETL, listed by: lakehouse rejected --run run-000007"
    on_prod = quality.summary("run-000007", results, limit=200, stage="prod")
    assert on_prod.endswith("lakehouse rejected --run run-000007 --stage prod") and "(truncated)" in on_prod
    assert "lakehouse rejected" not in quality.summary("run-000007", results[:1])  # no error, no hint
