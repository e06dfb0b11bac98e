"""Fixtures for the tests that install the app: a FakeShopify, and settings pointing at it.

Only modules marked `shopify` (`pytestmark = pytest.mark.shopify`) get the fake: the other
integration tests keep the suite's settings as they are.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from connector.config import Settings
from tests.fakes.shopify import FakeShopify
from tests.fakes.shopify_install import API_KEY, APP_URL
from tests.support import SECRET


@pytest.fixture
def fake_shopify() -> Iterator[FakeShopify]:
    with FakeShopify(API_KEY, SECRET) as fake:
        yield fake


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The suite's settings; for `shopify` tests, pointed at the fake Shopify too."""
    if request.node.get_closest_marker("shopify") is None:
        return settings
    fake: FakeShopify = request.getfixturevalue("fake_shopify")
    return replace(settings, shopify_admin_base_url=fake.url_template, app_url=APP_URL)
