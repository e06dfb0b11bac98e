"""No shopper's email, name or phone in any log line or Redis value, in normal flows and
when webhooks are poisonous, Customer.io fails, or a job raises with data in its message."""

from __future__ import annotations

import json
import logging

import pytest
from flask.testing import FlaskClient
from redis import Redis
from rq import Queue
from rq.registry import FailedJobRegistry

from connector.dev.fake_customerio import FakeCustomerIO
from connector.runtime import Runtime
from tests.integration.test_poison import POISONS, store
from tests.support import make_order, post_webhook, run_jobs, sample

EMAIL = "leaky.person@example.com"
FIRST, LAST = "Zebedee", "Quuxworth"
PHONE = "+15550001234"
PERSONAL = (EMAIL, FIRST, LAST, PHONE, PHONE.lstrip("+"))


def personal(text: str) -> str:
    """The sample shopper turned into the test's distinctive one, wherever they appear."""
    for old, new in (("maya.chen@example.com", EMAIL), ("Maya", FIRST), ("Chen", LAST)):
        text = text.replace(old, new).replace(old.lower(), new.lower())
    return text


def leaks(text: str) -> list[str]:
    lowered = text.lower()
    return [value for value in PERSONAL if value.lower() in lowered]


def every_redis_value(redis: Redis) -> str:
    """Every key and value of the test's Redis database, as text."""
    parts = []
    for key in redis.scan_iter(count=1000):
        parts.append(repr(key))
        kind = redis.type(key)
        if kind == b"string":
            parts.append(repr(redis.get(key)))
        elif kind == b"hash":
            parts.append(repr(redis.hgetall(key)))
        elif kind == b"list":
            parts.append(repr(redis.lrange(key, 0, -1)))
        elif kind == b"set":
            parts.append(repr(redis.smembers(key)))
        elif kind == b"zset":
            parts.append(repr(redis.zrange(key, 0, -1)))
        elif kind == b"stream":
            parts.append(repr(redis.xrange(key)))
    return "\n".join(parts)


def test_logs_and_redis_hold_no_personal_data_through_faults(
    client: FlaskClient,
    rt: Runtime,
    shop: str,
    fake_customerio: FakeCustomerIO,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    order = make_order(990001, when="2026-11-28T10:00:00-05:00", phone=PHONE)
    body = personal(json.dumps(order)).encode()
    assert EMAIL in body.decode() and FIRST in body.decode()
    assert post_webhook(client, "orders/create", body, "ok-1").status_code == 200
    checkout = personal(json.dumps(sample("checkouts_create_2026-07.json"))).encode()
    assert post_webhook(client, "checkouts/create", checkout, "ok-2").status_code == 200
    for index, (topic, poison) in enumerate(POISONS.values()):
        store(rt, topic, personal(poison), f"poison-{index}")
    fake_customerio.fail_next(2, status=500)  # retried, with reasons logged
    run_jobs(rt)
    fake_customerio.fail_next(1, status=400)  # rejected: the response excerpt is stored
    second = personal(json.dumps(make_order(990002, when="2026-11-28T11:00:00-05:00")))
    assert post_webhook(client, "orders/create", second.encode(), "ok-3").status_code == 200
    run_jobs(rt)

    queue = Queue(rt.settings.queue_name, connection=rt.redis)
    queue.enqueue("tests.integration.leaky_job.leaky_job", 7)
    run_jobs(rt)
    assert FailedJobRegistry(queue=queue).count == 1  # the job did fail, and was kept

    assert fake_customerio.requests, "nothing reached Customer.io"
    log_text = "\n".join(record.getMessage() for record in caplog.records)
    log_text += "\n".join(
        logging.Formatter().formatException(r.exc_info) for r in caplog.records if r.exc_info
    )
    assert "JobFailedError" in log_text or "job failed" in log_text
    assert leaks(log_text) == []
    assert leaks(every_redis_value(rt.redis)) == []
