"""Every failure a user can cause is one line on stderr and a non-zero exit, never a traceback (the CLI run as a
user runs it, in a subprocess); when a dropped file's run starts; SHOW TABLES on the local stage."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import CONFIG, ROOT

from chalicelib.athena import QueryError, read_only
from chalicelib.errors import LocalStageError

H = b"order_id,customer_id,order_ts,status,total_amount,currency,order_date\n"
R = b"O1,C1,2025-03-01T10:00:00Z,shipped,10.00,EUR,2025-03-01\n"


def lakehouse(home: Path, *args: str, config: Path | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LAKEHOUSE_"))}
    env["LAKEHOUSE_HOME"] = str(home)
    if config is not None:
        env["LAKEHOUSE_CONFIG"] = str(config)
    return subprocess.run(
        [sys.executable, "-m", "lakehouse.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def one_line_error(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A copy of the configuration to break."""
    copy = tmp_path / "config"
    shutil.copytree(CONFIG, copy)
    return copy


def test_an_unknown_region_is_refused_when_the_config_loads_naming_file_key_and_value(tmp_path, config):
    settings = config / "lakehouse.toml"
    settings.write_text(settings.read_text().replace("[stages.dev]\n", '[stages.dev]\nregion = "us-east-9"\n', 1))
    sample = tmp_path / "orders_1.csv"
    sample.write_bytes(H + R)
    line = one_line_error(lakehouse(tmp_path, "check", str(sample), config=config, cwd=tmp_path))
    assert line.startswith("error: config/lakehouse.toml: stages.dev.region = 'us-east-9': not an AWS region botocore")
    assert "did you mean us-east-" in line


def test_a_toml_syntax_error_says_file_line_column_and_the_parser_s_message(tmp_path, config):
    settings = config / "lakehouse.toml"
    settings.write_text(settings.read_text().replace('name = "lakehouse"', 'name = "lakehouse', 1))
    line = one_line_error(lakehouse(tmp_path, "cost", config=config, cwd=tmp_path))
    assert line == "error: config/lakehouse.toml:7:18: not valid TOML: Illegal character '\\n'"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["query", "SELEC * FROM processed_orders"], 1, "syntax error at line 1, column 1: 'SELEC' starts no"),
        (["query", "DELETE FROM processed_orders"], 1, "queries are read-only: a DELETE statement is refused"),
        (["ledger"], 1, "the local stage is not running: start it with `lakehouse up`"),
        (["drop", "no-such-file.csv"], 2, "'no-such-file.csv' does not exist. (lakehouse drop --help)"),
        (["ledger", "--limit", "many"], 2, "'many' is not a valid integer range. (lakehouse ledger --help)"),
        (["ledger", "--limit", "-1"], 2, "-1 is not in the range x>=0. (lakehouse ledger --help)"),
        (["rejected", "--limit", "0"], 2, "0 is not in the range x>=1. (lakehouse rejected --help)"),
        (["table", "show", "processed/orders", "--limit", "0"], 2, "0 is not in the range x>=1."),
        (["no-such-command"], 2, "No such command 'no-such-command'. (lakehouse --help)"),
        (["query"], 2, "give exactly one of SQL, --example NAME or --file PATH (lakehouse query --help)"),
    ],
)
def test_bad_arguments_and_a_stage_that_is_not_up_are_one_line(tmp_path, args, code, message):
    assert message in one_line_error(lakehouse(tmp_path, *args), code)


def test_a_syntax_error_says_so_with_its_place_and_a_write_is_still_refused():
    with pytest.raises(QueryError, match=r"^syntax error at line 2, column 3: 'selec' starts no statement"):
        read_only("-- the orders\n  selec * FROM processed_orders")
    with pytest.raises(QueryError, match="queries are read-only: a DROP statement is refused"):
        read_only("DROP TABLE processed_orders")


def lake_with_orders(settings: Any, root: Path) -> Any:
    import pyarrow as pa
    from deltalake import write_deltalake
    from lakehouse_etl.lake import Lake

    lake = Lake(str(root), settings)
    write_deltalake(lake.processed("orders"), pa.table({"order_id": ["O1"], "status": ["shipped"]}))
    return lake


def test_duckdb_names_the_lake_s_tables_and_says_where_a_syntax_error_is(settings, tmp_path):
    from lakehouse_etl.local_sql import DuckDBEngine

    engine = DuckDBEngine(lake_with_orders(settings, tmp_path))
    with pytest.raises(QueryError) as unknown:
        engine.run("SELECT * FROM processed_orderz")
    assert str(unknown.value) == "no table processed_orderz; the lake has: processed_orders"
    with pytest.raises(QueryError) as syntax:
        engine.run("SELECT *\nFORM processed_orders")
    assert str(syntax.value) == 'syntax error at line 2, column 6: at or near "processed_orders"'
    with pytest.raises(QueryError) as cut_short:  # DuckDB names no place at the end: the statement's end is it
        engine.run("SELECT 1\nFROM processed_orders WHERE;")
    assert str(cut_short.value) == "syntax error at line 2, column 28: at end of input"
    with pytest.raises(QueryError) as column:
        engine.run("SELECT nope FROM processed_orders")
    assert str(column.value).startswith('DuckDB: Referenced column "nope" not found') and "\n" not in str(column.value)
    assert "(at line 1, column 8)" in str(column.value)


def test_show_tables_lists_the_lake_s_tables_on_duckdb_and_from_python(settings, tmp_path):
    from lakehouse_etl.local_sql import DuckDBEngine

    engine = DuckDBEngine(lake_with_orders(settings, tmp_path))
    assert engine.run("SHOW TABLES").rows == [("processed_orders",)]
    assert engine.arrow("show tables;").column("name").to_pylist() == ["processed_orders"]  # what lake.sql runs


