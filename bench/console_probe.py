"""The support console's pages, and a probe that times them over HTTP while load runs.

`console_pages` is the list bench/console.py times in-process. Run as a script, the probe
logs in to a running web process as a staff member (as a browser would: the login form,
its CSRF token, the session cookie), requests each page once to warm up, prints `READY`,
then times every page in turn, round after round, until its stdin closes; it then prints
one `PROBE_RESULT {json}` line: per page, [seconds since READY, milliseconds, status]
per request. It is a process of its own so that the bench's threads (poster, Customer.io
stand-in) do not slow its clock reading.

    console_probe.py BASE_URL EMAIL PASSWORD TARGETS_JSON [PAUSE_SECONDS]
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from typing import Any

import requests

Page = tuple[str, str, dict[str, str] | None]  # method, path, form
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
    started = time.monotonic()
    while not stop.is_set():
        for name, (method, path, form) in pages.items():
            if stop.is_set():
                break
            sent = time.monotonic()
            status = request(method, path, form)
            elapsed = (time.monotonic() - sent) * 1000
            samples[name].append([round(sent - started, 3), round(elapsed, 2), status])
        stop.wait(pause)
    print("PROBE_RESULT " + json.dumps(samples), flush=True)


def main(argv: list[str]) -> None:
    base, email, password, targets = argv[:4]
    pause = float(argv[4]) if len(argv) > 4 else 0.2
    probe(base, email, password, json.loads(targets), pause)


if __name__ == "__main__":
    main(sys.argv[1:])
