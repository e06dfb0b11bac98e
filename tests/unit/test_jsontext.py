"""The fast JSON codec reads and writes what the standard library would."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector import jsontext

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (1 and 1.0 are not the same here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@given(json_values, st.booleans())
def test_reads_what_json_reads(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert same(jsontext.loads(text), json.loads(text))


@given(json_values)
def test_what_it_writes_reads_back_as_the_value(value: Any) -> None:
    assert same(json.loads(jsontext.dumps(value)), value)
    assert same(json.loads(jsontext.dumps_strict(value)), value)


@pytest.mark.parametrize(
    "text",
    [
        '{"id": 123456789012345678901234567890}',  # orjson would read a float
        '{"id": -9223372036854775809}',
        '{"id": 18446744073709551616}',
        '{"note": "Mug \\ud83d"}',  # orjson refuses a lone surrogate; json reads it
        '{"note": "\\udc00"}',
        '{"a": 1e400}',  # json reads inf; orjson refuses
        "null",
        "[]",
    ],
)
def test_where_orjson_differs_json_decides(text: str) -> None:
    assert same(jsontext.loads(text), json.loads(text))


@pytest.mark.parametrize("text", ["{", '{"a": 1} x', "", '{"a": "\x00"}'])
def test_what_json_refuses_raises_as_json_does(text: str) -> None:
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        jsontext.loads(text)


def test_nan_is_left_to_json_and_its_options() -> None:
    assert jsontext.fast_loads('{"a": NaN}') is jsontext.UNDECIDED
    assert jsontext.loads('{"a": NaN}')["a"] != jsontext.loads('{"a": NaN}')["a"]  # nan


def test_writes_what_orjson_refuses_as_json_does() -> None:
    assert json.loads(jsontext.dumps({"n": 10**30, "s": "Mug \ud83d"})) == {
        "n": 10**30,
        "s": "Mug \ud83d",
    }
    assert jsontext.dumps({1: "a"}) == '{"1":"a"}'


def test_a_request_with_a_lone_surrogate_cannot_be_encoded() -> None:
    with pytest.raises((ValueError, TypeError)):
        jsontext.dumps_strict({"note": "Mug \ud83d"})
    assert jsontext.dumps_strict({"n": 10**30}) == b'{"n":1000000000000000000000000000000}'


def test_reads_bytes_as_psycopg_hands_json_columns() -> None:
    assert same(jsontext.loads('{"n": 1, "s": "é"}'.encode()), {"n": 1, "s": "é"})
