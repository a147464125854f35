"""Turning request bytes into JSON values, strictly (decisions.md §8).

Every disagreement between this reading and the next parser's is a hole, so the body must be
I-JSON: UTF-8 without BOM, no NaN/Infinity, numbers within double range, no lone surrogates,
bounded nesting and no duplicate keys (rejected in every object, not just the ones the verdict
reads: I-JSON forbids them and no reader should have to guess which copy counts).
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Iterable
from typing import Any

import jiter

from .errors import Reason

try:
    from ._strictjson import StrictJSONError
    from ._strictjson import loads as _accelerated_loads
except ImportError:  # no compiler at install time: the pure-Python path below is equivalent
    _accelerated_loads = None

__all__ = ["ACCELERATED", "MAX_EXPANSION", "BodyError", "LongString", "decode_content",
           "encoding_refusal", "parse_json", "unreadable_encoding", "worst_size"]

ACCELERATED = _accelerated_loads is not None

class LongString(str):
    """A long string that was validated whole but kept only as its first characters (or none)."""

    __slots__ = ()


#: Keys whose string values the verdict never reads (content, base64, signatures): the
#: accelerated decoder validates such a string but, when it is long, hands back DROPPED.
_DROPPED_KEYS = (
    "text", "content", "system", "data", "thinking", "signature", "encrypted_content",
    "arguments", "description", "refusal", "prompt", "code", "output", "reasoning_content",
    "thoughtSignature", "thought_signature", "partial_json",
)
#: Keys whose long values are read only up to their first comma (a ``data:<mime>;base64,`` URL):
#: a long one is kept up to and including that comma (whole if it has none).
_PREFIX_KEYS = ("url", "file_data")
BULKY_KEYS = {key: 1 for key in _DROPPED_KEYS} | {key: 2 for key in _PREFIX_KEYS}
#: Bulky strings up to this many UTF-8 bytes are always kept whole.
KEEP_BYTES = 512
DROPPED = LongString("")

#: Content codings inspected (decisions.md §8); anything else on a guarded route is a 415.
_CODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
_IDENTITY = {"", "identity"}
#: More stacked codings than this is an attack, not a client (decisions.md §11: one layer).
_MAX_CODINGS = 1
#: A compressed body that inflates to more than this many times its size is a bomb (§11).
MAX_EXPANSION = 200
_CHUNK = 64 * 1024
#: The decoder's own nesting limit; ``max_depth`` above it cannot be honoured.
DECODER_MAX_DEPTH = 200
_MAX_DOUBLE_BITS = 1024  # ints this wide may round to infinity as a double


class BodyError(Exception):
    """A body that cannot be inspected; ``reason`` picks the status and envelope."""

    def __init__(self, reason: str, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.path = path


def _codings(headers: Iterable[str]) -> list[str]:
    codings = []
    for value in headers:
        for item in value.split(","):
            coding = item.strip().lower()
            if coding not in _IDENTITY:
                codings.append(coding)
    return codings


def unreadable_encoding(content_encodings: Iterable[str]) -> str | None:
    """The content coding this guard will not decode, if any (for an early 415): an unknown
    one, or a stack of more than one layer (each layer multiplies the cost of a bomb)."""
    codings = _codings(content_encodings)
    for coding in codings:
        if coding not in _CODINGS:
            return coding[:64]
    if len(codings) > _MAX_CODINGS:
        return ", ".join(codings)[:64]
    return None


def encoding_refusal(coding: str) -> BodyError:
    """The 415 for a coding :func:`unreadable_encoding` named."""
    if "," in coding:
        return BodyError(
            Reason.MEDIA_TYPE,
            f"Content-Encoding {coding!r} stacks more than one coding; send the body "
            "compressed once, with gzip or deflate.",
        )
    return BodyError(
        Reason.MEDIA_TYPE,
        f"Content-Encoding {coding!r} is not supported here; send the body uncompressed, "
        "or with gzip or deflate.",
    )


def worst_size(size: int, content_encodings: Iterable[str]) -> int:
    """The most bytes a body of ``size`` may decode to (for choosing where to inspect it)."""
    return size * MAX_EXPANSION if _codings(content_encodings) else size


def decode_content(body: bytes, content_encodings: Iterable[str], limit: int) -> bytes:
    """Undo one gzip/deflate coding, never inflating past ``limit`` or ``MAX_EXPANSION``:1."""
    codings = _codings(content_encodings)
    bad = unreadable_encoding(codings)
    if bad is not None:
        raise encoding_refusal(bad)
    for coding in reversed(codings):
        body = _inflate(body, _CODINGS[coding], coding, limit)
    return body


def _inflate(data: bytes, wbits: int, coding: str, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    out = []
    size = 0
    #: Whichever comes first: the size limit or the expansion ratio.
    ceiling = min(limit, MAX_EXPANSION * len(data))
    try:
        pending = data
        while pending:
            piece = inflater.decompress(pending, _CHUNK)
            size += len(piece)
            if size > ceiling:
                raise _too_expanded(limit, size, len(data))
            out.append(piece)
            pending = inflater.unconsumed_tail
            if inflater.eof:
                break
        tail = inflater.flush()
    except zlib.error:
        raise BodyError(
            Reason.INVALID, f"The body is not valid {coding} data; check Content-Encoding."
        ) from None
    size += len(tail)
    if size > ceiling:
        raise _too_expanded(limit, size, len(data))
    if not inflater.eof or inflater.unused_data:
        raise BodyError(
            Reason.INVALID, f"The {coding} body is truncated or has trailing bytes."
        )
    out.append(tail)
    return b"".join(out)


def _too_expanded(limit: int, size: int, compressed: int) -> BodyError:
    if size > limit:
        return too_large(limit, "after decompression")
    return BodyError(
        Reason.TOO_LARGE,
        f"The compressed body inflates to more than {MAX_EXPANSION} times its "
        f"{compressed}-byte size; that is refused as a decompression bomb. Send it "
        "uncompressed.",
    )


def too_large(limit: int, when: str = "") -> BodyError:
    suffix = f" {when}" if when else ""
    return BodyError(
        Reason.TOO_LARGE,
        f"The request body is larger than the {limit}-byte limit{suffix}; "
        "send less content per request (for large media, use a file or URL reference).",
    )


def parse_json(body: bytes, max_depth: int, *, accelerated: bool = True) -> Any:
    """Decode ``body`` as strict JSON, raising :class:`BodyError` on anything else.

    Both paths accept and refuse the same bodies; the accelerated one also leaves long strings
    under :data:`BULKY_KEYS` as :class:`LongString` heads.
    """
    if not body:
        raise BodyError(Reason.INVALID, "The request body is empty; send a JSON object.")
    if accelerated and _accelerated_loads is not None:
        try:
            return _accelerated_loads(body, max_depth, KEEP_BYTES, BULKY_KEYS, LongString,
                                      DROPPED)
        except StrictJSONError as exc:
            raise BodyError(Reason.INVALID, _explain(str(exc), body, max_depth)) from None
    try:
        value = jiter.from_json(
            body, allow_inf_nan=False, catch_duplicate_keys=True, cache_mode="keys"
        )
    except ValueError as exc:
        raise BodyError(Reason.INVALID, _explain(str(exc), body, max_depth)) from None
    _check_tree(value, max_depth)
    return value


def _explain(detail: str, body: bytes, max_depth: int) -> str:
    if "recursion limit" in detail or "nesting too deep" in detail:
        return _too_deep(max_depth)
    if body.startswith(b"\xef\xbb\xbf"):
        detail = "byte order mark at the start"
    elif body[:2] in (b"\xff\xfe", b"\xfe\xff") or (len(body) > 1 and b"\x00" in body[:4]):
        detail = "the body is not UTF-8 (UTF-16/32?)"
    elif "duplicate key" in detail.lower():
        return f"The body is not strict JSON: {_cut_key(detail)}. Send each key once per object."
    return f"The body is not strict JSON (UTF-8, no NaN/Infinity, no lone surrogates): {detail}."


#: A decoder's duplicate-key detail: the key between quotes, then where it was found.
_DUPLICATE = re.compile(r"(?s)(.*?duplicate key )(['\"])(.*)\2( at .*)?$", re.IGNORECASE)
#: Keys echoed in messages are cut to this many characters (decisions.md §11).
ECHOED_KEY_CHARS = 64


def _cut_key(detail: str) -> str:
    match = _DUPLICATE.match(detail)
    if match is None or len(match.group(3)) <= ECHOED_KEY_CHARS:
        return detail
    head, quote, key, tail = match.groups()
    return f"{head}{quote}{key[:ECHOED_KEY_CHARS]}...{quote}{tail or ''}"


def _too_deep(max_depth: int) -> str:
    return f"The body nests deeper than {max_depth} levels; flatten it."


def _check_tree(root: Any, max_depth: int) -> None:
    """Enforce the depth limit and double range on the decoded tree."""
    if type(root) is not dict and type(root) is not list:
        root = [root]  # a bare scalar: check it like an element
        max_depth += 1
    stack = [(root, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        node, depth = pop()
        if depth > max_depth:
            raise BodyError(Reason.INVALID, _too_deep(max_depth))
        for item in node.values() if type(node) is dict else node:
            kind = type(item)
            if kind is dict or kind is list:
                if item:
                    push((item, depth + 1))
                elif depth + 1 > max_depth:
                    raise BodyError(Reason.INVALID, _too_deep(max_depth))
            elif kind is float:
                if math.isinf(item):
                    raise _out_of_range()
            elif kind is int and item.bit_length() >= _MAX_DOUBLE_BITS and _overflows(item):
                raise _out_of_range()


def _overflows(value: int) -> bool:
    """Whether an int rounds to infinity as a double (the same test as the C decoder's)."""
    try:
        float(value)
    except OverflowError:
        return True
    return False


def _out_of_range() -> BodyError:
    return BodyError(
        Reason.INVALID,
        "The body is not strict JSON: a number is outside the range of a double.",
    )
