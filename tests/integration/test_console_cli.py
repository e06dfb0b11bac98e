"""`connector staff`, `connector events` and the audited `connector replay`, as subprocesses."""

from __future__ import annotations

import getpass
import subprocess
import sys

from flask.testing import FlaskClient
from sqlalchemy import select

from connector.console.staff import authenticate
from connector.dev.fake_customerio import FakeCustomerIO
from connector.events import EventName, stable_event_id
from connector.runtime import Runtime
from connector.storage.models import Event, ReplayAudit, StaffUser
from tests.support import (
    ROOT,
    SHOP,
    add_staff_account,
    console_order,
    failed_order_event,
    post_webhook,
    run_cli,
    run_jobs,
    subprocess_env,
)


def run_cli_answering(rt: Runtime, answer: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector", *args],
        cwd=ROOT,
        env=subprocess_env(rt.settings),
        input=answer,
        capture_output=True,
        text=True,
        timeout=60,
    )


def statuses(rt: Runtime) -> dict[str, str]:
    with rt.sessions() as session:
        return dict(session.execute(select(Event.id, Event.status)).tuples().all())


def audits(rt: Runtime) -> list[ReplayAudit]:
    with rt.sessions() as session:
        return list(session.scalars(select(ReplayAudit).order_by(ReplayAudit.id)).all())


def test_staff_add_stores_a_hash_that_logs_in(rt: Runtime) -> None:
    add_staff_account(rt, "someone@example.com")  # clean slate
    result = run_cli(
        rt.settings, "staff", "add", "Ops@Example.com", "--password", "a long passphrase"
    )
    assert result.returncode == 0, result.stderr
    assert "ops@example.com" in result.stdout
    with rt.sessions() as session:
        user = session.scalar(select(StaffUser).where(StaffUser.email == "ops@example.com"))
        assert user is not None and "a long passphrase" not in user.password_hash
        assert authenticate(session, "ops@example.com", "a long passphrase") is not None
    short = run_cli(rt.settings, "staff", "add", "x@example.com", "--password", "short")
    assert short.returncode != 0 and "12 characters" in short.stderr


def test_staff_add_prompts_for_the_password_twice(rt: Runtime) -> None:
    add_staff_account(rt)
    result = run_cli_answering(
        rt, "prompted passphrase\nprompted passphrase\n", "staff", "add", "p@example.com"
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

    listed = run_cli(rt.settings, "events", "list", "--shop", SHOP, "--status", "delivered")
    assert listed.returncode == 0, listed.stderr
    assert event_id in listed.stdout and "#1042" in listed.stdout and "2 event(s)" in listed.stdout
    since = run_cli(rt.settings, "events", "list", "--since", "2030-01-01T00:00:00Z")
    assert "0 event(s)" in since.stdout
    limited = run_cli(rt.settings, "events", "list", "--limit", "1")
    assert "1 event(s)" in limited.stdout

    for key in (event_id, "#1042", "1042"):
        shown = run_cli(rt.settings, "events", "show", key)
        assert shown.returncode == 0, shown.stderr
        assert "Webhook received" in shown.stdout and "Delivery attempt" in shown.stdout
        assert '"action": "identify"' in shown.stdout and f'"id": "{event_id}"' in shown.stdout
    missing = run_cli(rt.settings, "events", "show", "#999999")
    assert missing.returncode != 0 and "no event matches" in missing.stderr


def test_replay_failed_answering_no_changes_nothing(
    client: FlaskClient, rt: Runtime, fake_customerio: FakeCustomerIO
) -> None:
    add_staff_account(rt)
    event_id = failed_order_event(client, rt)
    before = statuses(rt)
    result = run_cli_answering(rt, "n\n", "replay", "--failed", "--shop", SHOP)
    assert result.returncode != 0
    assert f"1 event(s) to queue again with the same ids: {SHOP} (1)" in result.stdout
    assert statuses(rt) == before == {event_id: "failed"}
    assert audits(rt) == []


def test_replay_failed_with_yes_is_delivered_once_and_audited(
    client: FlaskClient, rt: Runtime, fake_customerio: FakeCustomerIO
) -> None:
    add_staff_account(rt)
    event_id = failed_order_event(client, rt)
    result = run_cli(rt.settings, "replay", "--failed", "--shop", SHOP, "--yes")
    assert result.returncode == 0, result.stderr
    assert "failed -> pending" in result.stdout
    run_jobs(rt)
    again = run_cli(rt.settings, "replay", "--failed", "--shop", SHOP, "--yes")
    assert "0 event(s) to queue again" in again.stdout
    named = run_cli(rt.settings, "replay", event_id)
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
    result = run_cli(rt.settings, "replay", "--failed", "--dry-run")
    assert result.returncode == 0 and "1 event(s) to queue again" in result.stdout
    assert statuses(rt) == {event_id: "failed"} and audits(rt) == []
