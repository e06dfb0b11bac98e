"""Read a stored webhook body into a payload the mapping can trust. Pure.

JSON allows what no order means and what storage or Customer.io cannot take: numbers that
overflow to infinity, lone UTF-16 surrogates (`"\\ud83d"`), NUL characters (which
PostgreSQL refuses in text). A number that is not finite makes the body unreadable; a
lone surrogate becomes U+FFFD and a NUL is dropped, so a shopper's odd product title
still gives an order.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

# The escapes that decode to a lone surrogate or a NUL; only bodies holding one are walked.
_UNSAFE_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class UnreadablePayloadError(ValueError):
    """The stored body is not a JSON object the mapping can read; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def read_payload(text: str) -> dict[str, Any]:
    """The JSON object in `text`, with unsafe characters cleaned; raise when unreadable."""
    try:
        payload = json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
        if _UNSAFE_ESCAPE.search(text):
            payload = _clean(payload)
    except RecursionError as exc:
        raise UnreadablePayloadError("the body is nested too deeply") from exc
    except ValueError as exc:  # JSONDecodeError, a non-finite number, too many digits
        raise UnreadablePayloadError(f"the body is not valid JSON ({_first_line(exc)})") from exc
    if not isinstance(payload, dict):
        raise UnreadablePayloadError("the body is not a JSON object")
    return payload


def _finite_float(literal: str) -> float:
    number = float(literal)
    if not math.isfinite(number):
        raise ValueError(f"the number {literal[:20]} is too large")
    return number


def _no_constant(literal: str) -> float:
    raise ValueError(f"{literal} is not a number JSON allows")


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value.replace("\x00", ""))
    if isinstance(value, dict):
        return {_clean(key): _clean(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_clean(item) for item in value]
    return value


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
