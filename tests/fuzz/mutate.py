"""Mutate real webhook samples into the odd, broken and hostile bodies a storm may bring.

Deterministic for a seed: a failure names its seed and index, and reruns the same body.
"""

from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass
from typing import Any

from tests.support import sample

# Each handled topic, with the samples it is mutated from.
TOPIC_SAMPLES: dict[str, tuple[str, ...]] = {
    "orders/create": (
        "orders_create_2026-07.json",
        "orders_create_2024-01.json",
        "orders_create_guest_email_only.json",
        "orders_create_pos_anonymous.json",
        "orders_create_multicurrency.json",
    ),
    "orders/paid": ("orders_create_2026-07.json",),
    "orders/updated": ("orders_create_2024-01.json", "orders_create_multicurrency.json"),
    "orders/cancelled": ("orders_cancelled_2026-07.json",),
    "refunds/create": ("refunds_create_2026-07.json",),
    "fulfillments/create": ("fulfillments_create_2026-07.json",),
    "products/update": ("products_update_2026-07.json",),
    "checkouts/create": (
        "checkouts_create_2026-07.json",
        "checkouts_create_anonymous.json",
        "checkouts_create_2024-01.json",
    ),
    "checkouts/update": ("checkouts_update_with_email.json",),
    "customers/create": ("customers_update_2026-07.json",),
    "customers/update": ("customers_update_2026-07.json",),
}
# Handled alone and erase or deactivate: mutated too, but against their own shop.
DESTRUCTIVE_TOPICS = (
    "app/uninstalled",
    "shop/redact",
    "customers/redact",
    "customers/data_request",
)

ODD_VALUES: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    10**30,
    1.5,
    1e308,
    "",
    " ",
    "x" * 5000,
    "Ωμέγα ✓ 注文 🧦",
    "0001-01-01T00:00:00+05:00",
    "9999-12-31T23:59:59-05:00",
    "2026-13-45T99:99:99Z",
    "1e30",
    "-5",
    "NaN",
    "<script>alert(1)</script>",
    "'; DROP TABLE events; --",
    [],
    {},
    ["a", 1, None],
    {"id": {"nested": [1, 2]}},
)

# Raw text swaps json.dumps cannot write: (what to find, what to put instead).
RAW_SWAPS: tuple[tuple[str, str], ...] = (
    ('"quantity": 1', '"quantity": 1e999'),
    ('"quantity": 2', '"quantity": -1e400'),
    (': "', ': "\\ud83d'),
    (': "', ': "\\u0000'),
    (': "', ': "\\udc00\\ud800'),
    (": null", ": NaN"),
    (": true", ": Infinity"),
    ('"id": ', '"id": 1' + "0" * 5000 + ', "_": '),
)


@dataclass(frozen=True)
class Mutant:
    topic: str
    body: bytes
    what: str  # how it was made, for a failure message


def walk(value: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) in a JSON value, depth first."""
    spots: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            spots.append((value, key))
            spots.extend(walk(item))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            spots.append((value, index))
            spots.extend(walk(item))
    return spots


def fresh(payload: dict[str, Any], topic: str, rng: random.Random, now: str) -> dict[str, Any]:
    """New ids and a recent time, so mutants are many distinct orders and checkouts."""
    payload = copy.deepcopy(payload)
    if topic.startswith(("orders/", "customers/")) and "id" in payload:
        payload["id"] = rng.randrange(10**9, 10**10)
    if topic.startswith(("refunds/", "fulfillments/")) and "order_id" in payload:
        payload["order_id"] = rng.randrange(10**9, 10**10)
    if topic.startswith("checkouts/"):
        payload["token"] = f"fuzz{rng.randrange(10**12):012d}"
    for field in ("created_at", "processed_at", "updated_at"):
        if field in payload:
            payload[field] = now
    return payload


def mutate(payload: dict[str, Any], rng: random.Random) -> tuple[dict[str, Any], str]:
    """One to three structural changes at random places: drop, retype, empty, nest."""
    done = []
    for _ in range(rng.randint(1, 3)):
        spots = walk(payload)
        if not spots:
            break
        container, key = rng.choice(spots)
        action = rng.random()
        if action < 0.25 and isinstance(container, dict):
            del container[key]
            done.append(f"drop {key}")
        elif action < 0.35 and isinstance(container, dict):
            container[f"{key}_extra"] = container[key]
            done.append(f"copy {key}")
        else:
            value = rng.choice(ODD_VALUES)
            container[key] = copy.deepcopy(value)
            done.append(f"{key}={str(value)[:20]!r}")
    return payload, "; ".join(done)


def mutant(topic: str, rng: random.Random, now: str, shop_domain: str) -> Mutant:
    samples = TOPIC_SAMPLES.get(topic)
    base = sample(rng.choice(samples)) if samples else _destructive_payload(topic, shop_domain)
    payload, what = mutate(fresh(base, topic, rng, now), rng)
    text = json.dumps(payload, ensure_ascii=rng.random() < 0.5)
    roll = rng.random()
    if roll < 0.15:
        find, swap = rng.choice(RAW_SWAPS)
        if find in text:
            text = text.replace(find, swap, 1)
            what += f"; raw {swap[:24]!r}"
    elif roll < 0.18:
        text = text[: rng.randrange(max(1, len(text)))]
        what += "; truncated"
    elif roll < 0.20:
        text = "\ufeff" + text
        what += "; BOM"
    body = text.encode("utf-16") if rng.random() < 0.01 else text.encode("utf-8", "surrogatepass")
    return Mutant(topic, body, what)


def _destructive_payload(topic: str, shop_domain: str) -> dict[str, Any]:
    return {
        "shop_id": 1,
        "shop_domain": shop_domain,
        "customer": {"id": 4242, "email": "fuzz.redact@example.com", "phone": None},
        "orders_to_redact": [1, 2],
        "orders_requested": [1],
        "data_request": {"id": 9},
        "id": 1,
        "domain": shop_domain,
    }
