"""What every install does once Shopify gave a token pair, whichever grant gave it (the
authorization-code callback, or token exchange on an embedded load): check the scopes,
make or check the webhook subscriptions, store the shop, queue the post-install jobs."""

from __future__ import annotations

import logging

from flask.typing import ResponseReturnValue
from redis.exceptions import RedisError
from rq import Queue

from connector.install.pages import install_refused, page
from connector.runtime import Runtime
from connector.shopify.admin import AdminClient
from connector.shopify.errors import ShopifyError
from connector.shopify.http import admin_base_url
from connector.shopify.oauth import missing_scopes
from connector.shopify.subscriptions import sync_webhooks
from connector.shopify.tokens import TokenSet, stored_tokens
from connector.storage import reconciliation, shops
from connector.storage.db import StorageUnavailableError, storage_errors, transaction
from jobs import lifecycle, queue

log = logging.getLogger(__name__)


def finish_install(rt: Runtime, shop: str, tokens: TokenSet) -> ResponseReturnValue | None:
    """Complete the install with `tokens`; a refusal page (nothing stored), or None when the
    shop is installed."""
    if missing_scopes(tokens.scope):
        return page(
            403,
            "Permissions missing",
            "The connector needs read access to orders, checkouts and customers. "
            "Nothing was saved; install again and approve them.",
        )
    client = AdminClient(
        base_url=admin_base_url(rt.settings, shop),
        api_version=rt.settings.shopify_api_version,
        access_token=tokens.access_token,
        timeout=rt.settings.http_timeout_seconds,
    )
    try:
        subscriptions = sync_webhooks(client, rt.settings, shop)
    except ShopifyError as exc:
        return install_refused(shop, exc)
    try:
        with storage_errors(), transaction(rt.sessions) as db:
            installed = shops.record_install(db, shop, stored_tokens(rt.secrets, tokens))
            if installed.reinstalled:
                lifecycle.resume_after_reinstall(db, shop)
            if report := subscriptions.report():
                reconciliation.record_subscription_check(db, shop, report)
    except StorageUnavailableError:
        return page(503, "Install not completed", "Nothing was saved. Try again in a minute.")
    _after_install(rt, shop, installed)
    return None


def _after_install(rt: Runtime, shop: str, installed: shops.Installed) -> None:
    log.info("shop installed shop=%s reinstall=%s", shop, installed.reinstalled)
    try:
        if installed.needs_history:
            Queue(rt.settings.queue_name, connection=rt.redis).enqueue(
                "jobs.tasks.import_history", shop, job_timeout=3600, failure_ttl=7 * 24 * 3600
            )
        if installed.reinstalled:  # pending events waited while the shop was uninstalled
            queue.kick(rt.redis, rt.settings.queue_name, queue.DELIVER)
        # Webhooks may have arrived while the install was under way: they waited for it.
        queue.kick(rt.redis, rt.settings.queue_name, queue.PROCESS)
    except RedisError:
        log.warning("post-install jobs not queued shop=%s; the sweep resumes delivery", shop)
