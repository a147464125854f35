"""Suggestions for an unknown model (decisions.md §12): spellings only, else the family.

"Did you mean" names a model only when the slug is a spelling of it (case, dots for dashes,
``models/``, a date suffix, at most two letters typed wrong). Another version or tier is never
offered as a typo fix: the message lists the key's models of the same family, as such.
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelguard import Catalog, Guard
from modelguard.catalog.suggest import family_word, loose

from .conftest import catalog_of, model_entry


@pytest.fixture(scope="module")
def default() -> Catalog:
    return Catalog.default()


@pytest.mark.parametrize(("slug", "want"), [
    ("claude-sonnet-4.6", "claude-sonnet-4-6"),          # dots for dashes
    ("Claude-Sonnet-4-6", "claude-sonnet-4-6"),          # case
    ("models/gemini-3-1-pro", "gemini-3-1-pro"),         # models/ prefix
    ("models/Gemini-3.1-Pro", "gemini-3-1-pro"),
    ("claude-sonnet-4-6-20260115", "claude-sonnet-4-6"),  # a date suffix
    ("claude-sonnet-4-6@20260115", "claude-sonnet-4-6"),
    ("gpt-5-4-2026-03-05", "gpt-5-4"),
    ("gpt-5-4-latest", "gpt-5-4"),
    ("claude-sonet-4-6", "claude-sonnet-4-6"),           # one letter missing
    ("claude-snonet-4-6", "claude-sonnet-4-6"),          # two letters swapped
    ("cluade-opus-4-8", "claude-opus-4-8"),              # a typo in the family word
    ("gpt-5.4-minii", "gpt-5-4-mini"),
    ("gpt5-4", "gpt-5-4"),                               # a missing dash
    ("doubao-seed-2-0-pro", "doubao-seed-2.0-pro"),      # dashes for the slug's dots
    ("veo_3_1", "veo-3.1"),
])
def test_spellings_get_did_you_mean(default: Catalog, slug: str, want: str) -> None:
    assert default.suggest(slug) == want


@pytest.mark.parametrize("slug", [
    "claude-opus-4-9",     # another version: a different model
    "claude-opus-4-5",
    "claude-haiku-4-6",
    "gpt-5-4-max",         # a tier the key does not have (max is no typo of mini or nano)
    "gpt-5-5",
    "gemini-3-1-flash",    # another tier of the same version
    "glm-4",
    "kimi-k2",
    "gpt-4o",
    "completely-unrelated-thing-xyz",
    "",
])
def test_other_versions_and_tiers_get_no_did_you_mean(default: Catalog, slug: str) -> None:
    assert default.suggest(slug) is None


def test_claude_code_default_model_is_not_offered_haiku() -> None:
    """The issue's case: a key without claude-opus-4-8 gets its Claude models, as such."""
    catalog = catalog_of(model_entry("claude-haiku-4-5", set()) | {"family": "claude"},
                         model_entry("claude-sonnet-4-6", set()) | {"family": "claude"},
                         model_entry("gpt-5-4", set(), "openai") | {"family": "gpt"})
    assert catalog.suggest("claude-opus-4-8") is None
    label, members = catalog.family("claude-opus-4-8")
    assert label == "claude" and set(members) == {"claude-haiku-4-5", "claude-sonnet-4-6"}


async def test_unknown_model_message_names_the_family_as_such() -> None:
    catalog = catalog_of(model_entry("claude-haiku-4-5", set()) | {"family": "claude"},
                         model_entry("gpt-5-4", set(), "openai") | {"family": "gpt"})
    body = {"model": "claude-opus-4-8", "max_tokens": 10, "messages": [
        {"role": "user", "content": "hi"}]}
    verdict = await Guard(catalog).check("POST", "/v1/messages", {}, json.dumps(body).encode())
    message = verdict.error["error"]["message"]
    assert "Did you mean" not in message
    assert "Other claude models this key can use instead: claude-haiku-4-5." in message
    assert "gpt-5-4" not in message


async def test_family_by_owner_when_the_word_is_a_vendor() -> None:
    catalog = catalog_of(model_entry("claude-haiku-4-5", set()) | {"family": "claude"},
                         model_entry("gpt-5-4", set(), "openai"))
    label, members = catalog.family("anthropic/claude-opus-4.8")
    assert members == ["claude-haiku-4-5"] and label == "claude"
    assert catalog.family("mistral-large") == (None, [])


