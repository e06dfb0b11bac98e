"""Reading stored webhook bodies: what JSON allows but an order cannot carry."""

from __future__ import annotations

import pytest

from webhooks.payload import UnreadablePayloadError, read_payload


def test_a_plain_object_is_read_as_is() -> None:
    assert read_payload('{"id": 1, "title": "Mug", "price": 1.5}') == {
        "id": 1,
        "title": "Mug",
        "price": 1.5,
    }


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('{"quantity": 1e999}', "1e999 is too large"),
        ('{"quantity": Infinity}', "Infinity is not a number"),
        ('{"quantity": NaN}', "NaN is not a number"),
        ('{"quantity": ' + "9" * 5000 + "}", "not valid JSON"),
        ("\ufeff{}", "BOM"),
        ("[1, 2]", "not a JSON object"),
        ('"text"', "not a JSON object"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"id": 1', "not valid JSON"),
    ],
)
def test_unreadable_bodies_say_why(body: str, reason: str) -> None:
    with pytest.raises(UnreadablePayloadError) as raised:
        read_payload(body)
    assert reason in raised.value.reason


def test_lone_surrogates_and_nuls_are_cleaned_everywhere() -> None:
    payload = read_payload(
        '{"a\\u0000": ["Mug \\ud83d", {"t": "x\\u0000y\\uDC00"}], "ok": "\\ud83d\\ude00"}'
    )
    assert payload == {"a": ["Mug \ufffd", {"t": "xy\ufffd"}], "ok": "\U0001f600"}
