"""`connector worker` keeps what it loaded at start out of the garbage collector's way."""

from __future__ import annotations

import subprocess
import sys

from connector.runtime import Runtime
from tests.support import ROOT, subprocess_env

PROBE = """
import gc
from connector import runtime
from connector.config import Settings
from jobs.worker import run_worker

assert gc.get_freeze_count() == 0
run_worker(runtime.install(runtime.Runtime(Settings.from_env())), burst=True, with_sweep=False)
print(gc.get_freeze_count())
"""


def test_the_worker_freezes_its_start_up_heap(rt: Runtime) -> None:
    """Before, every full collection walked the modules and settings loaded at start: 8-10 %
    of the mapping's CPU (docs/benchmarks.md)."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=subprocess_env(rt.settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[-1]) > 10_000  # the imported modules' objects, at least
