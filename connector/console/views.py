"""The support console: staff-only pages to find any order or checkout and replay failures.

Every route needs a staff login (session key `staff_id`); a merchant's session (key
`merchant_shop`) is not one. Every POST carries the session's CSRF token. Pages show
personal data to staff and nothing here logs it; search is a POST so that emails and
order numbers stay out of access logs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from redis.exceptions import RedisError
from werkzeug.wrappers import Response

from connector.console import staff
from connector.csrf import check_csrf
from connector.headers import deny_framing
from connector.runtime import Runtime
from connector.shop_domain import normalize_shop_domain
from connector.statuses import EventStatus
from connector.storage import console as console_queries
from connector.storage import health as console_stats
from connector.storage import problems
from connector.storage import reconciliation as reconciliations
from connector.storage.db import transaction
from connector.storage.replay import recent_audits
from connector.timeutil import parse_utc
from jobs.replay import ReplayRequest, preview_replay, run_replay

blueprint = Blueprint("console", __name__, url_prefix="/console")
SESSION_KEY = "staff_id"
VERSION_KEY = "staff_version"  # the account's session_version at login
OPEN_ENDPOINTS = {"console.login"}
BULK_STATUSES = {"failed": (EventStatus.FAILED,), "quarantined": (EventStatus.QUARANTINED,)}


def _rt() -> Runtime:
    runtime: Runtime = current_app.extensions["connector"]
    return runtime


@blueprint.before_request
def require_staff() -> ResponseReturnValue | None:
    """Send anyone without a staff session to the login page; check CSRF on every POST."""
    g.staff = None
    staff_id = session.get(SESSION_KEY)
    if staff_id is not None:
        with _rt().sessions() as db:
            user = staff.session_user(db, staff_id, session.get(VERSION_KEY))
            g.staff = user.email if user is not None else None
    if g.staff is None:
        session.pop(SESSION_KEY, None)
        session.pop(VERSION_KEY, None)
        if request.endpoint not in OPEN_ENDPOINTS:
            return redirect(url_for("console.login", next=request.path))
    check_csrf()
    return None


@blueprint.after_request
def no_store(response: Response) -> Response:
    """Pages hold personal data: never cache them, and let no one frame them."""
    response.headers["Cache-Control"] = "no-store"
    return deny_framing(response)


@blueprint.app_template_filter("console_time")
def format_time(value: datetime | None) -> str:
    """A time as staff read it: UTC, to the second."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


@blueprint.app_template_filter("console_seconds")
def format_seconds(value: float | None) -> str:
    """A lag in seconds, or in minutes once it passes two."""
    if value is None:
        return "—"
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """Log a staff member in; at most a few attempts per email and address."""
    if request.method == "GET":
        return render_template("console/login.html")
    email = request.form.get("email", "")
    address = request.remote_addr or "unknown"
    limiter = staff.LoginLimiter(_rt().redis)
    try:
        allowed = limiter.allow(email, address)
    except RedisError:
        return render_template("console/login.html", error="Login is unavailable."), 503
    if not allowed:
        return render_template("console/login.html", error="Too many attempts. Wait."), 429
    with transaction(_rt().sessions) as db:
        user = staff.authenticate(db, email, request.form.get("password", ""))
        user_id, version = (user.id, user.session_version) if user else (None, None)
    if user_id is None:
        return render_template("console/login.html", error="Wrong email or password."), 401
    limiter.reset(email, address)
    session.clear()  # a fresh session: no merchant key, a new CSRF token
    session[SESSION_KEY] = user_id
    session[VERSION_KEY] = version
    return redirect(_safe_next(request.args.get("next")))


def _safe_next(target: str | None) -> str:
    parts = urlsplit(target or "")
    if parts.scheme or parts.netloc or not parts.path.startswith("/console/"):
        return url_for("console.overview")
    return parts.path


@blueprint.post("/logout")
def logout() -> ResponseReturnValue:
    """End the staff session, and every copy of it: the account's session version moves on."""
    with transaction(_rt().sessions) as db:
        staff.log_out(db, session[SESSION_KEY])
    session.clear()
    return redirect(url_for("console.login"))


@blueprint.get("/")
def overview() -> ResponseReturnValue:
    """Shops' recent delivery health and the size of each problem list."""
    with _rt().sessions() as db:
        shops = console_stats.shops_health(db)
        counts = problems.list_counts(db)
        set_aside = console_queries.webhooks_set_aside(db)
        reconciled = reconciliations.states(db)
    return render_template(
        "console/overview.html",
        shops=shops,
        counts=counts,
        reconciled=reconciled,
        set_aside=set_aside,
    )


