"""`connector replay`: the audited replay the console offers, from the command line."""

from __future__ import annotations

import getpass
from datetime import datetime

import click

from connector.cli.params import UTC_TIME, current_runtime
from jobs.replay import ReplayPreview, ReplayRequest, preview_replay, run_replay


@click.command()
@click.argument("event_ids", nargs=-1)
@click.option("--failed", is_flag=True, help="replay every failed (and quarantined) event")
@click.option("--shop", default=None)
@click.option("--since", type=UTC_TIME, default=None, help="ISO time: events at or after")
@click.option("--until", type=UTC_TIME, default=None, help="ISO time: events before")
@click.option("--dry-run", is_flag=True, help="show what would be replayed, change nothing")
@click.option("--yes", is_flag=True, help="replay --failed without asking for confirmation")
def replay(
    event_ids: tuple[str, ...],
    failed: bool,
    shop: str | None,
    since: datetime | None,
    until: datetime | None,
    dry_run: bool,
    yes: bool,
) -> None:
    """Queue EVENT_IDS (or all failed events) again, with the same ids; audited.

    Shows first what it will do, then asks for confirmation unless --yes.
    """
    if not event_ids and not failed:
        raise click.UsageError("give EVENT_IDS or --failed")
    request = ReplayRequest(
        event_ids=() if failed else tuple(i.strip().upper() for i in event_ids),
        shop=shop,
        since=since,
        until=until,
    )
    rt = current_runtime()
    with rt.sessions() as session:
        preview = preview_replay(session, request)
    _echo_preview(preview)
    if dry_run or not (preview.replayable or preview.webhooks):
        return
    if not yes:
        click.confirm(
            f"Replay {preview.replayable} event(s) and {preview.webhooks} webhook(s)?", abort=True
        )
    result = run_replay(rt, request, actor=f"cli:{_os_user()}")
    for outcome in result.outcomes:
        click.echo(
            f"{outcome.event_id} {outcome.shop_domain} {outcome.before} -> "
            f"{outcome.after}: {outcome.detail}"
        )
    click.echo(
        f"replay #{result.audit_id}: {result.requeued} queued again, "
        f"{result.quarantined} still break the spec, {result.skipped} left alone"
    )


def _echo_preview(preview: ReplayPreview) -> None:
    for event_id in preview.missing:
        click.echo(f"{event_id}: no such event", err=True)
    shops = ", ".join(f"{shop} ({count})" for shop, count in preview.by_shop.items())
    click.echo(f"{preview.replayable} event(s) to queue again with the same ids: {shops or '-'}")
    if preview.webhooks:
        click.echo(f"{preview.webhooks} webhook(s) set aside to map again")
    for status, count in sorted(preview.skipped.items()):
        click.echo(f"{count} {status} event(s) left alone")


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
