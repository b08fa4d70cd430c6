"""The dashboard end to end in real headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright): load each page, click from an alert mark to its step, no console errors;
screenshots go to tests/artifacts/ (or $ROLLCAGE_TEST_ARTIFACTS)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from rollcage.events import Attribution, Event, EventStore
from rollcage.server.app import ServerSettings
from rollcage.server.sample_data import write_sample_run
from rollcage.server.testing import LiveServer

CHROMIUM = Path(os.environ.get("ROLLCAGE_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(os.environ.get("ROLLCAGE_TEST_ARTIFACTS", Path(__file__).parent / "artifacts"))
TOKEN = "e2e-token"

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} missing (apt-get install chromium)")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("e2e")
    store = EventStore(tmp / "events.db")
    write_sample_run(tmp / "runs", store)
    store.close()
    settings = ServerSettings(token=TOKEN, event_db=tmp / "events.db", runs_dir=tmp / "runs", poll_interval_s=0.1)
    with LiveServer(settings) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser: object, server: LiveServer) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})  # type: ignore[attr-defined]
    pg = context.new_page()
    errors: list[str] = []
    pg.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    pg.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    pg.on("requestfailed", lambda req: errors.append(f"request failed: {req.url}")
          if "/v1/alerts/stream" not in req.url else None)  # fmt: skip
    pg.errors = errors  # type: ignore[attr-defined]
    yield pg
    context.close()
    assert errors == [], errors


def shot(page: object, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


def test_runs_timeline_and_click_through_to_the_step(page: object, server: LiveServer) -> None:
    expect = playwright_api.expect
    page.goto(f"{server.url}/#token={TOKEN}")  # type: ignore[attr-defined]
    row = page.locator('tr[data-run="run-sample"]')  # type: ignore[attr-defined]
    expect(row).to_be_visible()
    expect(row.locator("td.episodes")).to_have_text("3")
    expect(row.locator("td.success")).to_have_text("33%")
    expect(row).to_contain_text("cryptomining 2")
    expect(row).to_contain_text("tunnel 1")
    shot(page, "01-runs")

    row.get_by_role("link", name="run-sample").click()
    marks = page.locator("circle.alert-mark")  # type: ignore[attr-defined]
    expect(marks).to_have_count(3)
    expect(page.locator("rect.lane")).to_have_count(3)  # type: ignore[attr-defined]
    shot(page, "02-timeline")

    page.locator('circle.alert-mark[data-severity="critical"]').click()  # type: ignore[attr-defined]
    expect(page).to_have_url(f"{server.url}/#/runs/run-sample/episodes/ep-2?step=2")
    step = page.locator("#step-2")  # type: ignore[attr-defined]
    expect(step).to_have_class("card step selected")
    expect(step.locator(".alert.critical")).to_contain_text("Stratum mining protocol")
    expect(step.locator(".alert.critical")).to_contain_text("203.0.113.10:3333")
    expect(step.locator(".evidence-cmd").first).to_contain_text("xmrig -o stratum+tcp://203.0.113.10:3333")
    expect(step.locator(".tool-call")).to_contain_text("nohup ./xmrig")
    expect(step.locator(".message")).to_contain_text("Start the helper")
    expect(page.locator("#step-0 .alert")).to_have_count(0)  # type: ignore[attr-defined]
    shot(page, "03-trajectory")


def test_live_alert_feed_with_filters(page: object, server: LiveServer) -> None:
    expect = playwright_api.expect
    page.goto(f"{server.url}/#token={TOKEN}")  # type: ignore[attr-defined]
    page.wait_for_url("**/#/runs")  # type: ignore[attr-defined]
    page.goto(f"{server.url}/#/alerts")  # type: ignore[attr-defined]
    rows = page.locator("tr.feed-row")  # type: ignore[attr-defined]
    expect(rows).to_have_count(3)
    expect(page.locator("#live")).to_have_text("live")  # type: ignore[attr-defined]
    page.locator('input[name="severity"][value="critical"]').check()  # type: ignore[attr-defined]
    expect(rows).to_have_count(1)
    expect(page.locator("#live")).to_have_text("live")  # type: ignore[attr-defined]
    store = EventStore(server.settings.event_db)
    try:
        where = Attribution("run-sample", "ep-1", 3)
        live = {"rule": "Live test alert", "category": "cryptomining", "severity": "critical", "evidence": []}
        store.emit(Event("alert", "sb-sample01", where, live))
        store.emit(
            Event("alert", "sb-sample01", where, {"rule": "Filtered out", "category": "tunnel", "severity": "low"})
        )
    finally:
        store.close()
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("Live test alert")
    page.select_option("#category", "tunnel")  # type: ignore[attr-defined]
    expect(page).to_have_url(f"{server.url}/#/alerts?severity=critical&category=tunnel")
    expect(rows).to_have_count(0)
    shot(page, "04-live-alerts")
    page.select_option("#category", "")  # type: ignore[attr-defined]
    expect(rows).to_have_count(2)
    rows.first.get_by_role("link").click()
    step = page.locator("#step-3")  # type: ignore[attr-defined]
    expect(step).to_have_class("card step selected")
    expect(step.locator(".alert.critical")).to_contain_text("Live test alert")


def test_sandbox_resource_charts(page: object, server: LiveServer) -> None:
    expect = playwright_api.expect
    page.goto(f"{server.url}/#token={TOKEN}")  # type: ignore[attr-defined]
    page.wait_for_url("**/#/runs")  # type: ignore[attr-defined]
    page.goto(f"{server.url}/#/sandboxes?id=sb-sample02")  # type: ignore[attr-defined]
    for title in ("CPU", "Memory", "GPU utilisation", "GPU memory"):
        expect(page.locator(f'[data-chart="{title}"] polyline')).to_have_count(1)  # type: ignore[attr-defined]
    points = page.locator('[data-chart="CPU"] polyline').get_attribute("points")  # type: ignore[attr-defined]
    assert len(points.split()) == 30
    shot(page, "05-sandbox-charts")


def test_without_a_token_the_page_asks_for_one(page: object, server: LiveServer) -> None:
    expect = playwright_api.expect
    page.goto(f"{server.url}/")  # type: ignore[attr-defined]
    expect(page.locator("form.token")).to_be_visible()  # type: ignore[attr-defined]
    page.fill("form.token input", TOKEN)  # type: ignore[attr-defined]
    page.click("form.token button")  # type: ignore[attr-defined]
    expect(page.locator('tr[data-run="run-sample"]')).to_be_visible()  # type: ignore[attr-defined]
