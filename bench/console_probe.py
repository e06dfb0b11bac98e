"""The support console's pages, and a probe that times them over HTTP while load runs.

`console_pages` is the list bench/console.py times in-process. Run as a script, the probe
logs in to a running web process as a staff member (as a browser would: the login form,
its CSRF token, the session cookie), requests each page once to warm up, prints `READY`,
then times every page in turn, round after round, until its stdin closes; it then prints
one `PROBE_RESULT {json}` line: per page, [epoch seconds sent, milliseconds, status] per
request. It is a process of its own so that the bench's threads (poster, Customer.io
stand-in) do not slow its clock reading.

    console_probe.py BASE_URL EMAIL PASSWORD TARGETS_JSON [PAUSE_SECONDS]
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import requests

Page = tuple[str, str, dict[str, str] | None]  # method, path, form
Sample = list[Any]  # [epoch seconds sent, milliseconds, HTTP status]
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
SEARCH_KINDS = ("order", "email", "customer", "token", "event")


def console_pages(targets: dict[str, str]) -> dict[str, Page]:
    """Every page the console benchmarks time; `targets`: shop, event (an event id for the
    timeline) and one search term per kind in SEARCH_KINDS."""
    pages: dict[str, Page] = {
        "overview": ("GET", "/console/", None),
        "shop overview": ("GET", f"/console/shops/{targets['shop']}", None),
        "failed list": ("GET", "/console/lists/failed", None),
        "quarantined list": ("GET", "/console/lists/quarantined", None),
        "unidentifiable list": ("GET", "/console/lists/unidentifiable", None),
        "waiting list": ("GET", "/console/lists/waiting", None),
        "search: shop": ("GET", f"/console/search?shop={targets['shop']}", None),
        "audit log": ("GET", "/console/audit", None),
        "timeline": ("GET", f"/console/events/{targets['event']}", None),
    }
    for kind in SEARCH_KINDS:
        pages[f"search: {kind}"] = ("POST", "/console/search", {"q": targets[kind]})
    return pages


def log_in(session: requests.Session, base: str, email: str, password: str) -> str:
    """Log in through the form; return the new session's CSRF token (for the searches)."""
    form = session.get(f"{base}/console/login", timeout=30)
    answer = session.post(
        f"{base}/console/login",
        data={"email": email, "password": password, "csrf_token": _token(form.text)},
        allow_redirects=False,
        timeout=30,
    )
    if answer.status_code != 302:
        raise RuntimeError(f"console login answered {answer.status_code}")
    return _token(session.get(f"{base}/console/", timeout=30).text)


def _token(html: str) -> str:
    found = TOKEN.search(html)
    if found is None:
        raise RuntimeError("no CSRF token in the console page")
    return found.group(1)


def probe(base: str, email: str, password: str, targets: dict[str, str], pause: float) -> None:
    session = requests.Session()
    token = log_in(session, base, email, password)
    pages = console_pages(targets)

    def request(method: str, path: str, form: dict[str, str] | None) -> int:
        data = {**form, "csrf_token": token} if form else None
        response = session.request(method, base + path, data=data, timeout=60)
        return response.status_code

    for method, path, form in pages.values():  # warm-up: templates, connections
        request(method, path, form)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    samples: dict[str, list[list[Any]]] = {name: [] for name in pages}
    print("READY", flush=True)
    while not stop.is_set():
        for name, (method, path, form) in pages.items():
            if stop.is_set():
                break
            sent, clock = time.time(), time.perf_counter()
            status = request(method, path, form)
            elapsed = (time.perf_counter() - clock) * 1000
            samples[name].append([round(sent, 3), round(elapsed, 2), status])
        stop.wait(pause)
    print("PROBE_RESULT " + json.dumps(samples), flush=True)


class ProbeProcess:
    """This file run as a probe process, in its own process group, killed on the way out.

    `with ProbeProcess(...) as probe:` returns once it has logged in and warmed up;
    `probe.finish()` stops it and returns its samples per page."""

    def __init__(
        self,
        base: str,
        email: str,
        password: str,
        targets: dict[str, str],
        log: Path,
        pause: float = 0.2,
    ) -> None:
        self.args = [sys.executable, __file__, base, email, password, json.dumps(targets)]
        self.args.append(str(pause))
        self.log = log
        self.proc: subprocess.Popen[str] | None = None
        self._err: IO[bytes] | None = None

    def __enter__(self) -> ProbeProcess:
        self._err = open(self.log, "ab")
        self.proc = subprocess.Popen(
            self.args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the login and one request per page, or EOF
        if line.strip() != "READY":
            raise RuntimeError(f"the console probe did not start (see {self.log.name})")
        return self

    def finish(self, timeout: float = 90.0) -> dict[str, list[Sample]]:
        """Stop probing (it ends the request under way) and return the samples."""
        assert self.proc is not None
        out, _ = self.proc.communicate(input="", timeout=timeout)
        for line in out.splitlines():
            if line.startswith("PROBE_RESULT "):
                result: dict[str, list[Sample]] = json.loads(line.removeprefix("PROBE_RESULT "))
                return result
        raise RuntimeError(f"the console probe printed no result (see {self.log.name})")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        if self._err is not None:
            self._err.close()


def main(argv: list[str]) -> None:
    base, email, password, targets = argv[:4]
    pause = float(argv[4]) if len(argv) > 4 else 0.2
    probe(base, email, password, json.loads(targets), pause)


if __name__ == "__main__":
    main(sys.argv[1:])
