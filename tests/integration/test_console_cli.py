"""`connector staff`, `connector events` and the audited `connector replay`.

In process through click's CliRunner; one test runs `python -m connector` end to end.
"""

from __future__ import annotations

import getpass

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from connector.console.staff import authenticate
from connector.dev.fake_customerio import FakeCustomerIO
from connector.events import EventName, stable_event_id
from connector.runtime import Runtime
from connector.storage.models import Event, ReplayAudit, StaffUser
from tests.support import (
    SHOP,
    add_staff_account,
    console_order,
    failed_order_event,
    invoke_cli,
    post_webhook,
    run_cli,
    run_jobs,
)


def statuses(rt: Runtime) -> dict[str, str]:
    with rt.sessions() as session:
        return dict(session.execute(select(Event.id, Event.status)).tuples().all())


def audits(rt: Runtime) -> list[ReplayAudit]:
    with rt.sessions() as session:
        return list(session.scalars(select(ReplayAudit).order_by(ReplayAudit.id)).all())


def test_staff_add_stores_a_hash_that_logs_in(rt: Runtime) -> None:
    add_staff_account(rt, "someone@example.com")  # clean slate
    result = invoke_cli(rt, "staff", "add", "Ops@Example.com", "--password", "a long passphrase")
    assert result.returncode == 0, result.stderr
    assert "ops@example.com" in result.stdout
    with rt.sessions() as session:
        user = session.scalar(select(StaffUser).where(StaffUser.email == "ops@example.com"))
        assert user is not None and "a long passphrase" not in user.password_hash
        assert authenticate(session, "ops@example.com", "a long passphrase") is not None
    short = invoke_cli(rt, "staff", "add", "x@example.com", "--password", "short")
    assert short.returncode != 0 and "12 characters" in short.stderr


def test_staff_add_prompts_for_the_password_twice(rt: Runtime) -> None:
    add_staff_account(rt)
    result = run_cli(  # end to end: `python -m connector` in a subprocess, prompts on stdin
        rt.settings,
        "staff",
        "add",
        "p@example.com",
        answer="prompted passphrase\nprompted passphrase\n",
    )
    assert result.returncode == 0, result.stderr
    with rt.sessions() as session:
        assert authenticate(session, "p@example.com", "prompted passphrase") is not None


def test_events_list_and_show(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    for index in range(2):
        post_webhook(client, "orders/create", console_order(index), f"cli-{index}")
    run_jobs(rt)
    event_id = stable_event_id(SHOP, EventName.ORDER_PLACED, "9100000")

    listed = invoke_cli(rt, "events", "list", "--shop", SHOP, "--status", "delivered")
    assert listed.returncode == 0, listed.stderr
    assert event_id in listed.stdout and "#1042" in listed.stdout and "2 event(s)" in listed.stdout
    since = invoke_cli(rt, "events", "list", "--since", "2030-01-01T00:00:00Z")
    assert "0 event(s)" in since.stdout
    limited = invoke_cli(rt, "events", "list", "--limit", "1")
    assert "1 event(s)" in limited.stdout

    for key in (event_id, "#1042", "1042"):
        shown = invoke_cli(rt, "events", "show", key)
        assert shown.returncode == 0, shown.stderr
        assert "Webhook received" in shown.stdout and "Delivery attempt" in shown.stdout
        assert '"action": "identify"' in shown.stdout and f'"id": "{event_id}"' in shown.stdout
    missing = invoke_cli(rt, "events", "show", "#999999")
    assert missing.returncode != 0 and "no event matches" in missing.stderr


def test_replay_failed_answering_no_changes_nothing(
    client: FlaskClient, rt: Runtime, fake_customerio: FakeCustomerIO
) -> None:
    add_staff_account(rt)
    event_id = failed_order_event(client, rt)
    before = statuses(rt)
    result = invoke_cli(rt, "replay", "--failed", "--shop", SHOP, answer="n\n")
    assert result.returncode != 0
    assert f"1 event(s) to queue again with the same ids: {SHOP} (1)" in result.stdout
    assert statuses(rt) == before == {event_id: "failed"}
    assert audits(rt) == []


def test_replay_failed_with_yes_is_delivered_once_and_audited(
    client: FlaskClient, rt: Runtime, fake_customerio: FakeCustomerIO
) -> None:
    add_staff_account(rt)
    event_id = failed_order_event(client, rt)
    result = invoke_cli(rt, "replay", "--failed", "--shop", SHOP, "--yes")
    assert result.returncode == 0, result.stderr
    assert "failed -> pending" in result.stdout
    run_jobs(rt)
    again = invoke_cli(rt, "replay", "--failed", "--shop", SHOP, "--yes")
    assert "0 event(s) to queue again" in again.stdout
    named = invoke_cli(rt, "replay", event_id)
    assert "1 delivered event(s) left alone" in named.stdout
    run_jobs(rt)
    assert [e["id"] for e in fake_customerio.events_named("order_placed")] == [event_id]
    entries = audits(rt)
    who = f"cli:{getpass.getuser()}"
    assert [(a.actor, a.requeued, a.skipped) for a in entries] == [(who, 1, 0)]
    assert entries[0].filters["shop"] == SHOP and entries[0].event_ids == [event_id]


def test_replay_dry_run_changes_nothing(
    client: FlaskClient, rt: Runtime, fake_customerio: FakeCustomerIO
) -> None:
    add_staff_account(rt)
    event_id = failed_order_event(client, rt)
    result = invoke_cli(rt, "replay", "--failed", "--dry-run")
    assert result.returncode == 0 and "1 event(s) to queue again" in result.stdout
    assert statuses(rt) == {event_id: "failed"} and audits(rt) == []


@pytest.mark.parametrize(
    "args",
    [("replay", "--failed", "--since", "garbage"), ("events", "list", "--since", "garbage")],
)
def test_a_garbage_time_is_a_clean_usage_error(args: tuple[str, ...]) -> None:
    result = invoke_cli(None, *args)
    assert result.returncode == 2
    assert "Invalid value for '--since': not an ISO-8601 time: 'garbage'" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("shops", "add", "evil.example.com", "--site-id", "site-1", "--api-key", "key-1"),
        ("history", "import", "--shop", "evil.example.com"),
    ],
)
def test_a_shop_outside_myshopify_is_a_clean_usage_error(args: tuple[str, ...]) -> None:
    result = invoke_cli(None, *args)
    assert result.returncode == 2
    assert "not a *.myshopify.com domain" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
