"""UTM attribution from Shopify's landing_site, and the referring site."""

from __future__ import annotations

import pytest

from tests.support import make_order, sample
from webhooks.attribution import attribution
from webhooks.mapping import map_checkout, map_order


@pytest.mark.parametrize(
    ("landing_site", "expected"),
    [
        (
            "/?utm_source=newsletter&utm_medium=email&utm_campaign=black-friday",
            ("newsletter", "email", "black-friday"),
        ),
        (
            "https://shop.example.com/products/tee?utm_source=ig&utm_campaign=summer%2026",
            ("ig", None, "summer 26"),
        ),
        ("/products/tee?utm_source=a&utm_source=b", ("a", None, None)),  # first value wins
        ("/products/tee?utm_source=&utm_medium=%20cpc%20", (None, "cpc", None)),
        ("/products/tee", (None, None, None)),
        ("?utm_source=" + "x" * 400, ("x" * 255, None, None)),
        ("not a url ?%%%", (None, None, None)),
        (None, (None, None, None)),
        (42, (None, None, None)),
    ],
)
def test_utm_parameters_come_from_the_landing_page(landing_site, expected) -> None:
    found = attribution(landing_site, None)
    assert (found["utm_source"], found["utm_medium"], found["utm_campaign"]) == expected


def test_referring_site_is_kept_trimmed_or_left_out() -> None:
    assert attribution(None, " https://www.google.com/ ")["referring_site"] == (
        "https://www.google.com/"
    )
    assert attribution(None, "  ")["referring_site"] is None


def test_orders_and_checkouts_carry_attribution() -> None:
    landing = "/?utm_source=newsletter&utm_medium=email&utm_campaign=bf"
    order = make_order(1, landing_site=landing, referring_site="https://mail.example.com/")
    placed = map_order(order, shop_domain="a.myshopify.com").properties
    assert (placed["utm_source"], placed["utm_medium"], placed["utm_campaign"]) == (
        "newsletter",
        "email",
        "bf",
    )
    assert placed["referring_site"] == "https://mail.example.com/"
    checkout = {**sample("checkouts_create_2026-07.json"), "landing_site": landing}
    started = map_checkout(checkout, shop_domain="a.myshopify.com").properties
    assert started["utm_campaign"] == "bf" and started["landing_site"] == landing
