"""One person per shopper: the emails each customer id is known by in a shop."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy import Table, select, update
from sqlalchemy.dialects import postgresql, sqlite

from connector.storage.db import Session
from connector.storage.models import CustomerLedger, CustomerOrder, ShopperConsent, ShopperEmail
from connector.timeutil import utcnow


def link_emails(session: Session, shop_domain: str, customers: Mapping[str, str]) -> set[str]:
    """Remember which customer id each email belongs to (email -> customer id); return the
    emails linked for the first time. What the ledger held under those emails (a shopper
    who bought as a guest first) moves to the customer id, in a few statements per batch.

    An email already linked keeps its first customer id (Shopify allows one customer per
    email in a shop).
    """
    if not customers:
        return set()
    now = utcnow()
    table = ShopperEmail.__table__
    assert isinstance(table, Table)
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    rows = [
        {"shop_domain": shop_domain, "email": email, "customer_id": customer, "linked_at": now}
        for email, customer in sorted(customers.items())
    ]
    statement = insert(table).on_conflict_do_nothing().returning(table.c.email)
    linked = {str(email) for email in session.scalars(statement, rows)}
    if linked:
        _move_ledger(session, shop_domain, {email: customers[email] for email in linked})
    return linked


def customers_for(session: Session, shop_domain: str, emails: Iterable[str]) -> dict[str, str]:
    """email -> customer id, for the emails a customer is known by (one query)."""
    wanted = sorted(set(emails))
    if not wanted:
        return {}
    rows = session.execute(
        select(ShopperEmail.email, ShopperEmail.customer_id).where(
            ShopperEmail.shop_domain == shop_domain, ShopperEmail.email.in_(wanted)
        )
    )
    return {str(email): str(customer) for email, customer in rows}


def _move_ledger(session: Session, shop_domain: str, customers: Mapping[str, str]) -> None:
    """Re-key a guest's orders and first-order claim from the email to the customer id."""
    emails = sorted(customers)
    held = session.scalars(
        select(CustomerLedger).where(
            CustomerLedger.shop_domain == shop_domain, CustomerLedger.person_key.in_(emails)
        )
    ).all()
    for guest in held:
        customer = customers[guest.person_key]
        account = session.get(CustomerLedger, (shop_domain, customer))
        if account is None:
            session.add(
                CustomerLedger(
                    shop_domain=shop_domain,
                    person_key=customer,
                    first_order_id=guest.first_order_id,
                    first_order_at=guest.first_order_at,
                    decided_at=utcnow(),
                )
            )
        elif guest.first_order_at < account.first_order_at:  # the guest order came first
            account.first_order_id = guest.first_order_id
            account.first_order_at = guest.first_order_at
        session.delete(guest)
    with_orders = session.scalars(
        select(CustomerOrder.person_key)
        .where(CustomerOrder.shop_domain == shop_domain, CustomerOrder.person_key.in_(emails))
        .distinct()
    ).all()
    for email in with_orders:
        session.execute(
            update(CustomerOrder)
            .where(CustomerOrder.shop_domain == shop_domain, CustomerOrder.person_key == email)
            .values(person_key=customers[email])
            .execution_options(synchronize_session=False)
        )
    session.flush()  # the ledger's next look-ups (session.get) must see the moved rows


def record_consents(
    session: Session, shop_domain: str, consents: Mapping[tuple[str, str], tuple[str, datetime]]
) -> None:
    """Store (person key, channel) -> (state, as of); a stored consent that is newer wins.

    One statement for a whole batch: an upsert that only overwrites an older consent.
    """
    if not consents:
        return
    table = ShopperConsent.__table__
    assert isinstance(table, Table)
    postgres = session.get_bind().dialect.name == "postgresql"
    insert = (postgresql.insert if postgres else sqlite.insert)(table)
    rows = [
        {
            "shop_domain": shop_domain,
            "person_key": key,
            "channel": channel,
            "state": state,
            "as_of": at,
        }
        for (key, channel), (state, at) in sorted(consents.items())
    ]
    statement = insert.on_conflict_do_update(
        index_elements=["shop_domain", "person_key", "channel"],
        set_={"state": insert.excluded.state, "as_of": insert.excluded.as_of},
        where=table.c.as_of < insert.excluded.as_of,
    )
    session.execute(statement, rows)  # one cached statement, executemany


def consents_for(
    session: Session, people: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, str]]:
    """(shop, person key) -> {channel: newest state}, in one query for any number of shops."""
    wanted = set(people)
    if not wanted:
        return {}
    rows = session.execute(
        select(
            ShopperConsent.shop_domain,
            ShopperConsent.person_key,
            ShopperConsent.channel,
            ShopperConsent.state,
        ).where(
            ShopperConsent.shop_domain.in_(sorted({shop for shop, _ in wanted})),
            ShopperConsent.person_key.in_(sorted({person for _, person in wanted})),
        )
    )
    found: dict[tuple[str, str], dict[str, str]] = {}
    for shop, key, channel, state in rows:
        if (shop, key) in wanted:
            found.setdefault((str(shop), str(key)), {})[str(channel)] = str(state)
    return found
