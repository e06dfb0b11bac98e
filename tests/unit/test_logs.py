"""LOG_FORMAT=json: one JSON object per record, ids from `extra=`, no exception messages."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from connector.config import ConfigError, Settings
from connector.logs import JsonFormatter, gunicorn_logconfig


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("jobs.delivery", logging.INFO, __file__, 1, "sent %d", (2,), None)
    record.__dict__.update(extra)
    return record


def test_a_record_is_one_json_line_with_its_ids() -> None:
    line = JsonFormatter().format(_record(event_ids=["01A", "01B"], shop="s.myshopify.com"))
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["level"] == "INFO" and parsed["logger"] == "jobs.delivery"
    assert parsed["message"] == "sent 2"
    assert parsed["event_ids"] == ["01A", "01B"] and parsed["shop"] == "s.myshopify.com"
    assert parsed["time"].endswith("+00:00")


def test_other_extra_fields_are_left_out() -> None:
    parsed = json.loads(JsonFormatter().format(_record(email="maya.chen@example.com")))
    assert "maya" not in json.dumps(parsed)


def test_an_exception_is_its_class_and_frames_never_its_message() -> None:
    email = "maya.chen@example.com"
    try:
        raise ValueError(f"bad email {email}")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    parsed = json.loads(JsonFormatter().format(record))
    assert parsed["exception"] == "ValueError"
    assert "test_an_exception_is_its_class" in parsed["stack"]
    assert "maya" not in json.dumps(parsed)


def test_log_format_is_text_or_json() -> None:
    env = {"SHOPIFY_API_KEY": "k", "SHOPIFY_API_SECRET": "s", "CONNECTOR_SECRET_KEY": "c"}
    assert Settings.from_env({**env, "LOG_FORMAT": "JSON"}).log_format == "json"
    assert Settings.from_env(env).log_format == "text"
    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        Settings.from_env({**env, "LOG_FORMAT": "xml"})


def test_gunicorn_keeps_its_own_logging_in_text_mode() -> None:
    assert gunicorn_logconfig("text") == {}
    assert gunicorn_logconfig("json", "WARNING")["loggers"]["gunicorn.access"]["level"] == "WARNING"