@pytest.mark.parametrize(("slug", "path"), [
    ("/v1beta/models/gemini-3.1-pro:generateContent", None),
    ("/v1beta/models/nothing-like-it:generateContent", None),
])
async def test_gemini_unknown_model_has_no_metadata_path(slug: str, path: None) -> None:
    body = json.dumps({"contents": [{"parts": [{"text": "hi"}]}]}).encode()
    verdict = await Guard(Catalog.default()).check("POST", slug, {}, body)
    detail = verdict.error["error"]["details"][0]
    assert detail["reason"] == "UNSUPPORTED_MODEL"
    assert "path" not in detail["metadata"] and "model" in detail["metadata"]


async def test_openai_unknown_model_keeps_param_model() -> None:
    body = json.dumps({"model": "gpt-5.4", "messages": [{"role": "user", "content": "x"}]})
    verdict = await Guard(Catalog.default()).check("POST", "/v1/chat/completions", {},
                                                   body.encode())
    error = verdict.error["error"]
    assert (error["code"], error["param"]) == ("unsupported_model", "model")
    assert "Did you mean 'gpt-5-4'?" in error["message"]


# -- the property: a suggestion never crosses families -----------------------------------------

CATALOG = Catalog.default()
FAMILY_BY_WORD: dict[str, set[str | None]] = {}
for _entry in CATALOG:
    FAMILY_BY_WORD.setdefault(family_word(_entry.id), set()).add(_entry.family)

_edit = st.sampled_from(["insert", "delete", "replace", "swap", "upper", "dot", "date",
                         "prefix", "digit"])


@st.composite
def mutated_slugs(draw: st.DrawFn) -> str:
    """A catalog id, or any family word of the catalog followed by pieces of ids, with a few
    random edits (letters, digits, case, dots, dates, ``models/``)."""
    base = draw(st.sampled_from(CATALOG.ids))
    if draw(st.booleans()):
        word = draw(st.sampled_from(sorted(FAMILY_BY_WORD)))
        tail = draw(st.sampled_from(CATALOG.ids)).split("-", 1)[-1]
        base = f"{word}-{tail}"
    text = list(base)
    for edit in draw(st.lists(_edit, max_size=3)):
        at = draw(st.integers(0, max(0, len(text) - 1)))
        letter = draw(st.sampled_from("abcdefghijklmnopqrstuvwxyz-"))
        if edit == "insert":
            text.insert(at, letter)
        elif edit == "delete" and len(text) > 1:
            del text[at]
        elif edit == "replace" and text:
            text[at] = letter
        elif edit == "swap" and at + 1 < len(text):
            text[at], text[at + 1] = text[at + 1], text[at]
        elif edit == "upper" and text:
            text[at] = text[at].upper()
        elif edit == "dot":
            text = list("".join(text).replace("-", ".", 1))
        elif edit == "date":
            text += list("-20260115")
        elif edit == "prefix":
            text = list("models/") + text
        elif edit == "digit" and text:
            text[at] = draw(st.sampled_from("0123456789"))
    return "".join(text)


@settings(max_examples=1500, deadline=None)
@given(mutated_slugs())
def test_a_suggestion_is_never_another_family(slug: str) -> None:
    if slug in CATALOG:
        return  # suggestions are for slugs the catalog lacks
    suggestion = CATALOG.suggest(slug)
    if suggestion is None:
        return
    entry = CATALOG.get(suggestion)
    assert entry is not None
    word = family_word(slug)
    if word in FAMILY_BY_WORD:  # the slug names a family of the catalog: it must stay in it
        assert entry.family in FAMILY_BY_WORD[word], (slug, suggestion)
    # and no number of the slug was changed to get there
    assert re.findall(r"\d+", loose(slug).replace("-", "")) == \
        re.findall(r"\d+", loose(suggestion).replace("-", "")), (slug, suggestion)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_gets_an_answer(slug: str) -> None:
    suggestion = CATALOG.suggest(slug)
    assert suggestion is None or suggestion in CATALOG
    label, members = CATALOG.family(slug)
    assert len(members) <= 3 and all(m in CATALOG for m in members)
