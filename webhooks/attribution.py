"""Where a shopper came from: UTM parameters of the landing page, and the referring site. Pure."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign")
MAX_LENGTH = 255  # Customer.io keeps attribute values short; a UTM value is a label


def attribution(landing_site: Any, referring_site: Any) -> dict[str, str | None]:
    """utm_source, utm_medium, utm_campaign from the landing page, and the referring site.

    `landing_site` is what Shopify stores: a path with a query string ("/?utm_source=x")
    or a whole URL. The first value of a repeated key wins; values are percent-decoded and
    trimmed; anything unreadable gives None for that field, never an error.
    """
    found: dict[str, str | None] = dict.fromkeys(UTM_FIELDS)
    if isinstance(landing_site, str) and "?" in landing_site:
        try:
            query = parse_qs(urlsplit(landing_site.strip()).query, keep_blank_values=False)
        except ValueError:
            query = {}
        for field in UTM_FIELDS:
            values = [v.strip() for v in query.get(field, []) if v.strip()]
            found[field] = values[0][:MAX_LENGTH] if values else None
    referrer = referring_site.strip() if isinstance(referring_site, str) else ""
    found["referring_site"] = referrer[:2048] or None
    return found
