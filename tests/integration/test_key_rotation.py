"""Rotating CONNECTOR_SECRET_KEY: the previous key still decrypts, `connector keys rotate`
re-encrypts every stored secret with the new one, and a wrong key stops web and worker at
start with a message saying what to do."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from flask.testing import FlaskClient

from connector.app import create_app
from connector.config import ConfigError
from connector.crypto import WRONG_KEY, SecretBox
from connector.dev.fake_customerio import FakeCustomerIO
from connector.events import EventName, stable_event_id
from connector.runtime import Runtime
from connector.storage.credentials import ENCRYPTED_COLUMNS
from connector.storage.models import Shop
from tests.support import (
    API_KEY,
    SHOP,
    add_shop,
    free_port,
    invoke_cli,
    make_order,
    post_webhook,
    run_cli,
    run_jobs,
)

OTHER = "other-shop.myshopify.com"
NEW_KEY = "a-brand-new-connector-key"
Runtimes = Callable[..., Runtime]


@pytest.fixture
def with_keys(rt: Runtime) -> Iterator[Runtimes]:
    """Runtimes on the same database and Redis with other CONNECTOR_SECRET_KEY settings."""
    built: list[Runtime] = []

    def build(secret_key: str, *previous: str) -> Runtime:
        settings = replace(rt.settings, secret_key=secret_key, previous_secret_keys=previous)
        built.append(Runtime(settings))
        return built[-1]

    yield build
    for runtime in built:
        runtime.engine.dispose()


def ciphertexts(rt: Runtime) -> dict[tuple[str, str], str]:
    with rt.sessions() as session:
        return {
            (shop.domain, column): getattr(shop, column)
            for shop in session.query(Shop).all()
            for column in ENCRYPTED_COLUMNS
            if getattr(shop, column)
        }


def shops_with_secrets(rt: Runtime) -> None:
    """Two shops written under the suite's key: one installed (both tokens), one added."""
    add_shop(
        rt,
        SHOP,
        shopify_access_token_encrypted=rt.secrets.encrypt("shpat-access"),
        shopify_refresh_token_encrypted=rt.secrets.encrypt("shprt-refresh"),
    )
    add_shop(rt, OTHER)


def settings_page(rt: Runtime) -> int:
    client = create_app(rt).test_client()
    with client.session_transaction() as session:
        session["merchant_shop"] = SHOP
    page = client.get("/settings")
    assert page.status_code != 200 or "saved (leave blank to keep)" in page.get_data(as_text=True)
    return page.status_code


def delivered(rt: Runtime, client: FlaskClient, order_id: int, fake: FakeCustomerIO) -> bool:
    """Post an order to OTHER (no Shopify token: no Admin API look-ups), run the jobs on
    `rt`: did Customer.io get it, sent with the stored API key?"""
    order = make_order(order_id)
    response = post_webhook(client, "orders/create", order, f"evt-{order_id}", shop=OTHER)
    assert response.status_code == 200
    invoke_cli(rt, "sweep")  # makes `rt` this process's runtime, as a worker would have
    run_jobs(rt)
    event_id = stable_event_id(OTHER, EventName.ORDER_PLACED, str(order_id))
    return event_id in [event["id"] for event in fake.events_named("order_placed")]


def test_previous_key_decrypts_rotate_re_encrypts_then_the_new_key_alone_works(
    rt: Runtime, client: FlaskClient, fake_customerio: FakeCustomerIO, with_keys: Runtimes
) -> None:
    shops_with_secrets(rt)
    before = ciphertexts(rt)
    assert len(before) == 4
    old_key = rt.settings.secret_key

    during = with_keys(NEW_KEY, "an-unrelated-older-key", old_key)
    assert settings_page(during) == 200
    assert delivered(during, client, 5_000_001, fake_customerio)

    first = invoke_cli(during, "keys", "rotate")
    assert first.returncode == 0, first.stderr
    assert "re-encrypted 4 stored secrets" in first.stdout and "0 already" in first.stdout
    after = ciphertexts(rt)
    assert after.keys() == before.keys()
    new_only, old_only = SecretBox(NEW_KEY), SecretBox(old_key)
    for where, value in after.items():
        assert value != before[where]
        assert new_only.decrypt(value) == old_only.decrypt(before[where])
        assert not old_only.can_decrypt(value)
    assert new_only.decrypt(after[(OTHER, "cio_api_key_encrypted")]) == API_KEY

    again = invoke_cli(during, "keys", "rotate")  # idempotent
    assert again.returncode == 0, again.stderr
    assert "re-encrypted 0 stored secrets" in again.stdout and "4 already" in again.stdout
    assert ciphertexts(rt) == after

    only_new = with_keys(NEW_KEY)
    assert settings_page(only_new) == 200
    assert invoke_cli(only_new, "keys", "check").returncode == 0
    assert delivered(only_new, client, 5_000_002, fake_customerio)


def test_a_wrong_key_stops_web_and_worker_at_start(
    rt: Runtime, with_keys: Runtimes, fake_customerio: FakeCustomerIO
) -> None:
    shops_with_secrets(rt)
    before = ciphertexts(rt)
    wrong = with_keys(NEW_KEY)

    with pytest.raises(ConfigError) as caught:
        create_app(wrong)
    assert str(caught.value) == WRONG_KEY
    assert "CONNECTOR_SECRET_KEY_PREVIOUS" in WRONG_KEY and "connector keys rotate" in WRONG_KEY

    worker = invoke_cli(wrong, "worker", "--burst")
    assert worker.returncode == 1 and WRONG_KEY in worker.stderr
    check = invoke_cli(wrong, "keys", "check")
    assert check.returncode == 1 and WRONG_KEY in check.stderr
    rotate = invoke_cli(wrong, "keys", "rotate")
    assert rotate.returncode == 1 and WRONG_KEY in rotate.stderr
    assert f"{SHOP} shopify_refresh_token_encrypted" in rotate.stderr
    assert ciphertexts(rt) == before  # nothing was changed

    assert create_app(with_keys(NEW_KEY, rt.settings.secret_key))  # the remedy


def test_an_empty_or_unmigrated_database_passes_the_check(
    rt: Runtime, with_keys: Runtimes, tmp_path: object
) -> None:
    assert create_app(with_keys("any key at all"))  # no stored secrets yet
    blank = Runtime(replace(rt.settings, database_url=f"sqlite:///{tmp_path}/blank.db"))
    try:
        assert create_app(blank)  # not migrated: the check cannot read, the app still starts
    finally:
        blank.engine.dispose()


@pytest.mark.slow
def test_serve_refuses_to_start_with_a_wrong_key(rt: Runtime) -> None:
    shops_with_secrets(rt)
    wrong = replace(rt.settings, secret_key=NEW_KEY)
    result = run_cli(wrong, "serve", "--port", str(free_port()))
    assert result.returncode == 1
    assert WRONG_KEY in result.stderr and "not started" in result.stderr
