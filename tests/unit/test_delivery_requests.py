"""How a shop's claimed events are cut into requests that go to Customer.io at once."""

from __future__ import annotations

from typing import Any

from jobs.delivery import Batch


def batch_of(people: list[str]) -> Batch:
    ids = [f"event-{n}" for n in range(len(people))]
    operations: list[Any] = [({"n": n}, None) for n in range(len(people))]
    return Batch(
        "shop.myshopify.com", client=None, event_ids=ids, operations=operations, people=people
    )  # type: ignore[arg-type]


def test_a_small_batch_is_one_request() -> None:
    batch = batch_of(["a", "b", "c"])
    assert batch.requests(50) == [batch]


def test_a_persons_events_stay_in_one_request_in_their_order() -> None:
    people = ["a", "b", "a", "c", "d", "b", "e", "a"]
    parts = batch_of(people).requests(3)

    assert sorted(e for part in parts for e in part.event_ids) == sorted(
        f"event-{n}" for n in range(len(people))
    )
    for person in set(people):
        holding = [part for part in parts if person in part.people]
        assert len(holding) == 1  # never split over requests sent at once
        mine = [
            e for e, p in zip(holding[0].event_ids, holding[0].people, strict=True) if p == person
        ]
        assert mine == [f"event-{n}" for n, p in enumerate(people) if p == person]
    for part in parts:  # operations travel with their event
        assert [op[0]["n"] for op in part.operations] == [
            int(e.split("-")[1]) for e in part.event_ids
        ]


def test_requests_are_cut_near_the_size() -> None:
    parts = batch_of([f"p{n}" for n in range(120)]).requests(50)
    assert [len(part.event_ids) for part in parts] == [50, 50, 20]


def test_a_person_with_more_events_than_a_request_gets_a_longer_part() -> None:
    parts = batch_of(["busy"] * 7 + ["other"]).requests(5)
    assert [part.people for part in parts] == [["busy"] * 7, ["other"]]
