"""The dashboard page in a real browser: Debian's headless Chromium, driven by Playwright, over the API served
by `lakehouse serve`'s server. The data and the cost chart must render, and text from users' files must stay
text. `make test` installs Chromium (Makefile)."""

from __future__ import annotations

import json
import os
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chalicelib.ledger import DynamoDBLedger, FileRecord, Status

pytestmark = pytest.mark.e2e  # drives Chromium

CHROMIUM = Path(os.environ.get("LAKEHOUSE_CHROMIUM", "/usr/bin/chromium"))
# As root in a sandbox with no network: no sandbox, and none of Chromium's own background connections.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
FLAGS += ["--disable-sync", "--no-first-run", "--disable-quic"]
HOSTILE = '<img src=x onerror="document.body.dataset.pwned=1">'


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium (or set LAKEHOUSE_CHROMIUM)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield chromium
        chromium.close()


def _fill(provisioned, stage) -> tuple[str, str]:
    ledger = DynamoDBLedger(provisioned.dynamodb, stage.ledger_table)
    now = datetime.now(UTC)
    for name, hours, verdict in (("a.csv", 3, Status.VALID), ("bad.csv", 1, Status.REJECTED)):
        record = FileRecord(f"{stage.bucket}/raw/orders/{name}#v1", stage.bucket, f"raw/orders/{name}", "v1", "orders")
        claimed = ledger.claim(record, now=now - timedelta(hours=hours)).record
        extra = {"reason_code": "UNKNOWN_COLUMNS", "reason": f"columns not in the contract: {HOSTILE}"}
        ledger.finish(claimed, verdict, **(extra if verdict == Status.REJECTED else {}))
    good = ledger.begin_run()
    ledger.save_plan(good, {"levels": [[{"dataset": "orders", "batch": 1, "job": "j"}]]}, 1, 10)
    ledger.end_run(good.name, "SUCCEEDED")
    for run, status in (("run-earlier", "PASSED"), (good.name, "WARN")):
        checks = [{"rule": "accepted_values(status)", "passed": status == "PASSED"}]
        ledger.save_quality(run, "orders", {"run": run, "status": status, "rows_loaded": 5, "checks": checks})
    failed = ledger.begin_run()
    ledger.end_run(failed.name, "FAILED", "QualityCheckFailed", "ERROR orders unique(order_id): 2 of 9 rows fail")
    return good.name, failed.name


def test_the_dashboard_renders_the_pipeline_and_the_cost_chart(browser, api_url, provisioned, stage):
    good, failed = _fill(provisioned, stage)
    with urllib.request.urlopen(f"{api_url}/cost") as response:
        estimate = json.loads(response.read())
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(f"{api_url}/")
    page.wait_for_selector("body[data-loaded=true]", timeout=20_000)

    assert page.text_content("#health") == "failing"  # the newest run failed
    assert page.text_content("#error") == ""
    tiles = {t.get_attribute("data-status"): t.text_content() for t in page.query_selector_all("#files24 .tile")}
    assert tiles == {"REJECTED": "1REJECTED", "VALID": "1VALID"}
    runs = [r.inner_text().split("\t")[:2] for r in page.query_selector_all("#runs tbody tr")]
    assert runs == [[failed, "FAILED"], [good, "SUCCEEDED"]]
    assert "QualityCheckFailed: ERROR orders unique(order_id)" in page.text_content("#runs")
    orders = next(r for r in page.query_selector_all("#datasets tbody tr") if r.inner_text().startswith("orders"))
    assert [s.get_attribute("class") for s in orders.query_selector_all(".trend span")] == ["PASSED", "WARN"]
    assert "accepted_values(status)" in orders.inner_text() and "fresh (" in orders.inner_text()
    assert HOSTILE in page.text_content("#files")  # shown as text ...
    assert page.query_selector("#files img") is None and page.evaluate("document.body.dataset.pwned") is None

    bars = {g.get_attribute("data-service"): g for g in page.query_selector_all("#chart g")}
    assert set(bars) == set(estimate["by_service"])
    widths = {s: float(g.query_selector("rect").get_attribute("width")) for s, g in bars.items()}
    assert max(widths, key=widths.get) == max(estimate["by_service"], key=estimate["by_service"].get)
    assert page.text_content("#costtotal").startswith(f"{estimate['monthly_total']:,.2f} USD a month")
    assert "partition pruning: saves" in page.text_content("#savings")

    page.select_option("#scenario", "heavy")
    page.wait_for_function("document.querySelector('#costtotal').textContent.includes('heavy')", timeout=20_000)
    with urllib.request.urlopen(f"{api_url}/cost?scenario=heavy") as response:
        heavy = json.loads(response.read())
    assert page.text_content("#costtotal").startswith(f"{heavy['monthly_total']:,.2f} USD")
    assert errors == []


