"""Settings: read from the environment once, fail naming what is missing, never show secrets."""

from __future__ import annotations

import pytest

from connector.config import ConfigError, Settings

REQUIRED = {
    "SHOPIFY_API_KEY": "key",
    "SHOPIFY_API_SECRET": "shopify-secret-value",
    "CONNECTOR_SECRET_KEY": "connector-secret-value",
}


def test_missing_required_settings_are_all_named() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"SHOPIFY_API_KEY": "key"})
    assert str(caught.value) == (
        "missing required settings: SHOPIFY_API_SECRET, CONNECTOR_SECRET_KEY"
    )


def test_defaults_are_sqlite_and_embedded_redis(tmp_path: object) -> None:
    settings = Settings.from_env({**REQUIRED, "CONNECTOR_INSTANCE_DIR": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path}/connector.db"
    assert settings.redis_url is None
    assert settings.shopify_api_secrets == ("shopify-secret-value",)


def test_previous_secret_and_overrides_are_read() -> None:
    settings = Settings.from_env(
        {
            **REQUIRED,
            "SHOPIFY_API_SECRET_PREVIOUS": "old",
            "RETRY_SCHEDULE": "1, 2,3",
            "DELIVERY_RATE_PER_SECOND": "7.5",
        }
    )
    assert settings.shopify_api_secrets == ("shopify-secret-value", "old")
    assert settings.retry_schedule == (1, 2, 3)
    assert settings.delivery_rate_per_second == 7.5


def test_malformed_number_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="malformed"):
        Settings.from_env({**REQUIRED, "DELIVERY_BATCH_SIZE": "many"})


def test_repr_hides_secrets_and_database_passwords() -> None:
    settings = Settings.from_env(
        {
            **REQUIRED,
            "DATABASE_URL": "postgresql://app:s3cret@db/prod",
        }
    )
    shown = repr(settings)
    assert "shopify-secret-value" not in shown and "connector-secret-value" not in shown
    assert "s3cret" not in shown and "postgresql://app:***@db/prod" in shown


def test_previous_secret_keys_are_a_comma_separated_list_never_shown() -> None:
    settings = Settings.from_env(
        {**REQUIRED, "CONNECTOR_SECRET_KEY_PREVIOUS": "old-key-one, old-key-two,"}
    )
    assert settings.previous_secret_keys == ("old-key-one", "old-key-two")
    assert "old-key" not in repr(settings)
    assert Settings.from_env(REQUIRED).previous_secret_keys == ()


def test_retention_defaults_and_its_floor() -> None:
    defaults = Settings.from_env(REQUIRED)
    assert (defaults.event_retention_days, defaults.webhook_retention_days) == (90, 30)
    assert defaults.retention_interval_seconds == 3600
    kept = Settings.from_env(
        {**REQUIRED, "EVENT_RETENTION_DAYS": "0", "WEBHOOK_RETENTION_DAYS": "8"}
    )
    assert (kept.event_retention_days, kept.webhook_retention_days) == (0, 8)
    for name in ("EVENT_RETENTION_DAYS", "WEBHOOK_RETENTION_DAYS"):
        for days in ("7", "-1"):
            with pytest.raises(ConfigError, match=f"{name} must be 0 .* or at least 8 days"):
                Settings.from_env({**REQUIRED, name: days})
