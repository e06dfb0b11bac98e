"""`connector staff add`: support console accounts."""

from __future__ import annotations

import click

from connector.cli.params import current_runtime
from connector.console.staff import StaffError, add_staff
from connector.storage.db import transaction


@click.group()
def staff() -> None:
    """Support console accounts."""


@staff.command("add")
@click.argument("email")
@click.password_option(help="the password (prompted for when not given)")
def staff_add(email: str, password: str) -> None:
    """Create EMAIL's console account, or set a new password on it."""
    try:
        with transaction(current_runtime().sessions) as session:
            user = add_staff(session, email, password)
            saved = user.email
    except StaffError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"staff account {saved} saved")
