"""Strict body reading (decisions.md §8) on its own, without HTTP."""

from __future__ import annotations

import contextlib
import gzip
import json
import random
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelguard import body as body_module
from modelguard.body import (
    MAX_EXPANSION,
    BodyError,
    decode_content,
    parse_json,
    unreadable_encoding,
)
from modelguard.errors import Reason


@pytest.mark.parametrize("raw", [
    b"", b"\xef\xbb\xbf{}", '{"a":1}'.encode("utf-16"), b'{"a":"\xff"}', b'{"a":"\xc0\xaf"}',
    b'{"a":"\xed\xa0\x80"}', b'{"a":"\\ud800"}', b'{"a":NaN}', b'{"a":Infinity}',
    b'{"a":-Infinity}', b'{"a":1e400}', b'{"a":-1e400}', b'{"a":' + b"9" * 400 + b"}",
    b'{"a":' + b"1" * 5000 + b"}", b'{"a":1,"a":2}', b'{"a":{"b":1,"\\u0062":2}}',
    b"[" * 129 + b"]" * 129, b"[" * 100_000, b'{"a":1} x', b"{'a':1}", b'{"a":"\x01"}',
])
def test_not_strict_json_is_refused(raw: bytes) -> None:
    with pytest.raises(BodyError) as info:
        parse_json(raw, 128)
    assert info.value.reason == Reason.INVALID


def test_depth_limit_is_exact_and_configurable() -> None:
    assert parse_json(b"[" * 128 + b"]" * 128, 128)
    with pytest.raises(BodyError, match="deeper than 128"):
        parse_json(b"[" * 129 + b"]" * 129, 128)
    nested = b'{"a":' * 10 + b"{}" + b"}" * 10
    assert parse_json(nested, 11)
    with pytest.raises(BodyError, match="deeper than 10"):
        parse_json(nested, 10)


def test_edge_numbers_within_double_range_pass() -> None:
    assert parse_json(b'{"a":1.7976931348623157e308,"b":-5e-324,"c":' + b"9" * 300 + b"}", 128)


def test_gzip_deflate_and_stacked() -> None:
    raw = json.dumps({"a": "b" * 1000}).encode()
    assert decode_content(gzip.compress(raw), ["gzip"], 10_000) == raw
    assert decode_content(zlib.compress(raw), ["DEFLATE"], 10_000) == raw
    assert decode_content(gzip.compress(raw), ["identity, gzip", "identity"], 10_000) == raw
    assert decode_content(raw, ["identity"], 10_000) == raw
    for stacked in (["deflate, gzip"], ["gzip", "gzip"], ["gzip,deflate"]):
        with pytest.raises(BodyError) as info:
            decode_content(gzip.compress(zlib.compress(raw)), stacked, 10_000)
        assert info.value.reason == Reason.MEDIA_TYPE
        assert "more than one" in info.value.message


@pytest.mark.parametrize("size", [MAX_EXPANSION * 200, 5_000_000])
def test_expansion_ratio_over_200_is_too_large(size: int) -> None:
    """Well under the size limit, but inflating more than 200:1: a bomb (decisions.md §11)."""
    bomb = zlib.compress(b" " * size, 9)
    assert size > MAX_EXPANSION * len(bomb)
    with pytest.raises(BodyError) as info:
        decode_content(bomb, ["deflate"], 32 * 1024 * 1024)
    assert info.value.reason == Reason.TOO_LARGE
    assert "200 times" in info.value.message


def test_expansion_ratio_exactly_at_the_bound_passes() -> None:
    """A body inflating to exactly 200 times its compressed size is still read."""
    rng = random.Random(7)
    for _ in range(200):
        raw = b'{"a":"' + bytes(rng.choice(b"ab") for _ in range(rng.randint(1, 9))) \
            + b" " * rng.randint(1000, 60_000) + b'"}'
        packed = zlib.compress(raw, 9)
        if len(raw) <= MAX_EXPANSION * len(packed):
            assert decode_content(packed, ["deflate"], 1 << 25) == raw
        else:
            with pytest.raises(BodyError):
                decode_content(packed, ["deflate"], 1 << 25)


