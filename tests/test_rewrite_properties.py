"""Property: a rewrite changes the stripped and clamped fields and nothing else.

Arbitrary JSON (any strings, big integers, floats, nesting, keys named like the features
inside user data) is placed around the features a strip removes; whatever the content, the
rewritten body equals the original less exactly those fields, member order included, and
number literals keep their text.
"""

from __future__ import annotations

import copy
import json
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelguard import Guard

from .conftest import catalog_of, model_entry

CATALOG = catalog_of(model_entry("m", {"tool_use"}, max_output_tokens=512))
GUARD = Guard(CATALOG, actions="compat")

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
_keys = st.one_of(_text, st.sampled_from(["cache_control", "thinking", "max_tokens", "type"]))
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(10**30), 10**30),
                     st.floats(allow_nan=False, allow_infinity=False), _text)
_json = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=4)), max_leaves=20)
#: Number literals as people and SDKs write them (the exact path keeps their text).
_literals = st.from_regex(r"\A-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,12})?([eE][+-]?[0-9]{1,2})?\Z")


def _body(extra: object, input_data: object, literal: str, budget: int) -> tuple[str, dict]:
    doc = {
        "model": "m", "max_tokens": 4096, "extra": extra,
        "thinking": {"type": "enabled", "budget_tokens": budget},
        "system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}],
        "tools": [{"name": "f", "input_schema": {"type": "object", "properties": {
            "cache_control": {"type": "string"}}}, "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "t", "signature": "s"},
                {"type": "tool_use", "id": "a", "name": "f", "input": input_data}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a",
                                          "content": [{"type": "text", "text": "r",
                                                       "cache_control": {"type": "ephemeral"}}]}]},
        ],
        "metadata": {"user_id": "u", "n": 0},
    }
    raw = json.dumps(doc).replace('"n": 0', f'"n": {literal}')
    return raw, json.loads(raw)


def _expected(doc: dict, limit: int) -> dict:
    want = copy.deepcopy(doc)
    del want["thinking"], want["system"][0]["cache_control"], want["tools"][0]["cache_control"]
    del want["messages"][2]["content"][0]["content"][0]["cache_control"]
    want["max_tokens"] = limit
    return want


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(extra=_json, input_data=_json, literal=_literals, budget=st.integers(1024, 4095))
async def test_only_the_resolved_fields_change(extra, input_data, literal, budget) -> None:
    if not json.loads(literal, parse_float=float) or abs(float(literal)) >= 1e308:
        literal = "0"  # stay within double range (the strict reading refuses the rest)
    raw, doc = _body(extra, input_data, literal, budget)
    verdict = await GUARD.check("POST", "/v1/messages", {}, raw.encode())
    assert verdict.allowed, verdict.body
    # thinking is not a capability of "m": it is stripped, so no budget is fitted
    assert verdict.adjustments == ("cache_control=stripped", "thinking=stripped",
                                   "max_tokens=512")
    sent = verdict.rewritten_body.decode("ascii")
    want = _expected(doc, 512)
    as_pairs = lambda text: json.loads(text, object_pairs_hook=list,  # noqa: E731
                                       parse_float=Decimal, parse_int=Decimal)
    assert as_pairs(sent) == as_pairs(json.dumps(want, default=str)) or \
        json.loads(sent) == want
    assert f'"n":{literal}' in sent  # the literal, character for character
    assert json.loads(sent)["messages"][1] == doc["messages"][1]  # history and tool input


@settings(max_examples=200, deadline=None)
@given(max_tokens=st.integers(513, 10**6), share=st.integers(1, 1000))
async def test_a_budget_always_fits_the_clamped_cap(max_tokens: int, share: int) -> None:
    budget = max(1024, max_tokens * share // 1000 - 1)
    if budget >= max_tokens:
        return
    catalog = catalog_of(model_entry("m", {"thinking"}, max_output_tokens=2048))
    body = json.dumps({"model": "m", "max_tokens": max_tokens, "messages": [
        {"role": "user", "content": "x"}], "thinking": {"type": "enabled",
                                                       "budget_tokens": budget}}).encode()
    verdict = await Guard(catalog, actions={"max_tokens": "clamp"}).check(
        "POST", "/v1/messages", {}, body)
    if max_tokens <= 2048:
        assert verdict.allowed and verdict.rewritten_body is None
        return
    sent = json.loads(verdict.rewritten_body)
    assert sent["max_tokens"] == 2048
    assert 1024 <= sent["thinking"]["budget_tokens"] < 2048
    assert sent["thinking"]["budget_tokens"] <= budget
