"""Every status value the connector stores, one enum per kind of row. Pure."""

from __future__ import annotations

from enum import StrEnum


class ShopStatus(StrEnum):
    """Whether a shop's events may be delivered."""

    ACTIVE = "active"
    CREDENTIALS_REJECTED = "credentials_rejected"  # Customer.io answered 401/403
    UNINSTALLED = "uninstalled"


class InboxState(StrEnum):
    """Where a stored webhook stands."""

    RECEIVED = "received"
    PROCESSED = "processed"
    IGNORED = "ignored"
    FAILED = "failed"


class EventStatus(StrEnum):
    """Where a canonical event stands."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    QUARANTINED = "quarantined"  # breaks the track spec
    UNIDENTIFIABLE = "unidentifiable"  # no customer id and no email: never sent
    WAITING_FOR_IDENTITY = "waiting_for_identity"  # an anonymous checkout, held
    CLOSED = "closed"  # a checkout whose purchase is known before it was sent: never sent


class DeliveryOutcome(StrEnum):
    """What one request to Customer.io came to, per event."""

    DELIVERED = "delivered"
    PARTIAL = "partial"
    RETRY = "retry"
    REJECTED = "rejected"
    REJECTED_CREDENTIALS = "rejected_credentials"
    ABANDONED = "abandoned"  # the worker stopped while sending: its lease ran out
