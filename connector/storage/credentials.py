"""The encrypted credentials every shop row may hold, for the key check and the rotation."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select, update

from connector.storage.db import Session
from connector.storage.models import Shop

# Every column holding a secret encrypted with CONNECTOR_SECRET_KEY.
ENCRYPTED_COLUMNS = (
    "cio_api_key_encrypted",
    "shopify_access_token_encrypted",
    "shopify_refresh_token_encrypted",
)


@dataclass(frozen=True)
class StoredSecret:
    shop_domain: str
    column: str
    value: str  # the ciphertext


def stored_secrets(session: Session, shops: int | None = None) -> list[StoredSecret]:
    """The encrypted secrets of every shop, or of the `shops` most recently updated."""
    columns = [getattr(Shop, name) for name in ENCRYPTED_COLUMNS]
    query = (
        select(Shop.domain, *columns)
        .where(or_(*(column.is_not(None) for column in columns)))
        .order_by(Shop.updated_at.desc(), Shop.domain)
        .limit(shops)
    )
    return [
        StoredSecret(row[0], name, value)
        for row in session.execute(query)
        for name, value in zip(ENCRYPTED_COLUMNS, row[1:], strict=True)
        if value
    ]


def replace_secret(session: Session, secret: StoredSecret, value: str) -> bool:
    """Store `value` instead, only if the column still holds the ciphertext that was read
    (a token refreshed meanwhile was written with the current key and is left alone)."""
    column = getattr(Shop, secret.column)
    replaced = session.execute(
        update(Shop)
        .where(Shop.domain == secret.shop_domain, column == secret.value)
        .values({secret.column: value})
        .execution_options(synchronize_session=False)
    )
    return bool(replaced.rowcount == 1)  # type: ignore[attr-defined]