def test_files_show_their_names_with_the_id_on_hover_and_run_ids_stay_on_one_line(browser, api_url, provisioned, stage):
    good, failed = _fill(provisioned, stage)
    page = browser.new_page(viewport={"width": 480, "height": 900})  # narrow: long errors squeeze the run column
    page.goto(f"{api_url}/")
    page.wait_for_selector("body[data-loaded=true]", timeout=20_000)
    names = [(n.text_content(), n.get_attribute("title")) for n in page.query_selector_all("#files tbody tr td span")]
    assert sorted(n for n in names if n[0].endswith(".csv")) == [
        ("a.csv", f"{stage.bucket}/raw/orders/a.csv#v1"),
        ("bad.csv", f"{stage.bucket}/raw/orders/bad.csv#v1"),
    ]
    lines = page.evaluate(
        """() => [...document.querySelectorAll('#runs tbody tr td:first-child')].map(td => {
             const range = document.createRange();
             range.selectNodeContents(td);
             return [td.textContent, new Set([...range.getClientRects()].map(r => Math.round(r.top))).size];
           })"""
    )
    assert lines == [[failed, 1], [good, 1]]


def test_serve_starts_the_stage_follows_it_through_down_and_up_and_says_how_to_start_it(browser, tmp_path):
    """`lakehouse serve` on the local stage as a user runs it: it starts the stage, and after `down` the API and
    the dashboard say how to start it; after `up` (a new port) it answers again. No traceback in its log."""
    import socket
    import subprocess
    import sys
    import time

    from conftest import ROOT
    from test_local_stage import lakehouse

    from lakehouse.serve import STAGE_DOWN

    home = tmp_path / "home"
    home.mkdir()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | {"LAKEHOUSE_HOME": str(home)}
    log = (tmp_path / "serve.log").open("w")
    serve = subprocess.Popen(
        [sys.executable, "-m", "lakehouse.cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def get_status() -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(f"{url}/status", timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def stage_port() -> str:
        exported = lakehouse(home, "env").stdout
        return next(line for line in exported.splitlines() if "AWS_ENDPOINT_URL" in line).rsplit(":", 1)[1]

    try:
        deadline = time.monotonic() + 120  # starting the stage and provisioning it
        while True:
            try:
                answered = get_status()
                break
            except OSError:
                assert serve.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(0.5)
        assert answered[0] == 200 and answered[1]["stage"] == "local"
        before = stage_port()

        lakehouse(home, "down")
        assert get_status() == (503, {"Code": "ServiceUnavailableError", "Message": STAGE_DOWN})
        page = browser.new_page()
        page.goto(f"{url}/")
        page.wait_for_selector("body[data-loaded=true]", timeout=20_000)
        assert page.text_content("#error") == STAGE_DOWN  # once, though /status and /cost both failed
        assert page.text_content("#health") == "unavailable"

        lakehouse(home, "up")
        assert stage_port() != before
        status, body = get_status()
        assert status == 200 and body["stage"] == "local"
        page.reload()
        page.wait_for_selector("body[data-loaded=true]", timeout=20_000)
        assert page.text_content("#error") == "" and page.text_content("#health") != "unavailable"
    finally:
        serve.terminate()
        serve.wait(30)
        log.close()
        lakehouse(home, "down", check=False)
    printed = (tmp_path / "serve.log").read_text()
    assert "local stage started at http://127.0.0.1:" in printed and "Traceback" not in printed


def test_serve_s_help_says_it_starts_the_local_stage():
    from click.testing import CliRunner

    from lakehouse.cli import main

    shown = " ".join(CliRunner().invoke(main, ["serve", "--help"]).output.split())
    assert "The local stage is started first if it is not running (as `lakehouse up`)" in shown
