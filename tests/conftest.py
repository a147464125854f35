"""Shared test helpers: the bundled catalog, fixture loading, and catalogs built per test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modelguard import Catalog

FIXTURES = Path(__file__).parent / "fixtures"
SDK_FIXTURES = sorted((FIXTURES / "sdk").glob("*.json"))
ALL_TAGS = ("vision", "audio", "video", "tool_use", "streaming", "cache_control", "thinking",
            "json_schema", "logprobs", "image_gen", "video_gen")


def load_fixture(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def model_entry(model_id: str, tags: set[str] | frozenset[str], owned_by: str = "anthropic",
                max_output_tokens: int | None = None) -> dict[str, Any]:
    """A catalog entry with exactly ``tags`` (as capabilities only, text-only modalities)."""
    entry: dict[str, Any] = {"id": model_id, "object": "model", "owned_by": owned_by,
                             "capabilities": ["text", *sorted(tags)],
                             "input_modalities": ["text"], "output_modalities": ["text"]}
    if max_output_tokens is not None:
        entry["max_output_tokens"] = max_output_tokens
    return entry


def catalog_of(*entries: dict[str, Any]) -> Catalog:
    return Catalog.model_validate({"object": "list", "data": list(entries)})


@pytest.fixture(scope="session")
def default_catalog() -> Catalog:
    return Catalog.default()


#: Long lanes, deselected by ``pytest -m "not slow"`` (the full run keeps them): module names
#: containing one of these words (soak, property-based, fuzz, coding agents).
SLOW_MODULES = ("soak", "propert", "fuzz", "agent")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        name = item.path.stem if item.path is not None else ""
        if any(word in name for word in SLOW_MODULES):
            item.add_marker(pytest.mark.slow)
