"""End to end in a real headless Chromium: install through the fake Shopify, then settings."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from werkzeug.serving import make_server

from connector import runtime
from connector.app import create_app
from connector.dev.fake_customerio import FakeCustomerIO
from connector.runtime import Runtime
from connector.storage.db import upgrade
from connector.storage.models import Shop
from tests.fakes.shopify import FakeShopify
from tests.fakes.shopify_install import API_KEY as APP_KEY
from tests.fakes.shopify_install import install_link
from tests.support import API_KEY, CHROMIUM_ARGS, SECRET, SITE_ID, make_settings, screenshot_path

CHROMIUM = "/usr/bin/chromium"
SHOP = "acme-store.myshopify.com"

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright (Python) is not installed")
if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
    pytest.skip("Debian's chromium is not installed (/usr/bin/chromium)", allow_module_level=True)


@pytest.fixture
def served(
    tmp_path: Path, redis_url: str, redis_conn: Any, fake_customerio: FakeCustomerIO
) -> Iterator[tuple[str, Runtime]]:
    """The app on a real loopback port, pointed at a fake Shopify and the Customer.io fake."""
    holder: dict[str, Any] = {}
    server = make_server(
        "127.0.0.1", 0, lambda env, start: holder["app"](env, start), threaded=True
    )
    app_url = f"http://127.0.0.1:{server.server_port}"
    with FakeShopify(APP_KEY, SECRET) as fake:
        settings = make_settings(
            database_url=f"sqlite:///{tmp_path}/connector.db",
            redis_url=redis_url,
            instance_dir=tmp_path,
            customerio_track_url=fake_customerio.url,
            shopify_admin_base_url=fake.url_template,
            app_url=app_url,
        )
        rt = runtime.install(Runtime(settings))
        upgrade(rt.engine)
        holder["app"] = create_app(rt)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield app_url, rt
        finally:
            server.shutdown()
            rt.engine.dispose()


def test_install_in_chromium_and_save_settings(served: tuple[str, Runtime], tmp_path: Path) -> None:
    app_url, rt = served
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 900})
            # No network: Shopify's CDN scripts fail, the page's plain form is what is used
            # (test_settings_browser.py serves stand-ins for them).
            page.route("https://cdn.shopify.com/**", lambda route: route.abort())
            page.goto(f"{app_url}/auth/install?{urlencode(install_link(SHOP))}")
            page.wait_for_url(f"{app_url}/settings")
            assert page.locator("#shop").inner_text() == SHOP

            page.fill("#site_id", SITE_ID)
            page.fill("#api_key", API_KEY)
            page.select_option("#region", "us")
            page.click("#test")
            page.wait_for_selector("#message")
            assert "Connected" in page.locator("#message").inner_text()

            page.click("#save")
            page.wait_for_url(f"{app_url}/settings?saved=1")
            assert "Settings saved." in page.locator("#message").inner_text()
            screenshot = screenshot_path("install-settings.png", tmp_path)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()

    with rt.sessions() as session:
        shop = session.get(Shop, SHOP)
        assert shop is not None and shop.cio_site_id == SITE_ID
        assert rt.secrets.decrypt(shop.cio_api_key_encrypted or "") == API_KEY
        assert shop.shopify_access_token_encrypted is not None
