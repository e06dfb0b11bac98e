"""Support staff accounts: look one up, create or update one, end its sessions."""

from __future__ import annotations

from sqlalchemy import select

from connector.storage.db import Session
from connector.storage.models import StaffUser


def get_staff(session: Session, staff_id: int) -> StaffUser | None:
    return session.get(StaffUser, staff_id)


def find_staff(session: Session, email: str) -> StaffUser | None:
    """The account with this (already normalized) email, active or not."""
    return session.scalar(select(StaffUser).where(StaffUser.email == email))


def save_staff(session: Session, email: str, password_hash: str) -> StaffUser:
    """Create the account, or set a new password hash on it (ending its sessions);
    either way it is active."""
    user = find_staff(session, email)
    if user is None:
        user = StaffUser(email=email, session_version=1)
        session.add(user)
    else:
        end_sessions(user)
    user.password_hash = password_hash
    user.active = True
    session.flush()
    return user


def set_staff_active(session: Session, email: str, active: bool) -> StaffUser | None:
    """Enable or disable the account (disabling ends its sessions); None if there is none."""
    user = find_staff(session, email)
    if user is None:
        return None
    if not active:
        end_sessions(user)
    user.active = active
    session.flush()
    return user


def end_sessions(user: StaffUser) -> None:
    """Every session cookie issued to this account stops working (logout, new password)."""
    user.session_version = (user.session_version or 1) + 1
