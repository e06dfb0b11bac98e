"""Run the fault suite (tests/faults) and print its table: per fault, the webhooks sent, the
events delivered, resent (Customer.io deduped them), lost, and the time to recover.

    .venv/bin/python bench/faults.py [--write-doc] [-- PYTEST ARGS]

Each test appends its row to a JSON-lines file in a temp dir (CONNECTOR_FAULTS_REPORT); the
suite writes nothing else outside its temp dirs. `--write-doc` puts the table into
docs/reliability.md, between its `faults:begin` and `faults:end` markers; nothing else
writes a tracked file. The exit status is pytest's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "reliability.md"
REPORT_ENV = "CONNECTOR_FAULTS_REPORT"  # as tests/faults/harness.py reads it
BEGIN, END = "<!-- faults:begin -->", "<!-- faults:end -->"
COLUMNS = ["fault", "webhooks", "posts", "delivered", "resent", "lost", "recover s"]


def run_suite(report: Path, pytest_args: list[str]) -> tuple[int, float, str]:
    """Run pytest on tests/faults with the report file set; (exit code, seconds, summary)."""
    env = {**os.environ, REPORT_ENV: str(report), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "pytest", "tests/faults", "-q", "-p", "no:cacheprovider"]
    started = time.monotonic()
    done = subprocess.run(
        [*command, *pytest_args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    seconds = time.monotonic() - started
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0:
        print(done.stdout[-6000:], done.stderr[-2000:], sep="\n", file=sys.stderr)
    return done.returncode, seconds, lines[-1] if lines else "(no output)"


def read_rows(report: Path) -> list[dict[str, Any]]:
    if not report.exists():
        return []
    return [json.loads(line) for line in report.read_text().splitlines() if line.strip()]


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    for row in rows:
        cells = [
            row["fault"],
            row["webhooks"],
            row["posts"],
            row["delivered"],
            row["duplicated"],
            row["lost"],
            f"{row['recover_seconds']:.1f}",
        ]
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    return "\n".join(lines)


def machine() -> str:
    """CPU model, cores and memory, as /proc tells them (Linux)."""
    cores = os.cpu_count() or 0
    model, memory = platform.processor() or platform.machine(), ""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        model = next(
            line.split(":", 1)[1].strip()
            for line in cpuinfo.splitlines()
            if line.startswith("model name")
        )
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 2**20:.0f} GiB"
    except (OSError, StopIteration, ValueError, IndexError):
        pass
    return f"{model}, {cores} cores{memory}, Linux {platform.release()}"


def postgres_reachable() -> bool:
    try:
        import psycopg

        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", connect_timeout=2):
            return True
    except Exception:  # noqa: BLE001 - any failure: the suite runs on SQLite
        return False


def report_text(rows: list[dict[str, Any]], seconds: float, summary: str) -> str:
    database = "PostgreSQL 127.0.0.1:5432" if postgres_reachable() else "SQLite"
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    notes = "\n".join(f"- {row['fault']}: {row['notes']}" for row in rows if row.get("notes"))
    return (
        f"Run of {when} on {machine()}, Python {platform.python_version()}, {database}, "
        f"Redis 127.0.0.1:6379 (both behind the suite's proxies): {summary} "
        f"({seconds:.0f} s in all).\n\n{markdown_table(rows)}\n\n{notes}\n"
    )


def write_doc(text: str) -> None:
    doc = DOC.read_text()
    if BEGIN not in doc or END not in doc:
        raise SystemExit(f"{DOC} has no {BEGIN} ... {END} markers")
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    DOC.write_text(pattern.sub(lambda _m: f"{BEGIN}\n{text}{END}", doc, count=1))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write-doc", action="store_true", help=f"update {DOC.name}'s table")
    parser.add_argument("pytest_args", nargs="*", help="passed on to pytest (after --)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="faults-") as tmp:
        report = Path(tmp) / "faults.jsonl"
        code, seconds, summary = run_suite(report, args.pytest_args)
        rows = read_rows(report)
    text = report_text(rows, seconds, summary)
    print(text)
    if args.write_doc:
        if code != 0:
            print("the suite failed: docs/reliability.md left as it was", file=sys.stderr)
        else:
            write_doc(text)
            print(f"wrote the table into {DOC}")
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
