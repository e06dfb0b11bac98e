"""What a run cost: CPU seconds (the machine's, per class of process) from /proc, and the
work PostgreSQL and Redis did, from their own counters.

- Machine: the `cpu` line of /proc/stat (busy = everything but idle and iowait, over all
  cores).
- A process group (each child of `procs.Children` leads its own): utime + stime of every
  live process in the group, plus the children they reaped (cutime + cstime), from
  /proc/<pid>/stat.
- PostgreSQL backends of one database: the pids pg_stat_activity lists for it, each read
  from /proc/<pid>/stat (the server runs on this machine); a backend that exits between
  samples keeps the last value read, so sample often (`CpuMeter` does, from a thread).
- This process: the bench itself (the Customer.io stand-in's threads, the polling).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from redis import Redis

TICKS = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


def machine_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of every core since boot, from /proc/stat."""
    fields = [int(v) for v in (PROC / "stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    total = sum(fields)
    return (total - idle - iowait) / TICKS, total / TICKS


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (field 3 onwards)."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def process_seconds(pid: int, *, reaped: bool = True) -> float:
    """utime + stime (+ cutime + cstime: children it waited for) of `pid`; 0 if gone."""
    fields = _stat(pid)
    if fields is None:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    if reaped:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / TICKS


def group_seconds(pgids: Sequence[int]) -> float:
    """CPU seconds of every live process in the process groups `pgids` (field 5: pgrp)."""
    wanted = set(pgids)
    total = 0.0
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields is not None and int(fields[2]) in wanted:
            total += process_seconds(int(entry.name))
    return total


def pg_backend_pids(conn: psycopg.Connection, database: str) -> list[int]:
    """Backends connected to `database` (`conn`: an autocommit connection to another one)."""
    rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (database,))
    return [int(row[0]) for row in rows.fetchall()]


def wait_no_backends(admin_url: str, database: str, timeout: float = 10.0) -> bool:
    """Wait until no backend is connected to `database` (each has reported its counts)."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        while pg_backend_pids(conn, database):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
    return True


@dataclass(frozen=True)
class PgCounters:
    commits: int
    rollbacks: int
    rows_written: int = 0  # rows inserted, updated and deleted

    @property
    def transactions(self) -> int:
        return self.commits + self.rollbacks


def pg_counters(admin_url: str, database: str) -> PgCounters:
    """pg_stat_database's transactions and rows written of `database`. A backend reports
    its counts when it goes idle (at most once a second) and when it exits: read this after
    the database's backends have gone (`wait_no_backends`) for an exact figure."""
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT xact_commit, xact_rollback, tup_inserted + tup_updated + tup_deleted"
            " FROM pg_stat_database WHERE datname = %s",
            (database,),
        ).fetchone()
    return PgCounters(int(row[0]), int(row[1]), int(row[2])) if row else PgCounters(0, 0)


def redis_commands(redis: Redis) -> int:
    """Commands the whole Redis server has processed since it started (INFO stats)."""
    return int(redis.info("stats")["total_commands_processed"])


@dataclass
class CpuUse:
    """CPU seconds spent over `wall` seconds: the machine's and per class of process."""

    wall: float
    machine_busy: float  # all cores
    machine_total: float  # all cores: wall x cores, as the kernel counts it
    by_class: dict[str, float] = field(default_factory=dict)

    @property
    def busy_share(self) -> float:
        """The machine's busy time over its capacity (1.0: every core busy all along)."""
        return self.machine_busy / self.machine_total if self.machine_total else 0.0

    @property
    def cores(self) -> float:
        return self.machine_total / self.wall if self.wall else 0.0

    @property
    def other(self) -> float:
        """Busy time not in any class: other processes on the machine (other people's
        runs, PostgreSQL's background processes), the kernel's own work."""
        return max(0.0, self.machine_busy - sum(self.by_class.values()))


class CpuMeter:
    """Measure CPU from `start()` to `stop()` for process groups by class, PostgreSQL's
    backends of one database and this process; a thread samples the backends every
    `interval` seconds so that one which exits meanwhile still counts."""

    def __init__(
        self,
        groups: Mapping[str, Sequence[int]],
        *,
        pg: tuple[str, str] | None = None,  # (admin url, database)
        interval: float = 0.25,
        pg_label: str = "PostgreSQL backends",
        self_label: str = "bench process",
    ) -> None:
        self.groups, self.pg, self.interval = dict(groups), pg, interval
        self.pg_label, self.self_label = pg_label, self_label
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_loop, daemon=True)
        self._backends_start: dict[int, float] = {}
        self._backends_last: dict[int, float] = {}
        self._lock = threading.Lock()

    def start(self) -> CpuMeter:
        self._machine0 = machine_seconds()
        self._groups0 = {name: group_seconds(pgids) for name, pgids in self.groups.items()}
        self._self0 = process_seconds(os.getpid(), reaped=False)
        self._wall0 = time.monotonic()
        if self.pg is not None:
            admin_url, self._database = self.pg
            self._admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=5)
            self._sample_backends()
            self._backends_start = dict(self._backends_last)
            self._thread.start()
        return self

    def stop(self) -> CpuUse:
        """Stop measuring (before the processes measured are stopped)."""
        wall = time.monotonic() - self._wall0
        busy1, total1 = machine_seconds()
        by_class = {
            name: group_seconds(pgids) - self._groups0[name] for name, pgids in self.groups.items()
        }
        if self.pg is not None:
            self._stop.set()
            self._thread.join()
            self._sample_backends()
            self._admin.close()
            with self._lock:
                by_class[self.pg_label] = sum(
                    seconds - self._backends_start.get(pid, 0.0)
                    for pid, seconds in self._backends_last.items()
                )
        by_class[self.self_label] = process_seconds(os.getpid(), reaped=False) - self._self0
        busy0, total0 = self._machine0
        return CpuUse(wall, busy1 - busy0, total1 - total0, by_class)

    def _sample_loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample_backends()

    def _sample_backends(self) -> None:
        for pid in pg_backend_pids(self._admin, self._database):
            seconds = process_seconds(pid, reaped=False)
            if seconds:
                with self._lock:
                    self._backends_last[pid] = seconds
