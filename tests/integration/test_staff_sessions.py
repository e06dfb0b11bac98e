"""Staff sessions end for real: logout, a new password and a disabled account kill every
copy of the cookie at once (the account's session version), not when the cookie expires."""

from __future__ import annotations

from flask.testing import FlaskClient

from connector.runtime import Runtime
from tests.support import (
    STAFF_EMAIL,
    add_staff_account,
    console_csrf,
    console_login,
    invoke_cli,
)


def logged_in(client: FlaskClient) -> FlaskClient:
    assert console_login(client).status_code == 302
    assert client.get("/console/").status_code == 200
    return client


def copy_of_cookie(client: FlaskClient) -> FlaskClient:
    """A second browser holding the very same session cookie (a stolen or copied one)."""
    cookie = client.get_cookie("session")
    assert cookie is not None
    other = client.application.test_client()
    other.set_cookie("session", cookie.value)
    return other


def test_logout_ends_a_copied_cookie_too(client: FlaskClient, rt: Runtime) -> None:
    add_staff_account(rt)
    copy = copy_of_cookie(logged_in(client))
    assert copy.get("/console/").status_code == 200
    assert client.post("/console/logout", data={"csrf_token": console_csrf(client)}).status_code
    answer = copy.get("/console/")
    assert answer.status_code == 302 and "/console/login" in answer.location
    assert logged_in(client)  # logging in again works, with a new session


def test_a_new_password_ends_the_other_sessions(client: FlaskClient, rt: Runtime) -> None:
    add_staff_account(rt)
    first = logged_in(client)
    second = logged_in(client.application.test_client())
    changed = invoke_cli(rt, "staff", "add", STAFF_EMAIL, "--password", "a brand new passphrase")
    assert changed.returncode == 0, changed.stderr
    assert first.get("/console/").status_code == 302
    assert second.get("/console/").status_code == 302
    fresh = client.application.test_client()
    assert console_login(fresh).status_code == 401  # the old password is gone
    assert console_login(fresh, password="a brand new passphrase").status_code == 302


def test_a_disabled_account_cannot_log_in_and_its_session_dies(
    client: FlaskClient, rt: Runtime
) -> None:
    add_staff_account(rt)
    other = add_staff_account(rt, "other@example.com")
    session = logged_in(client)
    bystander = client.application.test_client()
    assert console_login(bystander, email=other).status_code == 302

    disabled = invoke_cli(rt, "staff", "disable", "Support@Example.com")
    assert disabled.returncode == 0, disabled.stderr
    assert "support@example.com disabled" in disabled.stdout
    assert session.get("/console/").status_code == 302
    assert bystander.get("/console/").status_code == 200  # another account is untouched
    assert console_login(client.application.test_client()).status_code == 401

    enabled = invoke_cli(rt, "staff", "enable", STAFF_EMAIL)
    assert enabled.returncode == 0, enabled.stderr
    assert session.get("/console/").status_code == 302  # the old session stays dead
    assert logged_in(client.application.test_client())


def test_disable_names_an_unknown_account(rt: Runtime) -> None:
    result = invoke_cli(rt, "staff", "disable", "nobody@example.com")
    assert result.returncode != 0 and "no staff account nobody@example.com" in result.stderr
