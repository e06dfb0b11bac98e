"""An RQ job that fails with a shopper's data in its message (for test_no_personal_data).

Its argument is an id, as every real job's is; the data comes from "the database"."""

from __future__ import annotations

from jobs.tasks import without_personal_data

STORED = {7: ("Zebedee", "leaky.person@example.com")}


@without_personal_data
def leaky_job(delivery_id: int) -> None:
    name, email = STORED[delivery_id]
    raise ValueError(f"could not handle {name} <{email}>")
