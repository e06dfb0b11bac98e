"""gunicorn's settings and hooks: `gunicorn -c python:connector.gunicorn_config` (Procfile).

Metrics: each web worker keeps its values in PROMETHEUS_MULTIPROC_DIR, so a scrape of any of
them adds up all (connector/metrics.py). When the variable is unset, the master sets it to
CONNECTOR_INSTANCE_DIR/prometheus (emptied at start) before any worker starts; an
operator's own directory is created if missing but never emptied, since a worker on the
same machine may be writing to it (empty it before the first process starts). A worker that
exits is marked dead (`child_exit`), which drops its live gauges; its counters stay, so
totals never go backwards.

Logs: gunicorn's own error and access logs follow LOG_FORMAT (text or json).

Workers: WEB_CONCURRENCY, else gunicorn's own advice, two per core plus one. A sync worker
waits for PostgreSQL's commit on every webhook; with one worker a core, a fifth of the
machine sat idle under load (docs/benchmarks.md, seventh session).

Nothing here imports prometheus_client at import: it decides at its own import whether it
runs in multiprocess mode, so that must happen after `on_starting` set the directory.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from connector.logs import FORMATS, gunicorn_logconfig


def default_workers(cpu_count: int | None = None) -> int:
    """Web workers when WEB_CONCURRENCY is unset: (2 x cores) + 1."""
    return 2 * (cpu_count or available_cores()) + 1


def available_cores() -> int:
    """The cores this process may run on (a container's cpuset, `taskset`), not the host's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity outside Linux
        return os.cpu_count() or 1


def configured_workers() -> int:
    """WEB_CONCURRENCY, else `default_workers()` (the bench runs the same count)."""
    return int(os.environ.get("WEB_CONCURRENCY") or default_workers())


workers = configured_workers()

_log_format = os.environ.get("LOG_FORMAT", "text").lower()
logconfig_dict = gunicorn_logconfig(
    _log_format if _log_format in FORMATS else "text",
    os.environ.get("LOG_LEVEL", "INFO").upper(),
)


def on_starting(_server: Any) -> None:
    """Before the workers fork: make sure they share a metrics directory."""
    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if configured:
        Path(configured).mkdir(parents=True, exist_ok=True)
        return
    own = Path(os.environ.get("CONNECTOR_INSTANCE_DIR", "var")).resolve() / "prometheus"
    shutil.rmtree(own, ignore_errors=True)
    own.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(own)


def child_exit(_server: Any, worker: Any) -> None:
    """A web worker exited: drop its live gauges from the shared directory."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
