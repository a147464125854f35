"""The accelerated decoder and the pure-Python one accept and refuse exactly the same bodies.

Same answer (the same reason when they refuse), same value when they accept (a LongString
standing for a long string by its head), same placeholders for skipped subtrees, same
structure budget, and the same verdicts from the protocol readers as a full, ordinary parse.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from modelguard import body as body_module
from modelguard import policy
from modelguard.body import (
    ACCELERATED,
    BUDGET_FLOOR,
    DECODER_MAX_DEPTH,
    DROPPED,
    KEEP_BYTES,
    SKIPPED_KEYS,
    VALUE_COST,
    BodyError,
    LongString,
    SkippedArray,
    SkippedObject,
    parse_json,
)
from modelguard.errors import Reason
from modelguard.policy import Options, read_features
from modelguard.routing import match_route

pytestmark = pytest.mark.skipif(not ACCELERATED, reason="the C accelerator is not built here")


def outcome(raw: bytes, depth: int = 128, accelerated: bool = True):
    try:
        return ("ok", parse_json(raw, depth, accelerated=accelerated))
    except BodyError as error:
        return ("refused", error.reason)


def same_value(fast, slow) -> bool:
    """Equal, except that a LongString stands for a long string by its head (or nothing)."""
    if isinstance(fast, LongString):
        return isinstance(slow, str) and len(slow.encode("utf-8", "surrogatepass")) > KEEP_BYTES \
            and (fast is DROPPED or slow.startswith(fast))
    if type(fast) is not type(slow):
        return False
    if isinstance(fast, dict):
        return fast.keys() == slow.keys() and all(same_value(fast[k], slow[k]) for k in fast)
    if isinstance(fast, list):
        return len(fast) == len(slow) and all(map(same_value, fast, slow)) and \
            getattr(fast, "marker", None) is getattr(slow, "marker", None)
    return fast == slow or (fast != fast and slow != slow)


def agree(raw: bytes, depth: int = 128) -> None:
    fast, slow = outcome(raw, depth, True), outcome(raw, depth, False)
    assert fast[0] == slow[0], (raw[:200], fast, slow)
    if fast[0] == "ok":
        assert same_value(fast[1], slow[1]), raw[:200]
    else:
        assert fast[1] == slow[1]


_scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False,
            allow_infinity=False) | st.text())
_keys = st.sampled_from(["text", "url", "data", "type", "model", "content", "k", "é", "\u212a",
                         "parameters", "input_schema", "properties", "args", "schema"])
_values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_keys | st.text(max_size=5),
                                                                       children, max_size=4),
    max_leaves=25,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_values, st.booleans())
def test_agree_on_valid_json(value, ascii_only) -> None:
    agree(json.dumps(value, ensure_ascii=ascii_only).encode())


@settings(max_examples=300)
@given(st.binary(max_size=64))
def test_agree_on_random_bytes(raw: bytes) -> None:
    agree(raw)


_fragments = st.sampled_from([
    b"{", b"}", b"[", b"]", b",", b":", b'"a"', b'"text"', b'"\\u00e9"', b'"\\ud83d\\ude00"',
    b'"\\ud800"', b'"\\udc00"', b'"\xc3\xa9"', b'"\xed\xa0\x80"', b'"\xc0\xaf"',
    b'"\xf4\x90\x80\x80"',
    b"1", b"-0", b"1.5", b"1e400", b"-1e400", b"1e-400", b"1E+2", b"9" * 320, b"01", b"1.",
    b".5", b"NaN", b"Infinity", b"true", b"false", b"null", b" ", b"\t", b"\n", b'"\x01"',
    b'"\\/"', b'"\\x"', b"\xef\xbb\xbf", b'"' + b"x" * 600 + b'"', b'"\\"', b"tru",
])


@settings(max_examples=500)
@given(st.lists(_fragments, max_size=12))
def test_agree_on_token_soup(parts: list[bytes]) -> None:
    agree(b"".join(parts))


@example(depth=128, extra=0)
@example(depth=128, extra=1)
@given(st.integers(1, 200), st.integers(-2, 2))
def test_agree_on_depth(depth: int, extra: int) -> None:
    levels = max(1, depth + extra)
    agree(b"[" * levels + b"]" * levels, depth)
    agree(b'{"a":' * levels + b"1" + b"}" * levels, depth)


@pytest.mark.parametrize("raw", [
    b'{"url":"data:' + b" " * 600 + b'video/mp4;base64,AAAA' + b"A" * 600 + b'"}',
    b'{"url":"https://x.test/' + b"a" * 900 + b'"}',
    b'{"a":1,"a":2}', b'{"a":1,"\\u0061":2}', b'[{"x":{"y":1,"y":1}}]',
    b'{"text":"' + b"y" * 5000 + b'"}',
    b'{"url":"data:video/mp4;base64,' + b"A" * 5000 + b'"}',
    b'{"text":"' + b"\\u00e9" * 400 + b'"}',
    b'{"url":"' + "é".encode() * 600 + b'"}', b"[1e308, 1.7976931348623157e308, 2e308]",
    b"[" + b"1" * 308 + b"]", b"[" + b"1" * 310 + b"]", b"[-" + b"9" * 309 + b"]",
    b'{"a":' + b"1" * 4400 + b"}",
])
def test_agree_on_edges(raw: bytes) -> None:
    agree(raw)


def test_long_strings_are_not_kept_whole() -> None:
    raw = json.dumps({"text": "x" * 10_000, "url": "data:image/png;base64," + "A" * 10_000,
                      "model": "m" * 10_000}).encode()
    value = parse_json(raw, 128)
    assert value["text"] is DROPPED
    assert isinstance(value["url"], LongString) and value["url"] == "data:image/png;base64,"
    assert value["model"] == "m" * 10_000  # not a bulky key: kept whole


def test_fallback_is_used_without_the_accelerator(monkeypatch) -> None:
    monkeypatch.setattr(body_module, "_accelerated_loads", None)
    value = parse_json(json.dumps({"text": "x" * 10_000}).encode(), 128)
    assert value["text"] == "x" * 10_000


# -- the two disagreements found by differential fuzzing, and the depth cap ---------------------


@pytest.mark.parametrize("raw", [
    # An integer part over 4300 digits was accepted by the C decoder when an exponent brought
    # the value back into range, and refused by jiter (Python's int() digit limit).
    b"1" * 4301 + b"e-4301", b"1" * 4400 + b".5e-4400", b"-" + b"1" * 4301 + b"e-4400",
    b"[" + b"9" * 5000 + b"E-5000]", b'{"parameters":{"n":' + b"1" * 4301 + b"e-4301}}",
    # ... and at the limit both accept it.
    b"1" * 4300 + b"e-4300", b"-" + b"1" * 4300 + b".25e-4300", b"1" * 309, b"-" + b"1" * 309,
    b"1" * 310, b"17976931348623157" + b"0" * 292, b"17976931348623159" + b"0" * 292,
])
def test_agree_on_long_numbers(raw: bytes) -> None:
    agree(raw)


def test_integer_parts_over_4300_digits_are_refused() -> None:
    for accelerated in (True, False):
        with pytest.raises(BodyError) as info:
            parse_json(b"1" * 4301 + b"e-4301", 128, accelerated=accelerated)
        assert info.value.reason == Reason.INVALID
        assert parse_json(b"1" * 4300 + b"e-4300", 128, accelerated=accelerated) > 0.1


@pytest.mark.parametrize("asked", [200, 201, 300, 10_000])
def test_depth_is_capped_at_200_whatever_the_caller_asks(asked: int) -> None:
    # The second disagreement: a caller's max_depth over 200 was honoured by the C decoder
    # (deeper nesting accepted) and not by jiter's own recursion limit.
    for levels in (200, 201, 250):
        for raw in (b"[" * levels + b"]" * levels, b'{"a":' * levels + b"1" + b"}" * levels,
                    b'{"parameters":' * (levels - 1) + b"[1]" + b"}" * (levels - 1)):
            fast, slow = outcome(raw, asked, True), outcome(raw, asked, False)
            assert fast[0] == slow[0] == ("ok" if levels <= DECODER_MAX_DEPTH else "refused")
            if fast[0] == "refused":
                assert fast[1] == slow[1] == Reason.INVALID


# -- skipped subtrees -------------------------------------------------------------------------


def test_schemas_are_validated_but_not_built() -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    raw = json.dumps({"tools": [{"name": "t", "input_schema": schema}],
                      "calls": [{"parameters": schema, "args": [1, 2]}],
                      "functionDeclarations": [{"name": "f", "parameters": schema}],
                      "empty": {"parameters": {}, "args": []},
                      "scalar": {"parameters": 3}}).encode()
    for accelerated in (True, False):
        value = parse_json(raw, 128, accelerated=accelerated)
        placeholder = value["tools"][0]["input_schema"]
        assert type(placeholder) is SkippedObject and not placeholder.keys() and placeholder
        declaration = value["calls"][0]
        assert type(declaration["parameters"]) is SkippedObject
        assert type(declaration["args"]) is SkippedArray and declaration["args"]
        # Gemini declarations are only counted (present or not): the whole array is skipped
        assert type(value["functionDeclarations"]) is SkippedArray
        # empty containers and scalars are cheap: handed back as they are
        assert value["empty"] == {"parameters": {}, "args": []}
        assert type(value["empty"]["parameters"]) is dict
        assert value["scalar"] == {"parameters": 3}


@pytest.mark.parametrize("inner", [
    b'{"a":1,"a":2}', b'{"a":1,"\\u0061":2}', b'{"k":[1e400]}', b'{"k":' + b"9" * 310 + b"}",
    b'{"k":"\\ud800"}', b'{"k":"\\x"}', b'{"k":"\xc0\xaf"}', b'{"k":"\xed\xa0\x80"}',
    b'[1,]', b'{"k":01}', b'{"k":NaN}', b'{"a":{"b":1,"b":1}}', b'{"k":"\x01"}',
    b"{" + b",".join(b'"k%d":%d' % (i, i) for i in range(300)) + b',"k123":0}',
    b"{" + b",".join(b'"k%d":%d' % (i, i) for i in range(300)) + b"}",
    b'{"' + "é".encode() * 40 + b'":1,"' + "é".encode() * 40 + b'":2}',
    b'{"' + "é".encode() * 40 + b'":1,"' + b"\\u00e9" * 40 + b'":2}',
    b'{"\\u00e9":1,"\xc3\xa9":2}', b'{"a\\/b":1,"a/b":2}', b'[[[[[[[[[[' + b"]" * 10,
])
def test_skipped_subtrees_are_read_as_strictly(inner: bytes) -> None:
    for key in (b"parameters", b"input_schema", b"properties", b"args"):
        agree(b'{"tools":[{"' + key + b'":' + inner + b"}]}")


# -- the structure budget ---------------------------------------------------------------------


def _dense(count: int, item: bytes = b"{}") -> bytes:
    return b"[" + b",".join([item] * count) + b"]"


def test_budget_boundary_is_the_same_in_both_decoders() -> None:
    fits = BUDGET_FLOOR // VALUE_COST - 1  # the array itself is a value too
    for count, answer in ((fits, "ok"), (fits + 1, "refused")):
        raw = _dense(count)
        fast, slow = outcome(raw, 128, True), outcome(raw, 128, False)
        assert fast[0] == slow[0] == answer
        if answer == "refused":
            assert fast[1] == slow[1] == Reason.TOO_LARGE


def test_the_budget_names_the_structure_limit() -> None:
    with pytest.raises(BodyError) as info:
        parse_json(_dense(BUDGET_FLOOR // VALUE_COST), 128)
    assert info.value.reason == Reason.TOO_LARGE
    assert "structure limit" in info.value.message


def test_wide_strings_count_their_width() -> None:
    # U+1F600 needs 4 bytes per character in memory: 3 more than the UTF-8-ish one byte.
    room = (BUDGET_FLOOR - 2 * VALUE_COST) // 3
    for chars, answer in ((room, "ok"), (room + 1, "refused")):
        raw = json.dumps({"x": "\U0001F600" * chars}, ensure_ascii=False).encode()
        fast, slow = outcome(raw, 128, True), outcome(raw, 128, False)
        assert fast[0] == slow[0] == answer, chars
    # The same text under a bulky key is dropped, so it costs nothing.
    raw = json.dumps({"text": "\U0001F600" * (room + 1)}, ensure_ascii=False).encode()
    assert parse_json(raw, 128)["text"] is DROPPED


@pytest.mark.parametrize("tail", [b", 01]", b', {"a":1,"a":2}]', b", [1e999]]", b", ]",
                                  b', "\\ud800"]', b"]   x"])
def test_an_invalid_body_is_invalid_whatever_its_size(tail: bytes) -> None:
    raw = _dense(BUDGET_FLOOR // VALUE_COST + 10)[:-1] + tail
    fast, slow = outcome(raw, 128, True), outcome(raw, 128, False)
    assert fast == slow == ("refused", Reason.INVALID)


def test_an_over_budget_object_still_refuses_duplicates() -> None:
    items = b",".join(b'"k%d":{}' % i for i in range(BUDGET_FLOOR // VALUE_COST + 10))
    for dup in (b',"k3":1', b',"k%d":1' % (BUDGET_FLOOR // VALUE_COST + 5)):
        raw = b"{" + items + dup + b"}"
        assert outcome(raw, 128, True) == outcome(raw, 128, False) == ("refused", Reason.INVALID)
    raw = b"{" + items + b"}"
    assert outcome(raw, 128, True) == outcome(raw, 128, False) == ("refused", Reason.TOO_LARGE)


_small_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 300) | st.text(max_size=3)
    | st.sampled_from(["\u00e9", "\u20ac", "\U0001F600" * 3]),
    lambda children: st.lists(children, max_size=6)
    | st.dictionaries(_keys | st.text(max_size=3), children, max_size=5),
    max_leaves=60,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_small_values, st.integers(0, 3000))
def test_agree_on_the_budget_boundary(value: Any, floor: int) -> None:
    """With a tiny budget, every value lands near the boundary: both decoders count alike."""
    raw = json.dumps(value, ensure_ascii=False).encode()
    original = body_module.BUDGET_FLOOR
    body_module.BUDGET_FLOOR = floor
    try:
        agree(raw)
    finally:
        body_module.BUDGET_FLOOR = original


# -- verdicts: the readers never look inside what is skipped ------------------------------------


FIXTURES = Path(__file__).parent / "fixtures"
_REQUESTS = sorted((FIXTURES / "sdk").glob("*.json")) + sorted(
    (FIXTURES / "agents").glob("*.json"))


def _reading(route_path: str, raw: bytes, decoder: str, monkeypatch) -> tuple:
    """What the readers make of ``raw`` with one decoder: "fast", "slow" (the twin) or "full"
    (an ordinary json.loads, nothing skipped, nothing cut)."""
    with monkeypatch.context() as patch:
        if decoder == "slow":
            patch.setattr(body_module, "_accelerated_loads", None)
        elif decoder == "full":
            patch.setattr(policy, "parse_json", lambda body, depth, *_, **__: json.loads(body))
        try:
            features = read_features(match_route(route_path), raw, [], Options())
        except BodyError as error:
            return ("refused", error.reason, error.message, error.path)
    return ("ok", features.models, features.needs, features.unknown)


def _request(path: Path) -> tuple[str, bytes]:
    record = json.loads(path.read_text())
    body = record["body"]
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return record["path"], raw


@pytest.mark.parametrize("path", _REQUESTS, ids=[p.stem for p in _REQUESTS])
def test_same_verdict_on_every_recorded_request(path: Path, monkeypatch) -> None:
    route_path, raw = _request(path)
    agree(raw)
    if match_route(route_path) is None:
        return  # a route this version does not guard: the decoders agreeing is what counts
    fast = _reading(route_path, raw, "fast", monkeypatch)
    assert fast == _reading(route_path, raw, "slow", monkeypatch)
    assert fast == _reading(route_path, raw, "full", monkeypatch)


_schemas = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["type", "properties", "items", "model", "stream", "tools",
                                       "messages", "contents", "parts", "image_url", "url",
                                       "cache_control", "thinking", "k"]), children, max_size=4),
    max_leaves=20,
)
_BODIES = {
    "/v1/messages": lambda s, k: {"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "tools": [{"name": "t", k: s}], "output_format": {"type": "json_schema", k: s}},
    "/v1/chat/completions": lambda s, k: {"model": "m", "messages": [
        {"role": "user", "content": "hi"}], "tools": [
        {"type": "function", "function": {"name": "t", k: s}}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", k: s}}},
    "/v1beta/models/m:generateContent": lambda s, k: {
        "contents": [{"role": "user", "parts": [{"text": "hi"}, {"functionCall": {
            "name": "t", k: s}}]}], "tools": [{"functionDeclarations": [{"name": "t", k: s}]}],
        "generationConfig": {k: s}},
}


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow,
                                                    HealthCheck.function_scoped_fixture])
@given(st.sampled_from(sorted(_BODIES)), _schemas, st.sampled_from(sorted(SKIPPED_KEYS)))
def test_same_verdict_with_any_schema(monkeypatch, route_path: str, schema: Any,
                                      key: str) -> None:
    raw = json.dumps(_BODIES[route_path](schema, key)).encode()
    fast = _reading(route_path, raw, "fast", monkeypatch)
    assert fast == _reading(route_path, raw, "slow", monkeypatch)
    assert fast == _reading(route_path, raw, "full", monkeypatch)


@pytest.mark.parametrize("raw", [
    b'{"' + b"k" * 5000 + b'":1,"' + b"k" * 5000 + b'":2}',
    b'{"parameters":{"' + b"k" * 5000 + b'":1,"' + b"k" * 5000 + b'":2}}',
    b'{"a":[' + b"{}," * 200_000 + b'{}],"' + b"k" * 5000 + b'":1,"' + b"k" * 5000 + b'":2}',
])
def test_echoed_keys_are_cut_to_64_characters(raw: bytes) -> None:
    for accelerated in (True, False):
        with pytest.raises(BodyError) as info:
            parse_json(raw, 128, accelerated=accelerated)
        assert info.value.reason == Reason.INVALID
        assert "k" * 64 + "'..." in info.value.message
        assert "k" * 65 not in info.value.message