def test_bomb_stops_at_the_limit() -> None:
    bomb = gzip.compress(b"0" * 50_000_000)
    assert len(bomb) < 100_000
    with pytest.raises(BodyError) as info:
        decode_content(bomb, ["gzip"], 1_000_000)
    assert info.value.reason == Reason.TOO_LARGE


@pytest.mark.parametrize(("data", "coding"), [
    (b"not gzip", "gzip"), (gzip.compress(b"{}")[:-4], "gzip"), (gzip.compress(b"{}") + b"x",
                                                                 "gzip"),
    (b"\x00\x01", "deflate"),
])
def test_corrupt_compressed_bodies(data: bytes, coding: str) -> None:
    with pytest.raises(BodyError) as info:
        decode_content(data, [coding], 10_000)
    assert info.value.reason == Reason.INVALID


def _inflated_whole(data: bytes, wbits: int, limit: int) -> bytes | str:
    """What one unbounded zlib call makes of ``data``: the reference for the sliced reading."""
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(data) + inflater.flush()
    except zlib.error:
        return Reason.INVALID
    if len(out) > min(limit, MAX_EXPANSION * len(data)):
        return Reason.TOO_LARGE
    if not inflater.eof or inflater.unused_data:
        return Reason.INVALID
    return out


@settings(max_examples=300)
@given(raw=st.binary(max_size=3000) | st.text(max_size=3000).map(str.encode),
       coding=st.sampled_from(["gzip", "deflate"]), feed=st.integers(1, 700),
       cut=st.integers(0, 4), tail=st.binary(max_size=3))
def test_compressed_input_fed_in_slices_reads_as_one_call(raw: bytes, coding: str, feed: int,
                                                          cut: int, tail: bytes) -> None:
    """The input is fed to zlib a slice at a time (so the unconsumed rest is never copied
    whole): wherever the slices fall, a body reads as one unbounded call would read it,
    truncated or with trailing bytes included."""
    packed = gzip.compress(raw) if coding == "gzip" else zlib.compress(raw)
    data = packed[:len(packed) - cut] + tail
    wbits = 16 + zlib.MAX_WBITS if coding == "gzip" else zlib.MAX_WBITS
    expected = _inflated_whole(data, wbits, 1 << 20)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(body_module, "_FEED", feed)
        try:
            got: bytes | str = decode_content(data, [coding], 1 << 20)
        except BodyError as error:
            got = error.reason
    assert got == expected


def test_trailing_bytes_right_after_the_last_slice_of_the_stream_are_refused(
        monkeypatch) -> None:
    """The stream ends exactly where a slice ends; what follows is in the next slice, which
    zlib never sees, and must still be refused."""
    packed = gzip.compress(b'{"a":1}')
    monkeypatch.setattr(body_module, "_FEED", len(packed))
    assert decode_content(packed, ["gzip"], 10_000) == b'{"a":1}'
    for tail in (b"x", gzip.compress(b"{}")):
        with pytest.raises(BodyError) as info:
            decode_content(packed + tail, ["gzip"], 10_000)
        assert info.value.reason == Reason.INVALID


def test_unreadable_encodings() -> None:
    assert unreadable_encoding(["br"]) == "br"
    assert unreadable_encoding(["gzip, zstd"]) == "zstd"
    assert unreadable_encoding(["GZIP", "identity"]) is None
    assert unreadable_encoding(["gzip", "GZIP", "identity"]) == "gzip, gzip"
    assert unreadable_encoding(["gzip"] * 5) is not None
    assert unreadable_encoding(["gzip", "deflate"]) == "gzip, deflate"
    assert unreadable_encoding(["x" * 5000]) == "x" * 64


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.floats(allow_nan=False,
                                                                          allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8),
                                                                       children, max_size=4),
    max_leaves=30,
)


@given(_json)
def test_strict_json_round_trips(value) -> None:
    raw = json.dumps(value).encode()
    assert parse_json(raw, 128) == value


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_anything_else(raw: bytes) -> None:
    with contextlib.suppress(BodyError):
        parse_json(raw, 128)
