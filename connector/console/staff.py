"""Staff accounts for the support console, and the login rate limit (kept in Redis)."""

from __future__ import annotations

import hashlib

from redis import Redis
from werkzeug.security import check_password_hash, generate_password_hash

from connector.identity import normalize_email
from connector.storage.db import Session
from connector.storage.models import StaffUser
from connector.storage.staff import (
    end_sessions,
    find_staff,
    get_staff,
    save_staff,
    set_staff_active,
)
from connector.timeutil import utcnow

MAX_ATTEMPTS = 5
WINDOW_SECONDS = 15 * 60
MIN_PASSWORD_LENGTH = 12
# Compared against when the email is unknown, so a miss costs as much as a wrong password.
_DUMMY_HASH = generate_password_hash("not-a-real-password")


class StaffError(Exception):
    """Raised when a staff account cannot be created (bad email or too short a password)."""


def _normalized(email: str) -> str:
    return normalize_email(email) or ""


def add_staff(session: Session, email: str, password: str) -> StaffUser:
    """Create the account, or set a new password on an existing one (and re-activate it).

    Raises StaffError when the email is not an address or the password is too short.
    """
    email = _normalized(email)
    if "@" not in email or len(email) > 255:
        raise StaffError("not an email address")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise StaffError(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")
    return save_staff(session, email, generate_password_hash(password))


def set_active(session: Session, email: str, active: bool) -> StaffUser:
    """Enable or disable EMAIL's account; disabling ends its sessions at once.

    Raises StaffError when there is no such account.
    """
    user = set_staff_active(session, _normalized(email), active)
    if user is None:
        raise StaffError(f"no staff account {_normalized(email)}")
    return user


def session_user(session: Session, staff_id: object, version: object) -> StaffUser | None:
    """The account a session cookie names, if it is active and the cookie's version current."""
    if not isinstance(staff_id, int) or not isinstance(version, int):
        return None
    user = get_staff(session, staff_id)
    if user is None or not user.active or user.session_version != version:
        return None
    return user


def log_out(session: Session, staff_id: int) -> None:
    """End every session of the account: a copy of the cookie is worth nothing afterwards."""
    user = get_staff(session, staff_id)
    if user is not None:
        end_sessions(user)


def authenticate(session: Session, email: str, password: str) -> StaffUser | None:
    """The active account matching email and password, else None."""
    user = find_staff(session, _normalized(email))
    if user is None or not user.active:
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not check_password_hash(user.password_hash, password):
        return None
    user.last_login_at = utcnow()
    return user


class LoginLimiter:
    """At most MAX_ATTEMPTS login attempts per (email, client address) per window.

    Keys hold a hash of the pair, so Redis never stores an email address.
    """

    def __init__(
        self, redis: Redis, max_attempts: int = MAX_ATTEMPTS, window: int = WINDOW_SECONDS
    ) -> None:
        self.redis = redis
        self.max_attempts = max_attempts
        self.window = window

    @staticmethod
    def key(email: str, address: str) -> str:
        digest = hashlib.sha256(f"{_normalized(email)}|{address}".encode()).hexdigest()
        return f"connector:login:{digest[:32]}"

    def allow(self, email: str, address: str) -> bool:
        """Count one attempt; False once the pair has used up its window."""
        key = self.key(email, address)
        pipe = self.redis.pipeline()
        pipe.set(key, 0, ex=self.window, nx=True)  # the window starts at the first attempt
        pipe.incr(key)
        _, attempts = pipe.execute()
        return int(attempts) <= self.max_attempts

    def reset(self, email: str, address: str) -> None:
        """Forget the attempts after a successful login."""
        self.redis.delete(self.key(email, address))
