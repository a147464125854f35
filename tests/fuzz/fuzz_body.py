#!/usr/bin/env python3
"""Fuzz the body reader and ``Guard.check`` on every guarded route (atheris / libFuzzer).

Input layout (so a saved input replays the same way under pytest, with or without atheris):

    byte 0   route (ROUTES[b % len])
    byte 1   Content-Encoding header (CODINGS[b % len])
    byte 2   flags: 1 compress the body as declared; 2 small limits (4 KiB, depth 8);
             4 report mode; 8 allow_unknown_content; 16 send Content-Length
    byte 3   max_depth for the decoder comparison (1 + b % 200)
    rest     the body

Checked on every input:
* ``parse_json`` accelerated and pure-Python agree (both refuse with the same reason, or both
  accept and give the same value, a ``LongString`` standing for a long string's head), with
  and without the route's settle table (the same ``Settled`` markers in the same places);
* ``decode_content`` returns bytes or raises ``BodyError`` (400/413/415 reasons), nothing else;
* ``Guard.check`` never raises, never answers 5xx, refuses in its protocol's envelope, never
  with an internal error, and an allowed body is strict JSON the oracle in
  tests/test_properties.py says the model can serve (no bypass).

    python tests/fuzz/fuzz_body.py -max_total_time=600 -dict=tests/fuzz/json.dict \\
        /tmp/body-corpus tests/fuzz/corpus/body
"""

from __future__ import annotations

import logging
import sys
import zlib
from contextlib import nullcontext
from pathlib import Path
from typing import Any

if str(Path(__file__).resolve().parents[2]) not in sys.path:  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fuzz._common import Bytes, atheris, drive, main  # noqa: E402

# libFuzzer gets coverage feedback from modelguard only when this runs as the fuzzer.
INSTRUMENT = atheris is not None and __name__ == "__main__"
with atheris.instrument_imports(include=["modelguard"]) if INSTRUMENT else nullcontext():
    from modelguard import Catalog, Guard
    from modelguard.body import (
        BodyError,
        decode_content,
        parse_json,
        worst_size,
    )
    from modelguard.guard import LARGE_BODY
    from modelguard.policy import SETTLE
    from modelguard.routing import match_route

# Imported after the instrumented block: they import modelguard too, which would otherwise be
# loaded uninstrumented first (and libFuzzer would get no coverage from it).
from tests.test_decoders import same_value  # noqa: E402
from tests.test_properties import (  # noqa: E402  (the independent oracle, strict reader)
    INTERNAL_ERROR,
    assert_no_bypass,
    envelope_token,
    known_bug,
)

ROUTES = [
    ("anthropic", "/v1/messages"),
    ("anthropic", "/v1/messages/count_tokens"),
    ("anthropic", "/v1/messages?beta=true"),
    ("openai", "/v1/chat/completions"),
    ("openai", "/chat/completions"),
    ("openai", "/v1/images/generations"),
    ("openai", "/v1/videos/generations"),
    ("gemini", "/v1beta/models/gemini-3-1-pro:generateContent"),
    ("gemini", "/v1/models/gemini-3-1-pro:streamGenerateContent?alt=sse"),
    ("gemini", "/v1/models/gemini-3-1-pro:countTokens"),
    ("gemini", "/v1alpha/models/minimax-m2-5:generateContent"),
    ("gemini", "/v1beta/models/nano-banana:streamGenerateContent"),
]
CODINGS: list[list[str]] = [[], [], [], [], ["gzip"], ["deflate"], ["identity"], ["GZIP"],
                            ["gzip, deflate"], ["x-gzip"], ["gzip", "gzip"], ["br"],
                            ["deflate, gzip, gzip, gzip, gzip"], ["gzip, identity"]]
DEFAULT = Catalog.default()
GUARDS = {
    (small, report, unknown): Guard(
        DEFAULT, mode="report" if report else "enforce", allow_unknown_content=unknown,
        **({"max_body_bytes": 4096, "max_depth": 8} if small else {}))
    for small in (False, True) for report in (False, True) for unknown in (False, True)
}
DECODE_LIMIT = 1 << 16
REASONS = {"invalid_request", "request_too_large", "unsupported_media_type"}


