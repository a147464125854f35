"""The catalog model: payload rules of decisions.md §7 and the bundled sample."""

from __future__ import annotations

import json

import pytest

from modelguard import Catalog, CatalogError

from .conftest import ALL_TAGS


def test_default_is_a_broad_sample_with_the_documented_entries(default_catalog) -> None:
    assert len(default_catalog) >= 12
    sonnet = default_catalog.get("claude-sonnet-4-6")
    assert sonnet is not None and sonnet.owned_by == "anthropic" and sonnet.family == "claude"
    assert sonnet.capabilities == ("text", "vision", "tool_use", "streaming", "cache_control",
                                   "thinking")
    assert (sonnet.context_window, sonnet.max_output_tokens, sonnet.created) == (
        200000, 8192, 1714003200)
    assert sonnet.input_modalities == ("text", "image") and sonnet.output_modalities == ("text",)
    gpt = default_catalog.get("gpt-5-4")
    assert gpt is not None and gpt.capabilities == ("text", "vision", "tool_use", "streaming",
                                                    "json_schema", "logprobs")
    assert (gpt.context_window, gpt.max_output_tokens) == (256000, 16384)
    families = {m.family for m in default_catalog}
    assert {"claude", "gpt", "gemini", "deepseek", "kimi", "glm", "minimax", "doubao"} <= families
    for tag in ALL_TAGS:  # every tag is both present and absent somewhere
        assert any(m.has(tag) for m in default_catalog), tag
        assert any(not m.has(tag) for m in default_catalog), tag
    assert any(m.capabilities == ("text",) for m in default_catalog)  # text-only


def test_minimal_entries_unknown_fields_and_tags_are_kept() -> None:
    catalog = Catalog.model_validate({"data": [
        {"id": "a"},
        {"id": "b", "capabilities": ["teleport", "vision"], "price_hint": 3, "capabilities_v2": {}},
        {"id": "c", "capabilities": None, "input_modalities": ["audio"]},
    ]})
    a, b, c = catalog.get("a"), catalog.get("b"), catalog.get("c")
    assert a.capabilities == () and a.max_output_tokens is None and not a.has("vision")
    assert b.has("vision") and b.has("teleport") and b.model_extra["price_hint"] == 3
    assert c.has("audio") and not c.has("vision")  # granted by input_modalities
    assert catalog.get("d") is None and "a" in catalog


def test_empty_data_is_a_valid_empty_catalog() -> None:
    assert len(Catalog.model_validate({"object": "list", "data": []})) == 0


@pytest.mark.parametrize("payload", [
    {"object": "list"},
    {"data": {"id": "a"}},
    {"data": [{"name": "no id"}]},
    {"data": [{"id": ""}]},
    {"data": [{"id": 7}]},
    {"data": [{"id": "a"}, {"id": "a"}]},
    {"data": [{"id": "a", "max_output_tokens": "lots"}]},
    [],
])
def test_malformed_payloads_are_rejected_whole(payload) -> None:
    with pytest.raises(CatalogError):
        Catalog.from_payload(payload)


def test_from_file_and_errors(tmp_path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"data": [{"id": "x"}]}))
    assert Catalog.from_file(path).ids == ["x"]
    path.write_text("{broken")
    with pytest.raises(CatalogError, match="not JSON"):
        Catalog.from_file(path)
    with pytest.raises(CatalogError, match="cannot read"):
        Catalog.from_file(tmp_path / "missing.json")


def test_suggestions_come_from_this_catalog_only(default_catalog) -> None:
    assert default_catalog.suggest("claude-sonnet-4.6") == "claude-sonnet-4-6"
    assert default_catalog.suggest("models/Gemini-3-1-Pro") == "gemini-3-1-pro"
    assert default_catalog.suggest("gpt-5.4-minii") == "gpt-5-4-mini"
    assert default_catalog.suggest("completely-unrelated-thing-xyz") is None
    small = Catalog.model_validate({"data": [{"id": "glm-5"}]})
    assert small.suggest("claude-sonnet-4.6") is None


def test_select_and_capable(default_catalog) -> None:
    vision_stream = default_catalog.select(["vision", "streaming"])
    assert all(m.has("vision") and m.has("streaming") for m in vision_stream)
    google = default_catalog.select(family="GOOGLE")
    assert google and all(m.owned_by == "google" for m in google)
    assert {m.id for m in default_catalog.select(family="claude")} == {
        m.id for m in default_catalog if m.family == "claude"}
    capable = default_catalog.capable({"video", "thinking"}, exclude="gemini-3-1-pro")
    assert capable and "gemini-3-1-pro" not in capable
    assert all(default_catalog.get(i).has("video") for i in capable)
    assert len(default_catalog.capable(set())) == 3