def record(received: datetime, size: int = 10) -> Any:
    from chalicelib.ledger import FileRecord

    return FileRecord("b/k#1", "b", "k", "1", "orders", received_at=received.isoformat(), size=size, pending="orders")


def test_a_waiting_file_s_run_starts_at_the_batcher_s_first_look_after_the_window_closes():
    from chalicelib.pipeline.batching import BatchPolicy

    now = datetime(2026, 12, 7, 20, 0, 0, tzinfo=UTC)
    policy = BatchPolicy(window_seconds=300, start_files=3)
    by, why = policy.starts_by([record(now - timedelta(seconds=100))], now, 60)
    assert by == now + timedelta(seconds=260)
    assert why == "the 300 s window closes at 20:03:20 UTC; the batcher looks every 60 s"
    due, why = policy.starts_by([record(now)] * 3, now, 60)  # start_files reached: the next look starts it
    assert due == now + timedelta(seconds=60) and why.startswith("due now")


def test_up_waits_until_the_stage_serves_aws_requests_or_says_so_in_one_line():
    from lakehouse.localstage import wait_until_serving

    answers = iter([RuntimeError("An error occurred (500) when calling GetCallerIdentity"), None])

    def probe() -> None:
        if (answer := next(answers)) is not None:
            raise answer

    wait_until_serving(probe, float("inf"), "the stage")  # the first 500 is waited out
    with pytest.raises(LocalStageError) as never:
        wait_until_serving(lambda: (_ for _ in ()).throw(RuntimeError("500\nInternal")), 0, "the stage")
    assert str(never.value).startswith("the stage does not serve AWS requests yet (500 Internal); see ")
    with pytest.raises(LocalStageError, match="stopped while starting"):  # no waiting for a stage that is gone

        def gone() -> None:
            raise LocalStageError("the local stage stopped while starting")

        wait_until_serving(gone, float("inf"), "the stage")


@pytest.mark.e2e
def test_a_dropped_file_says_when_its_run_starts_and_queries_name_the_lake_s_tables(tmp_path):
    home = tmp_path / "home"
    try:
        assert lakehouse(home, "up").returncode == 0
        sample = tmp_path / "orders_waiting.csv"
        sample.write_bytes(H + R)
        dropped = lakehouse(home, "drop", str(sample))
        assert dropped.returncode == 0, dropped.stderr
        assert "waiting: run by" in dropped.stdout
        assert "1 accepted file waits for a pipeline run: it starts by " in dropped.stderr
        assert "the 300 s window closes at" in dropped.stderr and "`lakehouse run` starts one now" in dropped.stderr
        listed = lakehouse(home, "ledger")
        assert "waiting: run by" in listed.stdout and "`lakehouse run` starts one now" in listed.stderr
        unknown = one_line_error(lakehouse(home, "query", "SELECT * FROM processed_orderz"))
        assert unknown.startswith("error: no table processed_orderz; the lake has: none yet")
        assert lakehouse(home, "query", "SHOW TABLES").returncode == 0
    finally:
        lakehouse(home, "down", "--discard")


def test_the_stage_serves_on_the_socket_up_bound_so_no_other_process_can_take_its_port():
    import socket
    import urllib.request

    from lakehouse.localstage import _listening_socket, serve_moto

    listening = _listening_socket()
    port = listening.getsockname()[1]
    with socket.socket() as other, pytest.raises(OSError):  # taken from the start, not only once moto is imported
        other.bind(("127.0.0.1", port))
    server = serve_moto(port, fd=listening.fileno())
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=10) as answer:
            assert answer.status == 200
    finally:
        server.shutdown()
        listening.close()


def accepted(ledger: Any, at: datetime) -> Any:
    from chalicelib.ledger import FileRecord, Status

    record = FileRecord(
        "lake/raw/orders/a.csv#v1", "lake", "raw/orders/a.csv", "v1", "orders", received_at=at.isoformat()
    )
    return ledger.finish(ledger.claim(record, now=at).record, Status.VALID)


def test_the_waiting_note_names_the_stage_s_run_command_a_run_in_flight_and_a_stage_without_batcher(
    settings, monkeypatch
):
    from chalicelib.ledger.memory import InMemoryLedger
    from lakehouse import localstage
    from lakehouse.ops import next_run

    now = datetime(2026, 12, 7, 20, 0, 0, tzinfo=UTC)
    ledger = InMemoryLedger()
    assert next_run(settings, settings.stage("dev"), ledger, now) is None  # nothing waits
    accepted(ledger, now)
    ledger.begin_run()
    when, line = next_run(settings, settings.stage("dev"), ledger, now)  # type: ignore[misc]
    assert when == "20:06:00 UTC"  # the window closes at 20:05:00, the batcher looks every minute on AWS
    assert line == (
        "1 accepted file waits for a pipeline run: it starts by 20:06:00 UTC, after run-000001 (in flight) ends "
        "(the 300 s window closes at 20:05:00 UTC; the batcher looks every 60 s); "
        "`lakehouse run --stage dev` starts one now"
    )
    idle = localstage.LocalStage(pid=1, port=1, region="us-east-1", batcher_seconds=0)
    monkeypatch.setattr(localstage, "running", lambda: idle)
    when, line = next_run(settings, settings.stage("local"), ledger, now)  # type: ignore[misc]
    assert when == "" and line.endswith("runs no batcher (LAKEHOUSE_BATCHER_SECONDS=0): `lakehouse run` starts one now")
