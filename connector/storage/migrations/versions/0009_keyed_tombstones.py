"""redaction tombstones and stand-ins keyed with the secret key (HMAC-SHA256)

Revision ID: 0009_keyed_tombstones
Revises: 0007_cached_products

Tombstones were sha256(shop, email or id), and the ledger's stand-ins for a redacted
shopper "redacted:" + its first 40 hex digits: anyone with the database and a list of
emails could tell who was redacted. They are now HMAC-SHA256, keyed from
CONNECTOR_SECRET_KEY, of that same digest (connector.crypto.tombstone), so the stored
digests are converted exactly rather than cleared: clearing them would let the next
webhook about a customer redacted before this upgrade be processed and sent to Customer.io
again. Converting needs the secret key, which `connector db upgrade` hands in; a database
holding tombstones without it is refused, never half-converted. Not reversible (the
unkeyed digests are gone by design): downgrade leaves the keyed values, which the older
code never matches.
"""

import sqlalchemy as sa
from alembic import context, op

from connector.crypto import keyed, tombstone_key

revision = "0009_keyed_tombstones"
down_revision = "0008_staff_session_version"
branch_labels = None
depends_on = None

STAND_IN = "redacted:"
STAND_IN_COLUMNS = (
    ("events", "person_id"),
    ("customer_ledger", "person_key"),
    ("customer_orders", "person_key"),
)


def upgrade() -> None:
    conn = op.get_bind()
    tombstones = conn.execute(sa.text("SELECT shop_domain, key_hash FROM redacted_customers"))
    tombstones = tombstones.all()
    stand_ins = {
        (table, column): conn.execute(
            sa.text(f"SELECT DISTINCT {column} FROM {table} WHERE {column} LIKE :prefix"),
            {"prefix": STAND_IN + "%"},
        )
        .scalars()
        .all()
        for table, column in STAND_IN_COLUMNS
    }
    if not tombstones and not any(stand_ins.values()):
        return
    secret_key = context.config.attributes.get("secret_key")
    if not secret_key:
        raise RuntimeError(
            "migration 0009 re-keys the stored redaction tombstones with CONNECTOR_SECRET_KEY:"
            " run it through `connector db upgrade` with the setting present"
        )
    key = tombstone_key(secret_key)
    for shop, digest in tombstones:
        conn.execute(
            sa.text(
                "UPDATE redacted_customers SET key_hash = :new"
                " WHERE shop_domain = :shop AND key_hash = :old"
            ),
            {"new": keyed(key, digest), "shop": shop, "old": digest},
        )
    for (table, column), values in stand_ins.items():
        for value in values:
            new = STAND_IN + keyed(key, value.removeprefix(STAND_IN))[:40]
            conn.execute(
                sa.text(f"UPDATE {table} SET {column} = :new WHERE {column} = :old"),
                {"new": new, "old": value},
            )


def downgrade() -> None:
    """Nothing to undo: the unkeyed digests cannot be recovered, by design."""