@blueprint.get("/shops/<domain>")
def shop(domain: str) -> ResponseReturnValue:
    """One shop: events per day, success rate, lag percentiles, failures by reason, and
    what reconciliation (missed webhooks) last did."""
    with _rt().sessions() as db:
        detail = console_stats.shop_detail(db, domain)
        reconciled = reconciliations.get_state(db, domain)
    return render_template(
        "console/shop.html",
        detail=detail,
        window=console_stats.WINDOW_DAYS,
        reconciled=reconciled,
    )


@blueprint.route("/search", methods=["GET", "POST"])
def search() -> ResponseReturnValue:
    """Find events by order name/number, email, customer id, token, event id or shop."""
    text = request.form.get("q", "")
    shop_filter = request.form.get("shop", "") or request.args.get("shop", "")
    events = None
    if request.method == "POST" or shop_filter:
        with _rt().sessions() as db:
            events = console_queries.search_events(db, text, shop_filter or None)
    return render_template("console/search.html", q=text, shop=shop_filter, events=events)


@blueprint.get("/events/<event_id>")
def timeline(event_id: str) -> ResponseReturnValue:
    """What happened to one event, from the webhook to Customer.io, with the bodies sent."""
    with _rt().sessions() as db:
        found = console_queries.event_timeline(db, event_id.upper())
    if found is None:
        abort(404)
    return render_template("console/timeline.html", t=found)


@blueprint.get("/lists/<kind>")
def event_list(kind: str) -> ResponseReturnValue:
    """Failed, quarantined, unidentifiable or waiting events, grouped and counted."""
    if kind not in problems.LIST_KINDS:
        abort(404)
    shop_filter = request.args.get("shop") or None
    reason = request.args.get("reason") or None
    with _rt().sessions() as db:
        listing = problems.event_list(db, kind, shop_filter, reason)
    return render_template("console/list.html", listing=listing, shop=shop_filter, reason=reason)


@blueprint.get("/webhooks/<state>")
def webhook_list(state: str) -> ResponseReturnValue:
    """Stored webhooks that gave no event: set aside (with why) or still waiting."""
    if state not in console_queries.WEBHOOK_STATES:
        abort(404)
    shop_filter = request.args.get("shop") or None
    with _rt().sessions() as db:
        listing = console_queries.webhook_list(db, state, shop_filter)
    return render_template("console/webhooks.html", listing=listing, shop=shop_filter)


@blueprint.post("/replay/preview")
def replay_preview() -> ResponseReturnValue:
    """Show what a replay would do (how many events, which shops) before it is confirmed."""
    replay = _replay_request(request.form)
    with _rt().sessions() as db:
        preview = preview_replay(db, replay)
    return render_template("console/preview.html", replay=replay, preview=preview)


@blueprint.post("/replay")
def replay_confirm() -> ResponseReturnValue:
    """Re-queue the events under their own ids and write the audit entry."""
    result = run_replay(_rt(), _replay_request(request.form), actor=f"staff:{g.staff}")
    flash(
        f"Replay #{result.audit_id}: {result.requeued} queued again, "
        f"{result.quarantined} still break the spec, {result.skipped} left alone."
    )
    return redirect(url_for("console.audit_log"))


@blueprint.get("/audit")
def audit_log() -> ResponseReturnValue:
    """Every replay: who, when, what, and the result."""
    with _rt().sessions() as db:
        entries = recent_audits(db)
    return render_template("console/audit.html", entries=entries)


def _replay_request(form: Any) -> ReplayRequest:
    """Build a ReplayRequest from the form: chosen event ids, or a shop and time window."""
    ids = tuple(i.strip().upper() for i in form.getlist("event_id") if i.strip())
    if ids:
        return ReplayRequest(event_ids=ids)
    status = form.get("status", "failed")
    if status not in BULK_STATUSES:
        abort(400, description="unknown status")
    return ReplayRequest(
        shop=_form_shop(form.get("shop")),
        since=_form_time(form.get("since")),
        until=_form_time(form.get("until")),
        statuses=BULK_STATUSES[status],
    )


def _form_shop(value: str | None) -> str | None:
    if not value or not value.strip():
        return None
    try:
        return normalize_shop_domain(value)
    except ValueError:
        abort(400, description="shops look like example.myshopify.com")


def _form_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parse_utc(value)
    except ValueError:
        abort(400, description="times look like 2026-07-14T10:00")
