"""The track spec (spec.yaml): load it, and check canonical events against it.

Pure: stdlib, PyYAML and pycountry only. No Flask, Redis or database.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pycountry
import yaml

from connector.timeutil import parse_utc

DEFAULT_SPEC_PATH = Path(__file__).resolve().parent.parent / "spec.yaml"

TYPES = ("number", "integer", "string", "boolean", "array", "object")
FORMATS = ("iso4217", "iso3166_alpha2", "url", "datetime")
ITEM_SCHEMA = "item"
_PYTHON_TYPES: dict[str, type | tuple[type, ...]] = {
    "number": (int, float),
    "integer": int,
    "string": str,
    "boolean": bool,
    "array": list,
    "object": Mapping,
}

# User-assigned codes Shopify uses that ISO 3166-1 does not list (XK: Kosovo).
_EXTRA_COUNTRY_CODES = frozenset({"XK"})


class SpecError(ValueError):
    """Raised by load_spec when spec.yaml is missing, unparseable or malformed."""


@dataclass(frozen=True)
class TrackSpec:
    """The parsed track spec, plus lookups the validator and the CLI need."""

    raw: Mapping[str, Any]

    @property
    def spec_version(self) -> Any:
        return self.raw.get("spec_version")

    @property
    def items_schema_version(self) -> int:
        return int(self.raw["items_schema_version"])

    @property
    def event_names(self) -> tuple[str, ...]:
        return tuple(self.raw["events"])

    @property
    def item_schema(self) -> Mapping[str, Mapping[str, Any]]:
        return self.raw.get(ITEM_SCHEMA) or {}

    @property
    def checkout_hold_hours(self) -> int:
        anonymous = (self.raw.get("identifiers") or {}).get("anonymous_checkouts") or {}
        return int(anonymous.get("checkout_hold_hours", 72))

    def properties(self, event_name: str) -> Mapping[str, Mapping[str, Any]]:
        """Return the property definitions of one event (KeyError when unknown)."""
        return self.raw["events"][event_name].get("properties") or {}

    def required(self, event_name: str) -> tuple[str, ...]:
        """Return the names of the event's required properties."""
        props = self.properties(event_name)
        return tuple(name for name, rule in props.items() if rule.get("required"))


def load_spec(path: str | Path | None = None) -> TrackSpec:
    """Read and check spec.yaml (the repo root's by default); raise SpecError if malformed."""
    spec_path = Path(path) if path is not None else DEFAULT_SPEC_PATH
    try:
        raw = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"cannot read track spec {spec_path}: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("events"), dict):
        raise SpecError(f"{spec_path}: expected a mapping with an 'events' mapping")
    if not isinstance(raw.get("items_schema_version"), int):
        raise SpecError(f"{spec_path}: items_schema_version must be an integer")
    problems = _check_rules(ITEM_SCHEMA, raw.get(ITEM_SCHEMA) or {})
    for name, event in raw["events"].items():
        if not isinstance(event, dict) or not isinstance(event.get("properties"), dict):
            problems.append(f"{name}: expected a 'properties' mapping")
            continue
        problems.extend(_check_rules(name, event["properties"]))
    if problems:
        raise SpecError(f"{spec_path}: " + "; ".join(problems))
    return TrackSpec(raw=raw)


def _check_rules(owner: str, rules: Mapping[str, Any]) -> list[str]:
    """Return what is wrong with a block of property definitions."""
    problems: list[str] = []
    for name, rule in rules.items():
        where = f"{owner}.{name}"
        if not isinstance(rule, dict):
            problems.append(f"{where}: expected a mapping")
            continue
        if rule.get("type") not in TYPES:
            problems.append(f"{where}: type must be one of {', '.join(TYPES)}")
        if not isinstance(rule.get("required"), bool):
            problems.append(f"{where}: required must be true or false")
        if "format" in rule and rule["format"] not in FORMATS:
            problems.append(f"{where}: format must be one of {', '.join(FORMATS)}")
        if rule.get("type") == "array" and rule.get("items") not in (*TYPES, ITEM_SCHEMA):
            problems.append(f"{where}: items must be 'item' or a type")
    return problems


