"""gunicorn as the Procfile runs it starts WEB_CONCURRENCY workers, else (2 x cores) + 1,
counting the cores the process may run on."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from connector.gunicorn_config import default_workers
from connector.runtime import Runtime
from tests.support import ROOT, free_port, subprocess_env


def test_two_workers_a_core_and_one_more() -> None:
    assert [default_workers(cores) for cores in (1, 2, 8)] == [3, 5, 17]


def procfile_web() -> str:
    """The Procfile's web command (it starts with `gunicorn`)."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return line.removeprefix("web:").strip()
    raise AssertionError("the Procfile has no web process")


def on_one_core(command: str) -> list[str]:
    """`command` through `sh`, pinned to one core (as a container's cpuset would pin it): the
    default is then 3 workers on any machine, not 2 x its cores + 1."""
    core = min(os.sched_getaffinity(0))
    pin = f"import os; os.sched_setaffinity(0, {{{core}}}); "
    pin += f"os.execvp('sh', ['sh', '-c', {command!r}])"
    return [sys.executable, "-c", pin]


def children_of(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


@pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity"), reason="counts processes in /proc, pins to a core"
)
@pytest.mark.parametrize("concurrency", ["3", ""])
def test_the_procfile_web_runs_the_configured_workers(
    rt: Runtime, tmp_path: Path, concurrency: str
) -> None:
    port = free_port()
    env = {**subprocess_env(rt.settings), "CONNECTOR_INSTANCE_DIR": str(tmp_path)}
    env.pop("WEB_CONCURRENCY", None)
    if concurrency:
        env["WEB_CONCURRENCY"] = concurrency
    env["PORT"] = str(port)
    web = subprocess.Popen(
        on_one_core(f"exec {sys.executable} -m {procfile_web()}"),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    expected = int(concurrency) if concurrency else 3
    try:
        deadline = time.monotonic() + 60
        while len(children_of(web.pid)) < expected and time.monotonic() < deadline:
            time.sleep(0.1)
        with socket.create_connection(("127.0.0.1", port), timeout=30):  # it serves
            pass
        time.sleep(0.5)  # more than expected would have been forked by now
        assert len(children_of(web.pid)) == expected
    finally:
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(10)
