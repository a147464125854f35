"""The accelerated decoder and the pure-Python one accept and refuse exactly the same bodies."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from modelguard import body as body_module
from modelguard.body import ACCELERATED, DROPPED, KEEP_BYTES, BodyError, LongString, parse_json

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
        return len(fast) == len(slow) and all(map(same_value, fast, slow))
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
_keys = st.sampled_from(["text", "url", "data", "type", "model", "content", "k", "é", "\u212a"])
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