# --- validation -------------------------------------------------------------------------


def validate(spec: TrackSpec, event_name: str, properties: Mapping[str, Any]) -> list[str]:
    """Return every way the properties break the spec, as 'event.field: problem' strings.

    Unknown properties are violations. None counts as absent: fine for an optional
    property, 'missing' for a required one. bool is never a number or an integer.
    """
    if event_name not in spec.raw["events"]:
        return [f"{event_name}: not in the spec"]
    return _check_object(spec, event_name, spec.properties(event_name), properties)


def _check_object(
    spec: TrackSpec, where: str, rules: Mapping[str, Mapping[str, Any]], value: Mapping[str, Any]
) -> list[str]:
    violations: list[str] = []
    for name, rule in rules.items():
        if value.get(name) is None:
            if rule.get("required"):
                violations.append(f"{where}.{name}: missing")
            continue
        if rule["type"] == "array" or not _plainly_valid(rule, value[name]):
            violations.extend(_check_value(spec, f"{where}.{name}", rule, value[name]))
    violations.extend(f"{where}.{name}: not in the spec" for name in value if name not in rules)
    return violations


def _plainly_valid(rule: Mapping[str, Any], value: Any) -> bool:
    """The common case, checked without naming the field (every event has dozens): of the
    right type, with no enum or format to check."""
    return "enum" not in rule and "format" not in rule and _is_type(value, rule["type"])


def _check_value(spec: TrackSpec, where: str, rule: Mapping[str, Any], value: Any) -> list[str]:
    expected = rule["type"]
    if not _is_type(value, expected):
        return [f"{where}: expected {expected}, got {type_name(value)}"]
    if "enum" in rule and value not in rule["enum"]:
        allowed = ", ".join(str(option) for option in rule["enum"])
        return [f"{where}: {value!r} is not one of {allowed}"]
    if "format" in rule:
        problem = _format_problem(rule["format"], value)
        if problem:
            return [f"{where}: {value!r} {problem}"]
    if expected == "array":
        return _check_elements(spec, where, rule.get("items"), value)
    return []


def _check_elements(spec: TrackSpec, where: str, items: Any, values: list[Any]) -> list[str]:
    violations: list[str] = []
    for index, element in enumerate(values):
        at = f"{where}[{index}]"
        if items == ITEM_SCHEMA:
            if not isinstance(element, Mapping):
                violations.append(f"{at}: expected object, got {type_name(element)}")
            else:
                violations.extend(_check_object(spec, at, spec.item_schema, element))
        elif items is not None and not _is_type(element, items):
            violations.append(f"{at}: expected {items}, got {type_name(element)}")
    return violations


def _is_type(value: Any, expected: str) -> bool:
    if isinstance(value, bool):
        return expected == "boolean"
    return isinstance(value, _PYTHON_TYPES[expected])


def type_name(value: Any) -> str:
    """Name a Python value's type in the spec's vocabulary (JSON's)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _format_problem(fmt: str, value: Any) -> str | None:
    """Return why value does not match the format, or None when it does."""
    if not isinstance(value, str):
        return "is not a string"
    if fmt == "iso4217" and value not in currency_codes():
        return "is not an ISO-4217 code"
    if fmt == "iso3166_alpha2" and value not in country_codes():
        return "is not an ISO-3166 alpha-2 code"
    if fmt == "url":
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return "is not an http(s) URL"
    if fmt == "datetime":
        try:
            parse_utc(value)
        except ValueError:
            return "is not an ISO-8601 datetime"
    return None


@functools.cache
def currency_codes() -> frozenset[str]:
    """Return the ISO-4217 alphabetic currency codes."""
    return frozenset(currency.alpha_3 for currency in pycountry.currencies)


@functools.cache
def country_codes() -> frozenset[str]:
    """Return the ISO-3166 alpha-2 country codes, plus the user-assigned ones Shopify uses."""
    return frozenset(country.alpha_2 for country in pycountry.countries) | _EXTRA_COUNTRY_CODES
