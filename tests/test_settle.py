"""Settled objects: both decoders hand back the same markers, and every reader answers as if
the objects had been built.

A settle table (``body.settle_table``) names where, in one protocol's body, an object whose kind
is all its reader needs (a plain text block, a function tool) may stay unbuilt. These tests hold
the accelerated decoder and its pure-Python twin to the same markers, errors and structure
budget on bodies written around those places, and hold the readers to the same features with
markers as with an ordinary ``json.loads`` of the same bytes.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelguard import body as body_module
from modelguard.body import (
    ACCELERATED,
    BodyError,
    Settled,
    SettledItems,
    SettleRule,
    parse_json,
    settle_table,
)
from modelguard.errors import Reason
from modelguard.policy import SETTLE
from modelguard.protocols import anthropic, gemini, openai, responses
from modelguard.routing import match_route

from .test_decoders import _reading, same_value

pytestmark = pytest.mark.skipif(not ACCELERATED, reason="the C accelerator is not built here")

_TABLES = {"anthropic": anthropic.SETTLE, "openai": openai.SETTLE,
           "responses": responses.SETTLE, "gemini": gemini.SETTLE}
_ROUTES = {"anthropic": "/v1/messages", "openai": "/v1/chat/completions",
           "responses": "/v1/responses",
           "gemini": "/v1beta/models/gemini-3-1-pro:generateContent"}


def outcome(raw: bytes, table: Any, accelerated: bool) -> tuple[str, Any]:
    try:
        return ("ok", parse_json(raw, 128, accelerated=accelerated, settle=table))
    except BodyError as error:
        return ("refused", error.reason)


def agree(raw: bytes, table: Any) -> tuple[str, Any]:
    fast, slow = outcome(raw, table, True), outcome(raw, table, False)
    assert fast[0] == slow[0], (raw[:300], fast, slow)
    if fast[0] == "ok":
        assert same_value(fast[1], slow[1]), (raw[:300], fast[1], slow[1])
    else:
        assert fast[1] == slow[1]
    return fast


def reading(protocol: str, raw: bytes, decoder: str, monkeypatch: pytest.MonkeyPatch) -> tuple:
    """What the reader makes of ``raw``: with markers from either decoder ("fast", "slow"),
    or from an ordinary json.loads with nothing settled, skipped or cut ("full")."""
    return _reading(_ROUTES[protocol], raw, decoder, monkeypatch)


def readers_agree(protocol: str, raw: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = reading(protocol, raw, "fast", monkeypatch)
    slow = reading(protocol, raw, "slow", monkeypatch)
    strict = "The body is not strict JSON"
    if fast[0] == slow[0] == "refused" and fast[1] == slow[1] and \
            fast[2].startswith(strict) and slow[2].startswith(strict):
        return  # not strict JSON: the two decoders word where it broke differently
    assert fast == slow, raw[:300]
    assert fast == reading(protocol, raw, "full", monkeypatch), raw[:300]


# -- bodies written around the settle places -----------------------------------------------------

#: Keys a settled object may have, keys that stop it settling (cache_control, a look-alike,
#: a media source), and some that are simply unknown.
_KEYS = st.sampled_from([
    "type", "text", "id", "name", "input", "thinking", "signature", "data", "content",
    "tool_use_id", "is_error", "citations", "description", "input_schema", "parameters",
    "strict", "function", "custom", "annotations", "logprobs", "thought", "thoughtSignature",
    "thought_signature", "cache_control", "Type", "TEXT", "source", "image_url",
    "prompt_cache_breakpoint", "defer_loading", "x", "inlineData", "functionCall",
    "call_id", "arguments", "output", "status", "role", "tool_calls", "tool_call_id", "parts",
])
_KINDS = st.sampled_from([
    "text", "tool_use", "tool_result", "thinking", "image", "document", "server_tool_use",
    "search_result", "mcp_tool_result", "input_text", "output_text", "input_image",
    "function", "custom", "namespace", "web_search", "Text", "tëxt", "x" * 40, "",
    "function_call", "function_call_output", "custom_tool_call", "message", "reasoning",
    "user", "assistant", "system", "developer", "tool", "User", "function", "model",
])
_LEAVES = st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=6) | _KINDS
_VALUES = st.recursive(_LEAVES, lambda kids: st.lists(kids, max_size=3)
                       | st.dictionaries(_KEYS, kids, max_size=3), max_leaves=8)


@st.composite
def _objects(draw: st.DrawFn) -> dict[str, Any]:
    obj = draw(st.dictionaries(_KEYS, _VALUES, max_size=4))
    if draw(st.booleans()):
        obj["type"] = draw(_KINDS | _LEAVES)
    if draw(st.booleans()):
        obj["text"] = draw(st.text(max_size=8) | _LEAVES)
    return obj


_BLOCKS = st.lists(_objects() | _VALUES, max_size=4)


@st.composite
def _bodies(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    protocol = draw(st.sampled_from(sorted(_TABLES)))
    blocks = draw(_BLOCKS)
    tools = draw(st.one_of(st.none(), _BLOCKS))
    nested = draw(_BLOCKS)
    if protocol == "anthropic":
        body: dict[str, Any] = {"model": "claude-sonnet-4-6", "max_tokens": 8, "messages": [
            {"role": "user", "content": blocks},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                                          "content": nested}]}, *draw(_BLOCKS)]}
        if draw(st.booleans()):
            body["system"] = draw(_BLOCKS)
    elif protocol == "openai":
        body = {"model": "gpt-5-4", "messages": [
            {"role": "user", "content": blocks},
            {"role": draw(_KINDS), "tool_call_id": "c", "content": draw(_LEAVES)},
            {"role": "assistant", "content": draw(st.none() | st.text(max_size=4)),
             "tool_calls": nested}, *draw(_BLOCKS)]}
    elif protocol == "responses":
        body = {"model": "gpt-5-4", "input": [{"role": "user", "content": blocks},
                                              {"type": "message", "role": "assistant",
                                               "content": nested}, *draw(_BLOCKS)]}
        if draw(st.booleans()):
            tools = [{"type": "namespace", "name": "n", "tools": tools or []}]
    else:
        turn: dict[str, Any] = {"parts": blocks}
        role = draw(st.sampled_from([None, "user", "model", "function", "User", 3]))
        if role is not None:
            turn["role"] = role
        if draw(st.booleans()):
            turn[draw(st.sampled_from(["x", "Parts", "role", "text"]))] = draw(_VALUES)
        system: dict[str, Any] = {"parts": nested}
        if draw(st.booleans()):
            system[draw(st.sampled_from(["role", "x", "Parts"]))] = draw(_KINDS | _LEAVES)
        body = {"contents": [turn, *draw(_BLOCKS)], "systemInstruction": system}
    if tools is not None:
        body["tools"] = tools if protocol != "gemini" else [{"functionDeclarations": tools}]
    return protocol, body


_ESCAPABLE = "typextnmcsu"


def _escaped(raw: str, rng: random.Random) -> str:
    """The same JSON with some ASCII letters written as \\u escapes (keys and values)."""
    out = []
    in_string = False
    i = 0
    while i < len(raw):
        ch = raw[i]
        if in_string and ch == "\\":  # an escape already there: copied whole
            width = 6 if raw[i + 1] == "u" else 2
            out.append(raw[i:i + width])
            i += width
            continue
        if ch == '"':
            in_string = not in_string
        elif in_string and ch in _ESCAPABLE and rng.random() < 0.3:
            ch = f"\\u{ord(ch):04x}"
        out.append(ch)
        i += 1
    return "".join(out)


@settings(max_examples=600, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(_bodies(), st.integers(0, 2**32), st.booleans())
def test_decoders_and_readers_agree_around_settle_places(
        monkeypatch: pytest.MonkeyPatch, case: tuple[str, dict[str, Any]], seed: int,
        escape: bool) -> None:
    protocol, body = case
    text = json.dumps(body)
    if escape:
        text = _escaped(text, random.Random(seed))
    raw = text.encode()
    agree(raw, _TABLES[protocol])
    readers_agree(protocol, raw, monkeypatch)


@pytest.mark.parametrize("protocol", sorted(_TABLES))
@pytest.mark.parametrize("damage", [
    b'"type":"text","type":"text"',             # a duplicate key inside a candidate
    b'"type":"text","text":"\\ud800"',           # a lone surrogate
    b'"type":"text","text":01',                 # a bad number
    b'"type":"text","text":[1,]',               # a trailing comma
    b'"type":"text","text":"a"\x00',            # a control byte
    b'"type":"t\\u0065xt","te\\u0078t":"x"',    # escapes that read as a settled block
    b'"type":"text","text":1e999',              # out of double range
    b'"type":"text","text":"a","cache_control":null',                  # a null flag
    b'"cache_control":{"type":"ephemeral"},"type":"text","text":"a"',  # a flag first
    b'"type":"tool_use","id":"u","cache_control":nul',                 # a broken null
    b'"type":"text","cache_control":{"type":"ephemeral","ttl":"1h"},"text":"a"',
])
def test_a_damaged_candidate_is_refused_or_read_alike(protocol: str, damage: bytes,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    block = b"{" + damage + b"}"
    raw = {
        "anthropic": b'{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[%s]}]}',
        "openai": b'{"model":"m","messages":[{"role":"user","content":[%s]}]}',
        "responses": b'{"model":"m","input":[{"role":"user","content":[%s]}]}',
        "gemini": b'{"contents":[{"role":"user","parts":[%s]}]}',
    }[protocol] % block
    agree(raw, _TABLES[protocol])
    readers_agree(protocol, raw, monkeypatch)


def test_settled_objects_are_markers_and_nothing_else_is() -> None:
    raw = json.dumps({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "hi"},
        {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}},
        {"type": "tool_use", "id": "a", "name": "n", "input": {"q": [1, 2]}},
        {"type": "tool_result", "tool_use_id": "a", "content": "done"},
        {"type": "tool_result", "tool_use_id": "a", "content": [{"type": "text", "text": "x"}]},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": ""}},
    ]}], "tools": [{"name": "t", "input_schema": {"type": "object"}}], "metadata": {
        "messages": [{"content": [{"type": "text", "text": "not a message"}]}]}}).encode()
    doc = parse_json(raw, 128, settle=anthropic.SETTLE)
    content = doc["messages"][0]["content"]
    kinds = [(b.kind, b.flagged) if type(b) is Settled else None for b in content]
    assert kinds == [("text", False), ("text", True), ("tool_use", False),
                     ("tool_result", False), None, None]
    assert type(content[4]["content"][0]) is Settled  # nested content settles too
    assert type(doc["tools"][0]) is Settled
    # the same shape elsewhere in the body is built: the table names places, not shapes
    assert doc["metadata"]["messages"][0]["content"][0] == {"type": "text", "text": "not a message"}
    assert parse_json(raw, 128, settle=anthropic.SETTLE, accelerated=False) == doc


@pytest.mark.parametrize("accelerated", [True, False])
def test_a_turn_of_settled_blocks_is_the_list_of_their_markers(accelerated: bool) -> None:
    turns = [
        {"role": "user", "content": [{"type": "text", "text": "a"},
                                     {"type": "tool_result", "tool_use_id": "u", "content": "x"}]},
        {"role": "assistant", "content": []},
        {"role": "user", "content": "plain"},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image"}]},
        {"role": "user", "content": 5},
        {"role": "system", "content": [{"type": "text", "text": "a"}]},
        {"content": [{"type": "text", "text": "a"}], "role": "assistant"},
    ]
    raw = json.dumps({"model": "m", "max_tokens": 1, "messages": turns}).encode()
    got = parse_json(raw, 128, settle=anthropic.SETTLE, accelerated=accelerated)["messages"]
    assert type(got[0]) is SettledItems and got[0].marker is got[2]  # the turn's own kind
    assert [(m.kind, m.flagged) for m in got[0]] == [("text", False), ("tool_result", False)]
    assert type(got[1]) is SettledItems and got[1] == []
    assert got[2] is anthropic.SETTLE[0]["messages"][1][2][2]["user"]  # the plain-turn marker
    # a block that does not settle, content that is neither a string nor an array, and a
    # role that is not a turn kind: the turn is built (its settled blocks still markers)
    assert type(got[3]) is dict and type(got[3]["content"][0]) is Settled
    assert got[4] == {"role": "user", "content": 5}
    assert type(got[5]) is dict
    assert type(got[6]) is SettledItems and len(got[6]) == 1 and got[6].marker is got[2]


@pytest.mark.parametrize("item", [
    {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "a"}]},
    {"type": "message", "role": "assistant", "content": "plain"},
    {"type": "message", "content": []},
    {"type": "function_call_output", "call_id": "c", "output": "done",
     "content": [{"type": "input_text", "text": "a"}]},
    {"type": "function_call", "call_id": "c", "name": "n", "arguments": "{}", "role": "x"},
    {"type": "message", "role": 5, "content": [{"type": "input_text", "text": "a"}]},
    {"type": "message", "role": "user", "content": [{"type": "input_image", "image_url": "u"}]},
])
def test_responses_items_settle_with_their_kind(item: dict[str, Any],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    raw = json.dumps({"model": "gpt-5-4", "input": [item, item]}).encode()
    agree(raw, responses.SETTLE)
    readers_agree("responses", raw, monkeypatch)
    got = parse_json(raw, 128, settle=responses.SETTLE)["input"][0]
    if type(item.get("content")) is list and type(item.get("role", "")) is str and all(
            part["type"] == "input_text" for part in item["content"]):
        assert type(got) is SettledItems and got.marker.kind == item["type"]


_CALL = {"id": "c", "type": "function", "function": {"name": "n", "arguments": "{}"}}


@pytest.mark.parametrize("turn", [
    {"role": "assistant", "content": "on it", "tool_calls": [_CALL, _CALL]},
    {"role": "assistant", "tool_calls": []},
    {"role": "tool", "tool_call_id": "c", "content": "done", "tool_calls": [_CALL]},
    {"role": "function", "content": "done", "tool_calls": []},
    {"role": "assistant", "content": None, "tool_calls": [_CALL]},
    {"role": "assistant", "content": "x", "tool_calls": None},
    {"role": "assistant", "content": "x", "tool_calls": [_CALL, {"type": "custom"}]},
    {"role": "Tool", "content": "x", "tool_calls": [_CALL]},
])
def test_chat_turns_settle_with_their_tool_calls(turn: dict[str, Any],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for first in (None, {"role": "tool", "tool_call_id": "c", "content": "r"}):
        messages = [turn, turn] if first is None else [first, turn]
        raw = json.dumps({"model": "gpt-5-4", "messages": messages}).encode()
        agree(raw, openai.SETTLE)
        readers_agree("openai", raw, monkeypatch)  # the first path of each need included
    got = parse_json(raw, 128, settle=openai.SETTLE)["messages"][1]
    if type(turn.get("tool_calls")) is list and turn["role"] in ("assistant", "tool",
                                                                  "function") and (
            turn.get("content") is None) == ("content" not in turn) and all(
            call is _CALL for call in turn["tool_calls"]):
        assert type(got) is SettledItems and got.marker.kind in ("message", turn["role"])


def test_a_nested_key_needs_its_element_rule() -> None:
    with pytest.raises(ValueError):
        settle_table({("m", "*"): SettleRule({"user": Settled("m")}, frozenset({"role", "c"}),
                                             type_key="role", nested="c")})
    with pytest.raises(ValueError):  # the nested key must be one of the rule's keys
        settle_table({("m", "*"): SettleRule({"user": Settled("m")}, frozenset({"role"}),
                                             type_key="role", nested="c"),
                      ("m", "*", "c", "*"): SettleRule({"t": Settled("t")},
                                                       frozenset({"type"}))})


def test_every_route_kind_with_a_json_reader_has_its_table() -> None:
    for kind in ("generateContent", "streamGenerateContent", "countTokens", "messages",
                 "count_tokens", "chat", "responses"):
        assert any(key == kind for key in SETTLE), kind


def test_a_settled_object_costs_one_value_in_both_decoders() -> None:
    block = b'{"type":"text","text":"' + b"x" * 40 + b'"}'
    values = body_module.BUDGET_FLOOR // body_module.VALUE_COST

    def body(count: int) -> bytes:
        return (b'{"model":"m","max_tokens":1,"messages":[{"role":"user","content":['
                + b",".join([block] * count) + b"]}]}")

    # each settled block is one value (its marker); built, it would be three
    raw = body(values - 20)
    assert agree(raw, anthropic.SETTLE)[0] == "ok"
    assert outcome(raw, None, True) == outcome(raw, None, False) == ("refused",
                                                                       Reason.TOO_LARGE)
    assert agree(body(values + 5), anthropic.SETTLE) == ("refused", Reason.TOO_LARGE)


def test_settle_tables_refuse_bad_rules() -> None:
    with pytest.raises(ValueError):
        settle_table({(): SettleRule({None: Settled(None)}, frozenset({"a"}))})
    with pytest.raises(ValueError):
        settle_table({("x",): SettleRule({None: Settled(None)}, frozenset({"k" * 65}))})
    with pytest.raises(ValueError):  # kind names are compared byte for byte: ASCII only
        settle_table({("x",): SettleRule({"t\u00e9xt": Settled("text")}, frozenset({"type"}))})
    with pytest.raises(ValueError):  # the keys an object had are one 64-bit mask
        settle_table({("x",): SettleRule({None: Settled(None)},
                                         frozenset(f"k{i}" for i in range(65)))})
    with pytest.raises(TypeError):
        parse_json(b"{}", 8, settle=({}, None, ("type",)))  # type: ignore[arg-type]


_FIXTURES = Path(__file__).parent / "fixtures"
_RECORDS = sorted((_FIXTURES / "sdk").glob("*.json")) + sorted(
    (_FIXTURES / "agents").glob("*.json"))


@pytest.mark.parametrize("path", _RECORDS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_captured_bodies_decode_alike_with_their_table(path: Path) -> None:
    record = json.loads(path.read_text())
    route = match_route(record["path"])
    body = record["body"]
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    if route is None or route.kind not in SETTLE:
        pytest.skip("no JSON reader with a settle table on this route")
    agree(raw, SETTLE[route.kind])


@pytest.mark.parametrize("protocol", ["anthropic", "openai"])
@pytest.mark.parametrize("message", [
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": ""},
    {"role": "user"},
    {"role": "user", "content": None},
    {"role": "user", "content": 3},
    {"role": "tool", "content": "out", "tool_call_id": "c"},
    {"role": "system", "content": "be brief", "name": "x"},
    {"role": "User", "content": "hi"},
    {"role": "user", "content": "hi", "cache_control": {"type": "ephemeral"}},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
    {"role": "assistant", "content": "x", "tool_calls": []},
    {"role": "assistant", "tool_calls": [{"id": "c", "type": "custom", "custom": {}}]},
])
def test_whole_turns_settle_only_when_their_reading_needs_nothing(
        protocol: str, message: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    body = {"model": "m", "messages": [message, message]}
    if protocol == "anthropic":
        body["max_tokens"] = 1
    raw = json.dumps(body).encode()
    agree(raw, _TABLES[protocol])
    readers_agree(protocol, raw, monkeypatch)
