"""Order history from the Admin API: seed the first-order ledger, look up unknown customers,
and backfill historical order_placed events.

The import reads orders oldest first, a page per transaction, and stores the page's end
cursor on the shop, so an interrupted import resumes where it stopped. Backfilled events
get the same stable ids as webhook ones, so running it twice (or after the webhook) sends
each order once; orders of the last `skip_recent_hours` are left to the live webhooks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from connector.identity import person_key
from connector.runtime import Runtime
from connector.shopify.admin import AdminClient, client_for
from connector.shopify.errors import ShopifyAuthError
from connector.spec import TrackSpec
from connector.storage import events, ledger
from connector.storage.db import Session, transaction
from connector.storage.retention import order_event_pruned
from connector.storage.shops import get_shop
from connector.timeutil import parse_utc, utcnow
from jobs.orders import OrderCountLookup, place_order
from webhooks.mapping import MappingError, map_order

log = logging.getLogger(__name__)


def order_count_lookup(rt: Runtime, tokens: dict[str, bool] | None = None) -> OrderCountLookup:
    """(shop, customer id) -> Shopify's order count, or None when the shop has no token.

    Raises ShopifyUnavailableError when Shopify cannot be reached, so the processing job
    fails and the inbox rows are retried rather than guessed; a refused token (the app is
    being uninstalled) falls back to the ledger. `tokens` (shop -> whether it has an Admin
    API token), when the caller knows, saves a look-up per shop.
    """
    clients: dict[str, AdminClient | None] = {}  # for this job: None when no token

    def lookup(shop_domain: str, customer_id: str) -> int | None:
        try:
            if shop_domain not in clients:
                has_token = (tokens or {}).get(shop_domain, True)
                clients[shop_domain] = _admin_client(rt, shop_domain) if has_token else None
            client = clients[shop_domain]
            return client.customer_order_count(customer_id) if client else None
        except ShopifyAuthError as exc:
            log.warning("order count not available shop=%s: %s", shop_domain, exc.reason)
            clients[shop_domain] = None  # refused: the ledger decides for the rest of the job
            return None

    return lookup


def _admin_client(rt: Runtime, shop_domain: str) -> AdminClient | None:
    with rt.sessions() as session:
        shop = get_shop(session, shop_domain)
        if shop is None or not shop.shopify_access_token_encrypted:
            return None
    return client_for(rt.sessions, rt.secrets, rt.settings, shop_domain)


def seed_order(session: Session, shop_domain: str, node: dict[str, Any]) -> bool:
    """Record one historical order for its customer; True if the order was new.

    Test orders are left out: they are not purchases, so they make nobody a returning
    customer (the live pipeline excludes them the same way unless the shop includes them).
    """
    if node.get("test"):
        return False
    customer = node.get("customer") or {}
    key = person_key(customer.get("legacyResourceId"), node.get("email") or customer.get("email"))
    if key is None:
        return False
    ordered_at = parse_utc(node.get("processedAt") or node["createdAt"])
    return ledger.seed_order(session, shop_domain, str(node["legacyResourceId"]), key, ordered_at)


def import_history(rt: Runtime, shop_domain: str, client: AdminClient | None = None) -> int:
    """Seed the ledger from the shop's whole order history; resumable. Returns new orders."""
    client = client or client_for(rt.sessions, rt.secrets, rt.settings, shop_domain)
    with rt.sessions() as session:
        shop = get_shop(session, shop_domain)
        if shop is None:
            return 0
        cursor = shop.history_cursor
    imported = 0
    for nodes, end_cursor in client.orders_pages(after=cursor):
        with transaction(rt.sessions) as session:
            imported += sum(seed_order(session, shop_domain, node) for node in nodes)
            shop = get_shop(session, shop_domain)
            if shop is not None:
                shop.history_cursor = end_cursor
    with transaction(rt.sessions) as session:
        shop = get_shop(session, shop_domain)
        if shop is not None:
            shop.history_cursor, shop.history_imported_at = None, utcnow()
    log.info("order history imported shop=%s new_orders=%d", shop_domain, imported)
    return imported


def _money(node: dict[str, Any], field: str) -> str | None:
    amount = ((node.get(field) or {}).get("shopMoney") or {}).get("amount")
    return str(amount) if amount is not None else None


def rest_payload(node: dict[str, Any]) -> dict[str, Any]:
    """An Admin API Order node in the REST webhook shape that `map_order` reads."""
    customer = node.get("customer")
    name = str(node.get("name") or "")
    return {
        "id": int(node["legacyResourceId"]),
        "name": name or None,
        "order_number": int(name.lstrip("#")) if name.lstrip("#").isdigit() else None,
        "created_at": node.get("createdAt"),
        "processed_at": node.get("processedAt") or node.get("createdAt"),
        "email": node.get("email"),
        "test": bool(node.get("test")),
        "currency": node.get("currencyCode"),
        "financial_status": str(node.get("displayFinancialStatus") or "").lower() or None,
        "source_name": node.get("sourceName"),
        "total_price": _money(node, "totalPriceSet"),
        "subtotal_price": _money(node, "subtotalPriceSet"),
        "total_discounts": _money(node, "totalDiscountsSet"),
        "total_tax": _money(node, "totalTaxSet"),
        "customer": (
            {
                "id": int(customer["legacyResourceId"]),
                "email": customer.get("email"),
                "first_name": customer.get("firstName"),
                "last_name": customer.get("lastName"),
            }
            if customer and customer.get("legacyResourceId")
            else None
        ),
        "line_items": [
            {
                "title": line.get("title"),
                "quantity": line.get("quantity"),
                "sku": line.get("sku"),
                "product_id": (line.get("product") or {}).get("legacyResourceId"),
                "variant_id": (line.get("variant") or {}).get("legacyResourceId"),
                "price": _money(line, "originalUnitPriceSet"),
            }
            for line in (node.get("lineItems") or {}).get("nodes") or []
        ],
    }


@dataclass(frozen=True)
class BackfillResult:
    created: int
    already_sent: int
    skipped: int


def backfill(
    rt: Runtime,
    shop_domain: str,
    since: datetime,
    *,
    skip_recent_hours: int = 72,
    client: AdminClient | None = None,
) -> BackfillResult:
    """Create historical order_placed events (event_source "backfill") with original times."""
    client = client or client_for(rt.sessions, rt.secrets, rt.settings, shop_domain)
    cutoff = utcnow() - timedelta(hours=skip_recent_hours)
    search = f"created_at:>={_iso(since)} created_at:<{_iso(cutoff)}"
    created = existing = skipped = 0
    for nodes, _cursor in client.orders_pages(search=search):
        with transaction(rt.sessions) as session:
            for node in nodes:
                outcome = _backfill_order(session, rt.spec, shop_domain, node)
                created += outcome == "created"
                existing += outcome == "exists"
                skipped += outcome == "skipped"
    return BackfillResult(created, existing, skipped)


def _backfill_order(
    session: Session, spec: TrackSpec, shop_domain: str, node: dict[str, Any]
) -> str:
    try:
        event = map_order(rest_payload(node), shop_domain=shop_domain, event_source="backfill")
    except MappingError:
        return "skipped"
    if events.get_event(session, event.id) is not None:
        return "exists"
    if order_event_pruned(session, shop_domain, event.natural_key):
        return "exists"  # placed, and its event since deleted by retention
    if event.person.id is None or event.is_test:
        return "skipped"
    shop = get_shop(session, shop_domain)
    place_order(
        session, spec, event, history_known=shop is None or shop.history_imported_at is not None
    )
    return "created"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
