"""The per-shop cache of product details the Admin API gave (see models.CachedProduct)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Table, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from connector.storage.db import Session, one_of
from connector.storage.models import CachedProduct
from connector.timeutil import utcnow


def cached_products(
    session: Session, wanted: Iterable[tuple[str, str]], fresh_after: datetime
) -> dict[tuple[str, str], dict[str, Any]]:
    """(shop, product id) -> cached details fetched after `fresh_after`, in one query for
    any number of shops."""
    pairs = set(wanted)
    if not pairs:
        return {}
    rows = session.execute(
        select(CachedProduct.shop_domain, CachedProduct.product_id, CachedProduct.details).where(
            one_of(session, CachedProduct.shop_domain, sorted({shop for shop, _ in pairs})),
            one_of(session, CachedProduct.product_id, sorted({product for _, product in pairs})),
            CachedProduct.fetched_at > fresh_after,
        )
    )
    return {
        (str(shop), str(product_id)): dict(details or {})
        for shop, product_id, details in rows
        if (shop, product_id) in pairs
    }


def store_products(
    session: Session, shop_domain: str, details: Mapping[str, dict[str, Any]]
) -> None:
    """Cache these products' details (replacing older ones), in one statement."""
    if not details:
        return
    table = CachedProduct.__table__
    assert isinstance(table, Table)
    postgres = session.get_bind().dialect.name == "postgresql"
    insert = (postgresql.insert if postgres else sqlite.insert)(table)
    now = utcnow()
    rows = [
        {"shop_domain": shop_domain, "product_id": key, "details": value, "fetched_at": now}
        for key, value in sorted(details.items())
    ]
    session.execute(
        insert.on_conflict_do_update(
            index_elements=["shop_domain", "product_id"],
            set_={"details": insert.excluded.details, "fetched_at": insert.excluded.fetched_at},
        ),
        rows,
    )


def forget_products(session: Session, shop_domain: str, product_ids: Iterable[str]) -> None:
    """Drop cached details (products/update): the next order asks the Admin API again."""
    session.execute(
        delete(CachedProduct).where(
            CachedProduct.shop_domain == shop_domain,
            CachedProduct.product_id.in_(sorted(set(product_ids))),
        )
    )
