"""What every command shares: the runtime, and click types for ISO times and shop domains."""

from __future__ import annotations

from datetime import datetime

import click

from connector import runtime
from connector.config import ConfigError
from connector.runtime import Runtime
from connector.shop_domain import normalize_shop_domain
from connector.statuses import EventStatus
from connector.timeutil import parse_utc


def current_runtime() -> Runtime:
    """This process's runtime; a missing or bad setting is a clean error, not a traceback."""
    try:
        return runtime.current()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


class UtcTime(click.ParamType):
    """An ISO-8601 time read by parse_utc (no offset means UTC)."""

    name = "iso-time"

    def convert(
        self, value: str | datetime, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_utc(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class ShopDomain(click.ParamType):
    """A `*.myshopify.com` domain, trimmed and lower-cased by normalize_shop_domain."""

    name = "shop-domain"

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return normalize_shop_domain(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


UTC_TIME = UtcTime()
SHOP_DOMAIN = ShopDomain()
EVENT_STATUS = click.Choice([status.value for status in EventStatus])