def outcome(body: bytes, depth: int, accelerated: bool, settle: Any = None) -> tuple[str, Any]:
    try:
        return "ok", parse_json(body, depth, accelerated=accelerated, settle=settle)
    except BodyError as error:
        return "refused", error.reason


def check_decoders(body: bytes, depth: int, settle: Any = None) -> None:
    fast, slow = outcome(body, depth, True, settle), outcome(body, depth, False, settle)
    assert fast[0] == slow[0], ("decoders disagree", fast, slow)
    if fast[0] == "ok":
        assert same_value(fast[1], slow[1]), "decoders read different values"
    else:
        assert fast[1] == slow[1], (fast[1], slow[1])


def own_decode(body: bytes, codings: list[str]) -> bytes | None:
    """The body as the codings say, decoded with zlib directly (None: not decodable here)."""
    names = [c.strip().lower() for value in codings for c in value.split(",")]
    names = [n for n in names if n not in ("", "identity")]
    if len(names) > 4 or any(n not in ("gzip", "x-gzip", "deflate") for n in names):
        return None
    for name in reversed(names):
        inflater = zlib.decompressobj(31 if name != "deflate" else 15)
        try:
            out = inflater.decompress(body, 64 << 20)
        except zlib.error:
            return None
        if not inflater.eof or inflater.unused_data or inflater.unconsumed_tail:
            return None
        body = out
    return body


def compress(body: bytes, codings: list[str]) -> bytes:
    for value in codings:
        for name in value.split(","):
            name = name.strip().lower()
            if name in ("gzip", "x-gzip"):
                obj = zlib.compressobj(wbits=31)
                body = obj.compress(body) + obj.flush()
            elif name == "deflate":
                body = zlib.compress(body)
    return body


def test_one_input(data: bytes, tolerate_known: bool = True) -> None:
    """One input. While fuzzing, inputs that only show a known bug (pinned by a strict xfail
    in test_fuzz_regressions.py) pass, so the fuzzer looks for new ones; replays of saved
    crashes use ``tolerate_known=False``."""
    reader = Bytes(data)
    protocol, target = reader.pick(ROUTES)
    codings = reader.pick(CODINGS)
    flags = reader.byte()
    depth = 1 + reader.byte() % 200
    body = reader.rest()

    check_decoders(body, depth)
    route = match_route(target)
    if route is not None and route.kind in SETTLE:  # and with the route's settled objects
        check_decoders(body, depth, SETTLE[route.kind])
    try:
        decoded = decode_content(body, codings, DECODE_LIMIT)
        assert isinstance(decoded, bytes)
    except BodyError as error:
        assert error.reason in REASONS, error.reason

    wire = compress(body, codings) if flags & 1 else body
    small, report, unknown = bool(flags & 2), bool(flags & 4), bool(flags & 8)
    headers = [("content-type", "application/json")]
    headers += [("content-encoding", value) for value in codings]
    if flags & 16:
        headers.append(("content-length", str(len(wire))))
    guard = GUARDS[small, report, unknown]
    large = worst_size(len(wire), codings) > LARGE_BODY  # inspected in a worker thread
    verdict = drive(guard.check("POST", target, headers, wire), loop=large)
    assert verdict.status in (200, 400, 413, 415), verdict
    payload = own_decode(wire, codings)
    try:
        if verdict.allowed:
            route = match_route(target)
            assert route is not None
            assert_no_bypass(DEFAULT, protocol, route.kind, payload, route.model,
                             policy=not report, allow_unknown=unknown)
        else:
            assert envelope_token(protocol, verdict) == verdict.token
            assert INTERNAL_ERROR not in verdict.violations[0].message, "internal error"
    except AssertionError:
        if not tolerate_known or payload is None or known_bug(protocol, payload) is None:
            raise


if __name__ == "__main__":
    logging.getLogger("modelguard").disabled = True  # known bugs log tracebacks; we assert
    main(test_one_input, sys.argv)
