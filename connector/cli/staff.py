"""`connector staff add|disable|enable`: support console accounts."""

from __future__ import annotations

import click

from connector.cli.params import current_runtime
from connector.console.staff import StaffError, add_staff, set_active
from connector.storage.db import transaction


@click.group()
def staff() -> None:
    """Support console accounts."""


@staff.command("add")
@click.argument("email")
@click.password_option(help="the password (prompted for when not given)")
def staff_add(email: str, password: str) -> None:
    """Create EMAIL's console account, or set a new password on it (ending its sessions)."""
    try:
        with transaction(current_runtime().sessions) as session:
            user = add_staff(session, email, password)
            saved = user.email
    except StaffError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"staff account {saved} saved")


@staff.command("disable")
@click.argument("email")
def staff_disable(email: str) -> None:
    """Refuse EMAIL's logins and end its sessions now."""
    click.echo(f"staff account {_set_active(email, False)} disabled; its sessions are ended")


@staff.command("enable")
@click.argument("email")
def staff_enable(email: str) -> None:
    """Let EMAIL log in again (with the password it had)."""
    click.echo(f"staff account {_set_active(email, True)} enabled")


def _set_active(email: str, active: bool) -> str:
    try:
        with transaction(current_runtime().sessions) as session:
            return set_active(session, email, active).email
    except StaffError as exc:
        raise click.ClickException(str(exc)) from exc
