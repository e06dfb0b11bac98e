"""The `connector` command line: one module per command group, imported when it is run.

`connector worker` starts with every restart and every scale-out; importing all the other
commands with it (the embedded Redis, Alembic, the console's password hashing) took about
a third of its start-up (docs/benchmarks.md).
"""

from __future__ import annotations

import importlib

import click

# command name -> "module:attribute" of its click command or group
COMMANDS = {
    "db": "connector.cli.db:db",
    "shops": "connector.cli.shops:shops",
    "spec": "connector.cli.spec:spec",
    "replay": "connector.cli.replay:replay",
    "events": "connector.cli.events:events",
    "webhooks": "connector.cli.webhooks:webhooks",
    "webhook": "connector.cli.webhook:webhook",
    "staff": "connector.cli.staff:staff",
    "keys": "connector.cli.keys:keys",
    "history": "connector.cli.history:history",
    "reconcile": "connector.cli.reconcile:reconcile",
    "prune": "connector.cli.prune:prune_command",
    "sweep": "connector.cli.run:sweep",
    "worker": "connector.cli.run:worker",
    "serve": "connector.cli.run:serve",
    "shopify": "connector.cli.shopify_config:shopify",
}


class LazyGroup(click.Group):
    """A group whose commands are imported only when one is run or listed in --help
    (click's documented pattern for lazily loaded subcommands)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attribute = COMMANDS[cmd_name].split(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup)
def main() -> None:
    """Shopify -> Customer.io purchase-feed connector."""
