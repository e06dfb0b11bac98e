"""shopify.app.toml: the committed file is what `connector shopify config` renders for the
documented settings (the demo's, WEBHOOK_SUBSCRIPTIONS=app), and it declares what Shopify needs."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from connector.config import ConfigError, Settings
from connector.dev.serve import DEMO_ENV
from connector.shopify.app_config import declared_topics, render_app_config
from connector.shopify.oauth import SCOPES
from webhooks.topics import SUBSCRIBED_TOPICS

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTED = {**DEMO_ENV, "WEBHOOK_SUBSCRIPTIONS": "app"}
ADDRESS = "http://127.0.0.1:8000/webhooks/shopify"
COMPLIANCE = ["customers/data_request", "customers/redact", "shop/redact"]


def documented_settings() -> Settings:
    return Settings.from_env(DOCUMENTED)


def test_the_committed_file_is_what_the_command_renders(tmp_path: Path) -> None:
    output = tmp_path / "shopify.app.toml"
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **DOCUMENTED}
    subprocess.run(
        [sys.executable, "-m", "connector", "shopify", "config", "--output", str(output)],
        env=env,
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=60,
    )
    committed = (ROOT / "shopify.app.toml").read_text()
    assert output.read_text() == committed, (
        "shopify.app.toml is stale: run `connector shopify config --output shopify.app.toml` "
        "with the settings named in README (Install on a store)"
    )
    assert render_app_config(documented_settings()) == committed


def test_the_committed_file_declares_the_app_every_topic_and_the_privacy_topics() -> None:
    config = tomllib.loads((ROOT / "shopify.app.toml").read_text())

    assert config["client_id"] == "demo-api-key"
    assert config["application_url"] == "http://127.0.0.1:8000/settings"
    assert config["embedded"] is True
    assert config["access_scopes"]["scopes"].split(",") == list(SCOPES)
    assert config["auth"]["redirect_urls"] == ["http://127.0.0.1:8000/auth/callback"]
    assert config["webhooks"]["api_version"] == "2026-07"
    subscriptions = config["webhooks"]["subscriptions"]
    assert {sub["uri"] for sub in subscriptions} == {ADDRESS}
    topics = [topic for sub in subscriptions for topic in sub.get("topics", [])]
    assert sorted(topics) == sorted(topic.value for topic in SUBSCRIBED_TOPICS)
    (privacy,) = [sub["compliance_topics"] for sub in subscriptions if "compliance_topics" in sub]
    assert privacy == COMPLIANCE


def test_api_mode_declares_only_the_privacy_topics() -> None:
    text = render_app_config(replace(documented_settings(), webhook_subscriptions="api"))
    assert declared_topics(text, ADDRESS) == set(COMPLIANCE)
    assert "orders/create" not in text


def test_values_are_quoted_as_toml_strings() -> None:
    settings = replace(documented_settings(), shopify_api_key='odd "key" \\ here')
    assert tomllib.loads(render_app_config(settings))["client_id"] == 'odd "key" \\ here'


def test_declared_topics_counts_only_our_address_and_refuses_non_toml() -> None:
    text = render_app_config(documented_settings())
    assert declared_topics(text, "https://elsewhere.example/webhooks/shopify") == set()
    with pytest.raises(ValueError, match="not TOML"):
        declared_topics("topics = [", ADDRESS)


def test_an_unknown_subscription_mode_is_refused() -> None:
    with pytest.raises(ConfigError, match="WEBHOOK_SUBSCRIPTIONS"):
        Settings.from_env({**DEMO_ENV, "WEBHOOK_SUBSCRIPTIONS": "toml"})
