"""Support staff accounts: look one up, create or update one."""

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
    """Create the account, or set a new password hash on it; either way it is active."""
    user = find_staff(session, email)
    if user is None:
        user = StaffUser(email=email)
        session.add(user)
    user.password_hash = password_hash
    user.active = True
    session.flush()
    return user
