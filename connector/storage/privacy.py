"""What the privacy webhooks read and erase: a customer's rows, exports, tombstones, a shop."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

from sqlalchemy import Text, and_, cast, delete, func, or_, select, update

from connector.storage.db import Session, one_of
from connector.storage.models import (
    CachedProduct,
    CustomerLedger,
    CustomerOrder,
    DeliveryAttempt,
    Event,
    PrivacyExport,
    RedactedCustomer,
    Shop,
    ShopperConsent,
    ShopperEmail,
    ShopReconciliation,
    WebhookDelivery,
)


def events_of_customer(
    session: Session,
    shop: str,
    keys: Collection[str],
    natural_keys: Collection[str],
    delivery_ids: Collection[int] = (),
) -> list[Event]:
    """The shop's events of these person keys (ids, emails), of these orders or checkouts
    (natural keys), or fed by these inbox rows."""
    if not keys and not natural_keys and not delivery_ids:
        return []
    query = select(Event).where(
        Event.shop_domain == shop,
        or_(
            Event.person_id.in_(keys),
            Event.customer_id.in_(keys),
            Event.email.in_(keys),
            Event.natural_key.in_(natural_keys),
            Event.source_delivery_id.in_(delivery_ids),
        ),
    )
    return list(session.scalars(query).all())


def deliveries_of_customer(
    session: Session,
    shop: str,
    *,
    mentions: Collection[str],
    resources: Iterable[tuple[Collection[str], Collection[str]]],
    ids: Collection[int],
    exclude: int,
) -> list[WebhookDelivery]:
    """The shop's inbox rows whose body contains one of `mentions` (case-insensitive, on
    both databases), whose resource key is one of the keys of a (topics, keys) pair of
    `resources` (an order's refunds, a checkout by token), or whose id is in `ids`.

    A full scan of the shop's bodies: privacy requests are rare, and every stored webhook
    must be found, also those that never fed an event. `exclude` is the request's own row.
    """
    body = func.lower(WebhookDelivery.body)
    found = [body.contains(m.lower(), autoescape=True) for m in mentions]
    found += [
        and_(WebhookDelivery.topic.in_(topics), WebhookDelivery.resource_key.in_(keys))
        for topics, keys in resources
        if topics and keys
    ]
    if ids:
        found.append(WebhookDelivery.id.in_(ids))
    if not found:
        return []
    query = select(WebhookDelivery).where(
        WebhookDelivery.shop_domain == shop, WebhookDelivery.id != exclude, or_(*found)
    )
    return list(session.scalars(query).all())


def orders_of_customer(session: Session, shop: str, keys: Sequence[str]) -> list[CustomerOrder]:
    """The ledger's orders of these person keys."""
    query = select(CustomerOrder).where(
        CustomerOrder.shop_domain == shop, CustomerOrder.person_key.in_(keys)
    )
    return list(session.scalars(query).all())


def clear_attempt_excerpts(session: Session, event_ids: Sequence[str]) -> None:
    """Drop the response excerpts recorded for these events' delivery attempts."""
    if event_ids:
        session.execute(
            update(DeliveryAttempt)
            .where(DeliveryAttempt.event_id.in_(event_ids))
            .values(excerpt=None)
        )


def replace_person_key(session: Session, shop: str, key: str, stand_in: str) -> None:
    """Put `stand_in` where the ledger knows a shopper by `key`; forget the shopper's
    consents and which customer an email belongs to (`key` is an id or an email)."""
    for table in (CustomerLedger, CustomerOrder):
        session.execute(
            update(table)
            .where(table.shop_domain == shop, table.person_key == key)
            .values(person_key=stand_in)
        )
    session.execute(
        delete(ShopperConsent).where(
            ShopperConsent.shop_domain == shop, ShopperConsent.person_key == key
        )
    )
    session.execute(
        delete(ShopperEmail).where(
            ShopperEmail.shop_domain == shop,
            or_(ShopperEmail.email == key, ShopperEmail.customer_id == key),
        )
    )


# -- tombstones: keyed hashes of redacted customers -----------------------------------------


_TOMBSTONED = "shop -> whether it has tombstones, known to this unit of work"


def add_tombstone(session: Session, shop: str, key_hash: str) -> None:
    if session.get(RedactedCustomer, (shop, key_hash)) is None:
        session.add(RedactedCustomer(shop_domain=shop, key_hash=key_hash))
        session.flush()
    session.info.setdefault(_TOMBSTONED, {})[shop] = True


def prefetch_tombstones(session: Session, shops: Sequence[str]) -> None:
    """Which of these shops have tombstones, in one query (for `has_tombstones`)."""
    query = select(RedactedCustomer.shop_domain).where(
        one_of(session, RedactedCustomer.shop_domain, shops)
    )
    found = set(session.scalars(query.distinct()))
    session.info.setdefault(_TOMBSTONED, {}).update({shop: shop in found for shop in shops})


def has_tombstones(session: Session, shop: str) -> bool:
    known = session.info.get(_TOMBSTONED, {})
    if shop in known:
        return bool(known[shop])
    query = select(RedactedCustomer.key_hash).where(RedactedCustomer.shop_domain == shop)
    return session.scalars(query.limit(1)).first() is not None


def any_tombstone(session: Session, shop: str, key_hashes: Sequence[str]) -> bool:
    query = select(RedactedCustomer.key_hash).where(
        RedactedCustomer.shop_domain == shop, RedactedCustomer.key_hash.in_(key_hashes)
    )
    return session.scalars(query).first() is not None


# -- data-request exports ------------------------------------------------------------------


def add_export(
    session: Session,
    shop: str,
    data_request_id: str | None,
    customer_id: str | None,
    content: dict[str, Any],
) -> None:
    session.add(
        PrivacyExport(
            shop_domain=shop,
            data_request_id=data_request_id,
            customer_id=customer_id,
            content=content,
        )
    )


def recent_exports(session: Session, shop: str, limit: int = 50) -> list[PrivacyExport]:
    """The shop's exports, newest first."""
    query = (
        select(PrivacyExport)
        .where(PrivacyExport.shop_domain == shop)
        .order_by(PrivacyExport.created_at.desc())
        .limit(limit)
    )
    return list(session.scalars(query).all())


def get_export(session: Session, export_id: int) -> PrivacyExport | None:
    return session.get(PrivacyExport, export_id)


def delete_exports_of(
    session: Session, shop: str, customer_ids: Collection[str], mentions: Collection[str]
) -> None:
    """Delete the shop's exports of these customers, or whose content mentions them."""
    content = func.lower(cast(PrivacyExport.content, Text))
    session.execute(
        delete(PrivacyExport).where(
            PrivacyExport.shop_domain == shop,
            or_(
                PrivacyExport.customer_id.in_(customer_ids),
                *(content.contains(m.lower(), autoescape=True) for m in mentions),
            ),
        )
    )


# -- shop/redact ---------------------------------------------------------------------------


def erase_shop(session: Session, shop: str, keep_delivery_id: int) -> None:
    """Delete everything stored for the shop except the inbox row `keep_delivery_id`."""
    event_ids = select(Event.id).where(Event.shop_domain == shop)
    session.execute(delete(DeliveryAttempt).where(DeliveryAttempt.event_id.in_(event_ids)))
    session.execute(delete(Event).where(Event.shop_domain == shop))
    for table in (
        CustomerLedger,
        CustomerOrder,
        PrivacyExport,
        RedactedCustomer,
        ShopperEmail,
        ShopperConsent,
        CachedProduct,
        ShopReconciliation,
    ):
        session.execute(delete(table).where(table.shop_domain == shop))
    session.execute(
        delete(WebhookDelivery)
        .where(WebhookDelivery.shop_domain == shop, WebhookDelivery.id != keep_delivery_id)
        .execution_options(synchronize_session=False)
    )
    session.execute(delete(Shop).where(Shop.domain == shop))
