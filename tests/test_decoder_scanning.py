"""The accelerator's fast paths give the pure-Python decoder's answers.

The C decoder passes the strings it only validates or measures (inside skipped subtrees, under
drop keys) a 16-byte block at a time, taking escapes and multi-byte characters from the block's
one load; it compares the keys of a skipped object directly up to 8 of them (then by hash), and
points at unescaped keys in the input; it remembers each cached key's mode and caches short
values. Each test here aims at one of those paths, at the places it could slip: block
boundaries, the end of the input, the 8th and 9th key, keys alike but for their last byte.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelguard.body import (
    ACCELERATED,
    DROPPED,
    KEEP_BYTES,
    LongString,
    SkippedObject,
    parse_json,
)
from modelguard.errors import Reason
from tests.test_decoders import agree, outcome

pytestmark = pytest.mark.skipif(not ACCELERATED, reason="the C accelerator is not built here")

_SETTINGS = settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])

#: Pieces of string content: valid ones (plain, every escape, UTF-8 of every width, surrogate
#: pairs) and invalid ones (a lone backslash, bad escapes, control bytes, broken UTF-8).
_VALID = [b"\\n", b"\\\"", b"\\\\", b"\\/", b"\\b", b"\\f", b"\\r", b"\\t", b"\\u0041",
          b"\\u00e9", b"\\uffff", b"\\ud83d\\ude00", "é".encode(), "日".encode(),
          "\U0001F600".encode(), b"\x7f"]
_INVALID = [b"\\", b"\\x", b"\\u12", b"\\ud800", b"\\udc00x", b"\x01", b"\x1f", b"\xc3",
            b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xff", b"\xe6\x97", b'"']
_plain = st.integers(0, 40).map(lambda n: b"x" * n)
_valid_content = st.lists(_plain | st.sampled_from(_VALID), max_size=40).map(b"".join)
_any_content = st.lists(_plain | st.sampled_from(_VALID + _INVALID), max_size=40).map(b"".join)
#: Shifts a string's start through every offset of a 16-byte block.
_shift = st.integers(0, 47).map(lambda n: b" " * n)


def _placed(content: bytes, where: str, shift: bytes) -> bytes:
    return {
        "dropped": b'{"model":"m",' + shift + b'"text":"' + content + b'"}',
        "skipped": b'{"parameters":[' + shift + b'"' + content + b'",1]}',
        "skipped-key": b'{"parameters":{' + shift + b'"' + content + b'":1,"z":2}}',
        "built": b'{"model":' + shift + b'"' + content + b'"}',
        "key": b'{' + shift + b'"' + content + b'":1}',
        # the string runs to the end of the input: the last bytes are read one by one
        "tail": b'{"parameters":[' + shift + b'"' + content,
    }[where]


_WHERE = st.sampled_from(["dropped", "skipped", "skipped-key", "built", "key", "tail"])


@_SETTINGS
@given(_valid_content, _WHERE, _shift)
def test_valid_strings_agree_wherever_they_are(content: bytes, where: str, shift: bytes) -> None:
    agree(_placed(content, where, shift))


@_SETTINGS
@given(_any_content, _WHERE, _shift)
def test_any_string_is_refused_alike(content: bytes, where: str, shift: bytes) -> None:
    agree(_placed(content, where, shift))


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_VALID + _INVALID), st.integers(0, 40), st.integers(0, 3))
def test_every_piece_at_every_offset_of_a_block(piece: bytes, offset: int, repeat: int) -> None:
    """One escape or character straddling each position of a 16-byte block, in every place."""
    content = b"y" * offset + piece * (repeat + 1) + b"z" * (31 - offset % 16)
    for where in ("dropped", "skipped", "skipped-key", "built", "tail"):
        agree(_placed(content, where, b""))


@pytest.mark.parametrize("size", [KEEP_BYTES - 2, KEEP_BYTES - 1, KEEP_BYTES, KEEP_BYTES + 1])
@pytest.mark.parametrize("piece", [b"\\n", "é".encode(), b"\\u00e9", b"\\ud83d\\ude00"])
def test_measured_length_decides_drop_at_the_keep_size(size: int, piece: bytes) -> None:
    """A dropped string is cut by its unescaped length: each escape counts what it stands for."""
    unit = len(json.loads(b'"' + piece + b'"').encode())
    count = max(1, size // (unit + 1))
    content = piece * count + b"x" * max(0, size - count * unit)
    raw = b'{"text":"' + content + b'"}'
    agree(raw)
    value = parse_json(raw, 128)["text"]
    length = len(json.loads(raw)["text"].encode())
    assert (value is DROPPED) == (length > KEEP_BYTES)


@pytest.mark.parametrize("head", [b"", b"d", b"data:a/b;base64", b"data:ab/cd;base64",
                                  b"data:image/png;base64", b"\\u0064ata:x;base64"])
@pytest.mark.parametrize("key", [b"url", b"file_data"])
def test_a_short_head_is_still_a_long_string(head: bytes, key: bytes) -> None:
    """A long value under a prefix key is cut at its first comma however short the head is,
    and handed back as a LongString (never as a plain cached string)."""
    raw = b'{"' + key + b'":"' + head + b"," + b"A" * (KEEP_BYTES + 10) + b'"}'
    agree(raw)
    value = parse_json(raw, 128)[key.decode()]
    assert type(value) is LongString and value == json.loads(b'"' + head + b'"') + ","


# -- the keys of skipped objects ----------------------------------------------------------------

_key_text = st.text(alphabet="ab\u00e9\"\\\n", max_size=20)


@_SETTINGS
@given(st.lists(_key_text, min_size=1, max_size=40), st.data())
def test_skipped_objects_refuse_duplicates_alike(keys: list[str], data) -> None:
    """Unique keys, or one repeated (maybe escaped differently): both decoders agree."""
    if data.draw(st.booleans()):
        keys.insert(data.draw(st.integers(0, len(keys))), data.draw(st.sampled_from(keys)))
    members = []
    for i, key in enumerate(keys):
        escaped = json.dumps(key, ensure_ascii=data.draw(st.booleans()))
        members.append(f"{escaped}:{i}")
    raw = ('{"input_schema":{' + ",".join(members) + "}}").encode()
    agree(raw)
    expected = "ok" if len(set(keys)) == len(keys) else "refused"
    assert outcome(raw)[0] == outcome(raw, accelerated=False)[0] == expected


@pytest.mark.parametrize("count", [7, 8, 9, 10, 16, 17, 40])
@pytest.mark.parametrize("at", ["first", "last"])
def test_keys_alike_but_for_one_byte(count: int, at: str) -> None:
    """Keys of equal length that differ in their first or last byte only, around the 8 compared
    directly; then a true duplicate of each in turn."""
    stems = [f"{'p' * 12}{i:02d}" if at == "last" else f"{i:02d}{'p' * 12}" for i in range(count)]
    unique = "{" + ",".join(f'"{k}":{i}' for i, k in enumerate(stems)) + "}"
    raw = ('{"properties":' + unique + "}").encode()
    assert outcome(raw) == outcome(raw, accelerated=False) and outcome(raw)[0] == "ok"
    assert type(parse_json(raw, 128)["properties"]) is SkippedObject
    for dup in stems:
        raw = ('{"properties":' + unique[:-1] + f',"{dup}":0' + "}}").encode()
        assert outcome(raw) == outcome(raw, accelerated=False) == ("refused", Reason.INVALID)


@pytest.mark.parametrize("dup", [b'"a\\u0062"', b'"\\u0061b"', b'"a\\/b"', b'"ab"'])
def test_an_escaped_key_meets_its_plain_twin(dup: bytes) -> None:
    """An escaped key is unescaped into scratch space; its plain twin points into the input."""
    for first in (b'"ab"', dup):
        for filler in (0, 7, 20):
            others = b"".join(b'"k%d":0,' % i for i in range(filler))
            raw = b'{"args":{' + first + b":1," + others + dup + b":2}}"
            twin = json.loads(first) == json.loads(dup)
            expected = "refused" if twin else "ok"
            assert outcome(raw)[0] == outcome(raw, accelerated=False)[0] == expected


# -- cached keys and values -----------------------------------------------------------------------


def test_a_key_keeps_its_mode_wherever_it_is_cached() -> None:
    """The same key read many times, as key and as value, keeps what its mode gives it."""
    long_text = "t" * (KEEP_BYTES + 1)
    body = {"text": "text", "messages": [{"text": long_text, "role": "text"},
                                         {"parameters": {"text": 1}, "text": "text"}] * 30,
            "args": ["text"], "parameters": ["x"], "x": {"parameters": "text"}}
    raw = json.dumps(body).encode()
    agree(raw)
    value = parse_json(raw, 128)
    assert value["text"] == "text" and value["messages"][0]["text"] is DROPPED
    assert value["messages"][59]["text"] == "text" and value["x"] == {"parameters": "text"}
    assert type(value["messages"][1]["parameters"]) is SkippedObject


@_SETTINGS
@given(st.lists(st.text(alphabet="abcdefghijklmnopqrst", min_size=0, max_size=24),
                min_size=1, max_size=60))
def test_short_values_and_keys_read_back_exactly(words: list[str]) -> None:
    """Short strings share cache slots (alike in length and end bytes): each reads back as
    itself, as a value and as a key."""
    raw = json.dumps({"v": words, "o": [{w: w} for w in words]}).encode()
    agree(raw)
    value = parse_json(raw, 128)
    assert value["v"] == words and [next(iter(o)) for o in value["o"]] == words
