"""`lint-imports` checks the layers it is told about; this checks it is told about every module."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("connector", "webhooks", "jobs")


def _layered_modules() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    return {
        name.strip().strip("()") for layer in layers for name in layer.replace("|", ":").split(":")
    }


def _modules() -> set[str]:
    names = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names - set(PACKAGES)


def test_every_module_is_in_a_layer() -> None:
    layered = _layered_modules()
    outside = {
        module
        for module in _modules()
        if not any(module == layer or module.startswith(layer + ".") for layer in layered)
    }
    assert outside == set(), "add these to the layers contract in pyproject.toml"
