"""Log set-up for every process: text lines, or one JSON object per line (LOG_FORMAT=json).

A JSON line holds the time, level, logger and message, plus the ids a call passes with
`extra=` (IDS below) and nothing else of the record. An exception is written as its class
and the frames it passed through, never its message: a message can quote a shopper's email.
"""

from __future__ import annotations

import json
import logging
import traceback
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
FORMATS = ("text", "json")
# The `extra=` keys a JSON line carries: ids and counts, never personal data.
IDS = (
    "shop",
    "topic",
    "webhook_id",
    "webhook_ids",
    "shopify_event_id",
    "shopify_event_ids",
    "event_id",
    "event_ids",
    "outcome",
)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in IDS:
            value = record.__dict__.get(key)
            if value is not None:
                line[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            kind, _, tb = record.exc_info
            line["exception"] = kind.__name__  # the class only: see the module docstring
            line["stack"] = "".join(traceback.format_tb(tb))
        return json.dumps(line, default=str)


def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def configure_logging(level: str, log_format: str = "text") -> None:
    """Give the root logger one stderr handler in `log_format` (once per process: a second
    call, or a handler someone else installed, such as pytest's, leaves it as it is)."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format))
    root.addHandler(handler)
    root.setLevel(level)


def gunicorn_logconfig(log_format: str, level: str = "INFO") -> dict[str, Any]:
    """gunicorn's `logconfig_dict` for LOG_FORMAT=json: its error and access logs as JSON
    lines on stderr, at `level` (LOG_LEVEL). Empty for text: gunicorn's own set-up."""
    if log_format != "json":
        return {}
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "connector.logs.JsonFormatter"}},
        "handlers": {"json": handler},
        # gunicorn's defaults give the root logger handlers of their own; none here, so the
        # app factory sets it up in each worker (LOG_LEVEL, LOG_FORMAT).
        "root": {"handlers": []},
        "loggers": {
            "gunicorn.error": {"handlers": ["json"], "propagate": False, "level": level},
            "gunicorn.access": {"handlers": ["json"], "propagate": False, "level": level},
        },
    }
