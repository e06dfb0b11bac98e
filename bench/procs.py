"""Child processes in their own process groups, always stopped; ports; connector env."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from connector.gunicorn_config import configured_workers

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
PYTHON = sys.executable
CONNECTOR = [PYTHON, "-m", "connector"]


class Children:
    """Every process the bench starts; `stop_all` kills their whole groups."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []
        self._logs: dict[int, IO[bytes]] = {}

    def start(
        self, args: list[str], env: Mapping[str, str], log: Path | None = None
    ) -> subprocess.Popen[bytes]:
        out = open(log, "ab") if log else None  # closed by stop()
        proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=dict(env),
            stdout=out or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killpg reaches its children
        )
        self._procs.append(proc)
        if out is not None:
            self._logs[proc.pid] = out
        return proc

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
        """SIGTERM the process group, then SIGKILL it after `grace` seconds."""
        if proc in self._procs:
            self._procs.remove(proc)
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
        _signal_group(proc, signal.SIGKILL)  # stragglers in the group (e.g. the sweep child)
        proc.wait()
        log = self._logs.pop(proc.pid, None)
        if log is not None:
            log.close()

    def stop_all(self) -> None:
        for proc in reversed(list(self._procs)):
            self.stop(proc)


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used so far (Linux /proc; 0.0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _signal_group(proc: subprocess.Popen[bytes], signum: int) -> None:
    try:
        os.killpg(proc.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Wait until something accepts connections on 127.0.0.1:`port`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout:.0f}s")


def gunicorn_args(
    app: str, port: int, *, pythonpath: Path | None = None, workers: int | None = None
) -> list[str]:
    """Sync workers on loopback, no access log: the same for the baseline and the app.

    `workers` defaults to what the Procfile runs: WEB_CONCURRENCY, else (2 x cores) + 1.
    """
    count = workers or configured_workers()
    args = [PYTHON, "-m", "gunicorn", "--workers", str(count), "--worker-class", "sync"]
    args += os.environ.get("BENCH_GUNICORN_ARGS", "").split()  # experiments: later ones win
    args += ["--bind", f"127.0.0.1:{port}", "--log-level", "warning"]
    if pythonpath is not None:
        args += ["--pythonpath", str(pythonpath)]
    return [*args, app]


def connector_env(
    *,
    database_url: str,
    redis_url: str,
    instance_dir: Path,
    queue: str,
    secret: str,
    track_url: str = "",
    rate: float = 100.0,
    batch_size: int = 50,
) -> dict[str, str]:
    """The environment connector/serve.py gives its children, with the bench's values."""
    prefixes = ("SHOPIFY_", "DATABASE_", "REDIS_", "CUSTOMERIO_", "DELIVERY_", "CONNECTOR_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(
        {
            "SHOPIFY_API_KEY": "bench-api-key",
            "SHOPIFY_API_SECRET": secret,
            "CONNECTOR_SECRET_KEY": "bench-connector-secret-key",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "CUSTOMERIO_TRACK_URL": track_url,
            "CONNECTOR_INSTANCE_DIR": str(instance_dir),
            "CONNECTOR_QUEUE": queue,
            "DELIVERY_RATE_PER_SECOND": str(rate),
            "DELIVERY_BATCH_SIZE": str(batch_size),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def run_cli(env: Mapping[str, str], *args: str) -> None:
    """Run `python -m connector ARGS` to completion; raise with its output on failure."""
    done = subprocess.run(
        [*CONNECTOR, *args],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
        start_new_session=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"connector {' '.join(args)} failed:\n{done.stdout}{done.stderr}")


# One Python process running many `connector` commands: imports and connections once.
_CLI_MANY = """
import json, sys
from connector.cli import main
for args in json.load(sys.stdin):
    main(args, standalone_mode=False)
"""


def run_cli_many(env: Mapping[str, str], commands: list[list[str]]) -> None:
    """Run each `connector ARGS` of `commands` in one process, in order (a thousand `shops
    add` take seconds, not the minutes of a process each); raise with its output on failure."""
    done = subprocess.run(
        [PYTHON, "-c", _CLI_MANY],
        input=json.dumps(commands),
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=600,
        start_new_session=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{len(commands)} connector commands failed:\n{done.stderr[-4000:]}")


@contextmanager
def bench_workdir(prefix: str, *groups: Children) -> Iterator[Path]:
    """A run's temp dir (children's logs and files). On an error the children are stopped
    and the end of every log is printed; the children always stop and the dir goes."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield workdir
    except Exception:
        for children in groups:
            children.stop_all()
        print_log_tails(workdir)
        raise
    finally:
        for children in groups:
            children.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)


def print_log_tails(workdir: Path, lines: int = 15) -> None:
    """Show the end of every child's log before the temp dir goes (to debug a failed run)."""
    for log in sorted(workdir.glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        print(f"\n--- {log.name} (last {lines} lines)", *tail, sep="\n", file=sys.stderr)
