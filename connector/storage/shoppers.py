"""One person per shopper: the emails each customer id is known by in a shop."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy import Table, select, update
from sqlalchemy.dialects import postgresql, sqlite

from connector.storage.db import Session, one_of
from connector.storage.models import CustomerLedger, CustomerOrder, ShopperConsent, ShopperEmail
from connector.timeutil import utcnow


def link_emails(session: Session, links: Mapping[str, Mapping[str, str]]) -> None:
    """Remember which customer id each email belongs to (shop -> email -> customer id), for
    any number of shops in one statement. What the ledger held under emails linked for the
    first time (a shopper who bought as a guest first) moves to the customer id.

    An email already linked keeps its first customer id (Shopify allows one customer per
    email in a shop).
    """
    rows = [
        {"shop_domain": shop, "email": email, "customer_id": customer, "linked_at": utcnow()}
        for shop, customers in sorted(links.items())
        for email, customer in sorted(customers.items())
    ]
    if not rows:
        return
    table = ShopperEmail.__table__
    assert isinstance(table, Table)
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(table).on_conflict_do_nothing().returning(table.c.shop_domain, table.c.email)
    linked = session.execute(statement, rows).all()
    if linked:
        _move_ledger(
            session, {(str(shop), str(email)): links[shop][email] for shop, email in linked}
        )


def customers_for(
    session: Session, wanted: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    """(shop, email) -> customer id, for the emails a customer is known by (one query for
    any number of shops)."""
    pairs = set(wanted)
    if not pairs:
        return {}
    rows = session.execute(
        select(ShopperEmail.shop_domain, ShopperEmail.email, ShopperEmail.customer_id).where(
            one_of(session, ShopperEmail.shop_domain, sorted({shop for shop, _ in pairs})),
            one_of(session, ShopperEmail.email, sorted({email for _, email in pairs})),
        )
    )
    return {
        (str(shop), str(email)): str(customer)
        for shop, email, customer in rows
        if (shop, email) in pairs
    }


def _move_ledger(session: Session, customers: Mapping[tuple[str, str], str]) -> None:
    """Re-key guests' orders and first-order claims from the email to the customer id
    ((shop, email) -> customer id)."""
    shops = sorted({shop for shop, _ in customers})
    emails = sorted({email for _, email in customers})
    held = session.scalars(
        select(CustomerLedger).where(
            CustomerLedger.shop_domain.in_(shops), CustomerLedger.person_key.in_(emails)
        )
    ).all()
    for guest in held:
        customer = customers.get((guest.shop_domain, guest.person_key))
        if customer is None:  # the email of another of the shops
            continue
        account = session.get(CustomerLedger, (guest.shop_domain, customer))
        if account is None:
            session.add(
                CustomerLedger(
                    shop_domain=guest.shop_domain,
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
    with_orders = session.execute(
        select(CustomerOrder.shop_domain, CustomerOrder.person_key)
        .where(CustomerOrder.shop_domain.in_(shops), CustomerOrder.person_key.in_(emails))
        .distinct()
    ).all()
    for shop, email in with_orders:
        if (shop, email) not in customers:
            continue
        session.execute(
            update(CustomerOrder)
            .where(CustomerOrder.shop_domain == shop, CustomerOrder.person_key == email)
            .values(person_key=customers[(shop, email)])
            .execution_options(synchronize_session=False)
        )
    session.flush()  # the ledger's next look-ups (session.get) must see the moved rows


def record_consents(
    session: Session,
    consents: Mapping[tuple[str, str, str], tuple[str, datetime]],
) -> None:
    """Store (shop, person key, channel) -> (state, as of); a stored consent that is newer
    wins. One statement for any number of shops: an upsert that only overwrites an older
    consent.
    """
    if not consents:
        return
    table = ShopperConsent.__table__
    assert isinstance(table, Table)
    postgres = session.get_bind().dialect.name == "postgresql"
    insert = (postgresql.insert if postgres else sqlite.insert)(table)
    rows = [
        {"shop_domain": shop, "person_key": key, "channel": channel, "state": state, "as_of": at}
        for (shop, key, channel), (state, at) in sorted(consents.items())
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
            one_of(session, ShopperConsent.shop_domain, sorted({shop for shop, _ in wanted})),
            one_of(session, ShopperConsent.person_key, sorted({person for _, person in wanted})),
        )
    )
    found: dict[tuple[str, str], dict[str, str]] = {}
    for shop, key, channel, state in rows:
        if (shop, key) in wanted:
            found.setdefault((str(shop), str(key)), {})[str(channel)] = str(state)
    return found
