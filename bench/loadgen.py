"""Closed-loop HTTP load: wrk with a Lua script when installed, else bench/pyload.py."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from procs import BENCH, PYTHON

LUA = BENCH / "ingest_load.lua"
PYLOAD = BENCH / "pyload.py"
CONNECTIONS = 8  # wrk connections; the Python fallback uses PY_PROCESSES connections
PY_PROCESSES = 4


@dataclass(frozen=True)
class LoadResult:
    tool: str
    requests: int
    seconds: float
    non200: int
    socket_errors: int
    p50_ms: float
    p99_ms: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def tool_name(force_python: bool = False) -> str:
    if not force_python and shutil.which("wrk"):
        return f"wrk -t1 -c{CONNECTIONS}"
    return f"python x{PY_PROCESSES}"


def write_request_files(workdir: Path, body: bytes, headers: dict[str, str]) -> tuple[Path, Path]:
    body_file, headers_file = workdir / "body.json", workdir / "headers.txt"
    body_file.write_bytes(body)
    headers_file.write_text("".join(f"{k}: {v}\n" for k, v in headers.items()))
    return body_file, headers_file


def run_load(
    port: int,
    path: str,
    files: tuple[Path, Path],
    prefix: str,
    seconds: float,
    *,
    force_python: bool = False,
) -> LoadResult:
    """Hit 127.0.0.1:`port``path` for `seconds` with unique event ids starting with `prefix`."""
    body_file, headers_file = files
    tool = tool_name(force_python)
    if tool.startswith("wrk"):
        args = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--timeout", "10s"]
        args += ["-s", str(LUA), f"http://127.0.0.1:{port}{path}"]
        args += ["--", prefix, str(body_file), str(headers_file)]
    else:
        args = [PYTHON, str(PYLOAD), str(port), path, str(body_file), str(headers_file)]
        args += [prefix, f"{seconds:g}", str(PY_PROCESSES)]
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=seconds + 60, start_new_session=True
    )
    return _parse(tool, done.stdout, done.stderr)


def _parse(tool: str, stdout: str, stderr: str) -> LoadResult:
    for line in stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            raw = json.loads(line.removeprefix("BENCH_RESULT "))
            return LoadResult(
                tool=tool,
                requests=int(raw["requests"]),
                seconds=raw["duration_us"] / 1e6,
                non200=int(raw["non200"]),
                socket_errors=int(raw["socket_errors"]),
                p50_ms=float(raw["p50_ms"]),
                p99_ms=float(raw["p99_ms"]),
            )
    raise RuntimeError(f"{tool} printed no result:\n{stdout}\n{stderr}")
