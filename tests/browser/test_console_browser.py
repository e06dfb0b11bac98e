"""The console in a real headless Chromium (Debian's package, driven by Playwright).

Log in, search an order, open its timeline, replay the failed event, see it delivered by the
Customer.io stand-in; screenshots of the timeline and the failed list go to docs/ when asked
(`make screenshots`).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from connector.app import create_app
from connector.dev.fake_customerio import FakeCustomerIO
from connector.runtime import Runtime
from tests.support import (
    CHROMIUM_ARGS,
    SHOP,
    STAFF_EMAIL,
    STAFF_PASSWORD,
    add_shop,
    add_staff_account,
    console_order,
    failed_order_event,
    post_webhook,
    run_jobs,
    screenshot_path,
)

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed (/usr/bin/chromium)", allow_module_level=True)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed"
)


@pytest.fixture
def server(rt: Runtime) -> Iterator[str]:
    """The app on a real HTTP server (127.0.0.1, a free port) in a background thread."""
    httpd = make_server("127.0.0.1", 0, create_app(rt), threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    thread.join(5)


@pytest.fixture
def page(server: str) -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=server, viewport={"width": 1280, "height": 900})
        yield context.new_page()
        context.close()
        browser.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_staff_find_an_order_and_replay_it_in_the_browser(
    page: object, rt: Runtime, fake_customerio: FakeCustomerIO, tmp_path: Path
) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    add_staff_account(rt)
    add_shop(rt, SHOP)
    client = create_app(rt).test_client()
    post_webhook(client, "orders/create", console_order(1), "ok-1")  # a delivered neighbour
    run_jobs(rt)
    event_id = failed_order_event(client, rt, index=0)

    page.goto("/console/")
    expect(page).to_have_url(re.compile(r"/console/login"))
    page.fill("input[name=email]", STAFF_EMAIL)
    page.fill("input[name=password]", STAFF_PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Overview")

    page.click("text=Search")
    page.fill("input[name=q]", "#1042")
    page.click("main button[type=submit]")
    expect(page.locator("main h2")).to_have_text("1 event")
    page.click(f"a[href='/console/events/{event_id}']")
    expect(page.locator("h1 .badge")).to_have_text("failed")
    expect(page.locator(".timeline")).to_contain_text("rejected_credentials")

    page.click("text=Failed")
    expect(page.locator("h1")).to_contain_text("Failed")
    page.screenshot(path=str(screenshot_path("console-failed.png", tmp_path)), full_page=True)

    page.check(f"input[value='{event_id}']")
    page.click("text=Replay selected…")
    expect(page.locator("main .card")).to_contain_text("1 event will be mapped again")
    page.click("button.danger")
    expect(page.locator(".flash")).to_contain_text("1 queued again")
    run_jobs(rt)
    assert [e["id"] for e in fake_customerio.events_named("order_placed")].count(event_id) == 1

    page.goto(f"/console/events/{event_id}")
    expect(page.locator("h1 .badge")).to_have_text("delivered")
    expect(page.locator("#sent-track")).to_contain_text(event_id)
    page.screenshot(path=str(screenshot_path("console-timeline.png", tmp_path)), full_page=True)

    # A second replay of the same event (forged past the hidden button) sends nothing new.
    requests_before = len(fake_customerio.requests)
    expect(page.locator("text=Replay this event…")).to_have_count(0)
    post_form(page, "/console/replay/preview", event_id)
    expect(page.locator("main .card")).to_contain_text("Nothing to replay")
    post_form(page, "/console/replay", event_id)
    expect(page.locator(".flash")).to_contain_text("0 queued again")
    expect(page.locator("table")).to_contain_text("staff:support@example.com")
    run_jobs(rt)
    assert len(fake_customerio.requests) == requests_before
    assert [e["id"] for e in fake_customerio.events_named("order_placed")].count(event_id) == 1


def post_form(page: object, action: str, event_id: str) -> None:
    """Submit a form as the page would, with the session's CSRF token."""
    page.evaluate(  # type: ignore[attr-defined]
        """([action, eventId]) => {
          const form = document.createElement("form");
          form.method = "post";
          form.action = action;
          const token = document.querySelector("input[name=csrf_token]").value;
          for (const [name, value] of [["csrf_token", token], ["event_id", eventId]]) {
            const input = document.createElement("input");
            input.type = "hidden"; input.name = name; input.value = value;
            form.appendChild(input);
          }
          document.body.appendChild(form);
          form.submit();
        }""",
        [action, event_id],
    )
    page.wait_for_load_state()  # type: ignore[attr-defined]
