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
