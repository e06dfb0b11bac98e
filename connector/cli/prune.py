"""`connector prune [--dry-run]`: apply retention now (the worker does it periodically)."""

from __future__ import annotations

from datetime import datetime

import click

from connector.cli.params import current_runtime
from jobs.retention import CHUNK_ROWS, PruneReport, RetentionPolicy, prune


@click.command("prune")
@click.option("--dry-run", is_flag=True, help="count what would be deleted; change nothing")
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=CHUNK_ROWS,
    show_default=True,
    help="events or webhooks per transaction",
)
def prune_command(dry_run: bool, chunk_size: int) -> None:
    """Delete delivered events, closed checkouts (with their delivery attempts) and
    processed webhooks older than EVENT_RETENTION_DAYS / WEBHOOK_RETENTION_DAYS.

    Failed, quarantined, pending, waiting and unidentifiable events, failed or waiting
    webhooks, the webhooks such events came from, the first-order ledger and privacy
    tombstones are kept whatever their age.
    """
    rt = current_runtime()
    policy = RetentionPolicy.from_settings(rt.settings, chunk_rows=chunk_size)
    report = prune(rt.sessions, policy, dry_run=dry_run)
    for line in report_lines(report, policy, rt.settings.event_retention_days):
        click.echo(line)


def report_lines(report: PruneReport, policy: RetentionPolicy, configured_days: int) -> list[str]:
    """What `connector prune` prints: the cutoffs, then one line per table."""
    verb = "would delete" if report.dry_run else "deleted"
    raised = (
        f" (EVENT_RETENTION_DAYS={configured_days}, raised past NEW_ORDER_WINDOW_HOURS)"
        if policy.event_days != configured_days
        else ""
    )
    lines = [
        f"events:   {_cutoff(report.event_cutoff, policy.event_days, 'EVENT')}{raised}",
        f"webhooks: {_cutoff(report.webhook_cutoff, policy.webhook_days, 'WEBHOOK')}",
        f"  events               {report.events:>10,}  {verb} (delivered, or closed checkouts)",
        f"  delivery_attempts    {report.attempts:>10,}  {verb} (of those events)",
        f"  webhook_deliveries   {report.webhooks:>10,}  {verb} (processed or ignored)",
        f"  customer_orders      {report.orders_marked:>10,}  "
        + ("would be marked" if report.dry_run else "marked")
        + " (their order_placed pruned; rows kept)",
    ]
    if not report.dry_run:
        lines.append(
            f"  events               {report.events_unlinked:>10,}  unlinked from a deleted "
            "webhook (kept)"
        )
    lines.append(
        f"{report.rows:,} rows {verb} in {report.seconds:.1f} s "
        f"({report.chunks} chunks of up to {policy.chunk_rows:,})"
    )
    if report.vacuumed:
        lines.append(f"then vacuumed {', '.join(report.vacuumed)} in {report.vacuum_seconds:.1f} s")
    return lines


def _cutoff(cutoff: datetime | None, days: int, setting: str) -> str:
    if cutoff is None:
        return f"kept forever ({setting}_RETENTION_DAYS=0)"
    return f"older than {cutoff:%Y-%m-%d %H:%M} UTC ({days} days)"
