#!/usr/bin/env python3
"""Fuzz route matching: ``canonical_path``, ``match_route`` and ``Guard.route`` (atheris).

Input layout (read by ``Bytes``, so saved inputs replay identically without atheris):

    byte 0   what to build: even = a free-form path from the input; odd = a guarded route
             disguised by transformations the input picks (decisions.md §1: a request that
             only a sloppy matcher would miss must not slip past the guard)
    then     method, root_path, path material, transformation choices

Invariants checked on every input:
* ``canonical_path`` is total and returns a canonical path: starts with ``/``, no empty,
  ``.`` or ``..`` segment, no trailing slash (except ``/``); it is idempotent when its result
  holds nothing a second decode would change (``%``, ``?``, ``#``, ``\\``); the fast path for
  already-canonical paths agrees with the slow one;
* ``match_route`` is total; flipping ASCII case keeps the route (and the Gemini model up to
  case); two readings that would be checked differently are marked ambiguous (a reading
  that names another row checked alike, ``/chat/completions`` for ``/v1/chat/completions``,
  is not);
* a guarded route with dot segments, repeated or trailing slashes, percent-encoding, ASCII case
  changes, a query, a fragment, an absolute-form prefix or a mounted ``root_path`` still
  matches the same route;
* ``Guard.route`` guards exactly POST (case-insensitive, or a method-override header) and
  agrees with ``match_route``; ``Guard.check`` on any target never raises or answers 5xx.

    python tests/fuzz/fuzz_path.py -max_total_time=600 /tmp/path-corpus tests/fuzz/corpus/path
"""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path

if str(Path(__file__).resolve().parents[2]) not in sys.path:  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fuzz._common import Bytes, atheris, drive, main  # noqa: E402

# libFuzzer gets coverage feedback from modelguard only when this runs as the fuzzer.
INSTRUMENT = atheris is not None and __name__ == "__main__"
with atheris.instrument_imports(include=["modelguard"]) if INSTRUMENT else nullcontext():
    from modelguard import Catalog, Guard
    from modelguard.routing import canonical_path, match_route

GUARD = Guard(Catalog.default())
ROUTES = ["/v1/messages", "/v1/messages/count_tokens", "/v1/chat/completions",
          "/chat/completions", "/v1/images/generations", "/v1/videos/generations",
          "/v1beta/models/gemini-3-1-pro:generateContent",
          "/v1/models/gemini-3-1-pro:streamGenerateContent",
          "/v1alpha/models/gemini-3-flash:countTokens",
          "/v1beta/tunedModels/my-model:generateContent",
          "/v1beta/models/models/x:generateContent", "/v1/responses", "/responses/compact",
          "/v1/responses/input_tokens", "/v1/images/edits", "/videos", "/v1/tasks/submit",
          "/v1beta/openai/chat/completions"]
METHODS = ["POST", "post", "Post", "pOST", "GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE",
           "POST ", " POST", "PO ST", "POSTT", "\u017fpost"[1:], "po\u017ft", ""]
OVERRIDES = ["x-http-method-override", "x-http-method", "x-method-override", "x-other"]
ROOTS = ["", "", "", "/api", "/api/", "/prefix/v2", "/v1", "/%61pi"]
NOISE = ["", "a", "/", "//", ".", "..", "%", "%2", "%2e", "%2E%2e", "%2f", "%2F", "%3a", "%3A",
         "%5c", "\\", "?", "#", ":", "::", "models/", "%00", "\x00", "é", "%C3%A9", "%ff",
         "\ud800", "http://h", "HTTP://h:1", "//h/", ";", "@", "~", "%25", "%252e"]
TRANSFORMS = ["slash", "dot", "dotdot", "trailing", "encode", "upper", "lower", "query",
              "fragment", "absolute", "backslash"]


def ascii_swapcase(text: str) -> str:
    return "".join(c.swapcase() if c.isascii() and c.isalpha() else c for c in text)


def route_key(route: object) -> tuple | None:
    if route is None:
        return None
    return (route.protocol, route.name, None if route.model is None else route.model.lower())


def check_key(route: object) -> tuple | None:
    """What a check reads of a route: readings that differ only in the name are alike."""
    if route is None:
        return None
    return (route.protocol, route.kind, route.family, route.counting, route.multipart,
            route.tag, route.model)


def check_canonical(path: str, root: str) -> None:
    canonical = canonical_path(path, root)
    assert isinstance(canonical, str) and canonical.startswith("/"), canonical
    if canonical != "/":
        segments = canonical.split("/")[1:]
        assert "" not in segments, ("empty segment", path, canonical)
        assert "." not in segments and ".." not in segments, ("dot segment", path, canonical)
    if not any(mark in canonical for mark in "%?#\\"):
        assert canonical_path(canonical) == canonical, ("not idempotent", path, canonical)
    if not root:
        slow = canonical_path(path, root_path=path + "\x00never-a-prefix")
        assert slow == canonical, ("fast and slow paths differ", path, canonical, slow)


def check_routes(path: str, root: str) -> None:
    route = match_route(path, root_path=root)
    assert route is None or route.protocol in ("anthropic", "openai", "gemini"), route
    if route is not None and route.protocol == "gemini":
        assert route.model is not None
    if path.isascii():  # the mount point is the server's, matched exactly: keep it
        mount = root if root and path.startswith(root) else ""
        flipped = match_route(mount + ascii_swapcase(path[len(mount):]), root_path=root)
        if route is None or not route.ambiguous:
            assert route_key(flipped) == route_key(route), ("case changes the route", path)
    other = canonical_path(path, root)
    both = match_route(path, other, root_path=root)
    one, two = route, match_route(other, root_path=root)
    if one is not None and two is not None and check_key(one) != check_key(two):
        assert both is not None and both.ambiguous, ("two readings, not ambiguous", path)


def disguise(reader: Bytes, route: str) -> tuple[str, str]:
    """The route, rewritten the way a sloppy client or proxy might; and the root_path."""
    segments = route.split("/")[1:]
    query = fragment = prefix = ""
    for _ in range(reader.byte() % 6):
        how = reader.pick(TRANSFORMS)
        at = reader.byte() % len(segments)
        if how == "slash":
            segments.insert(at, "")
        elif how == "dot":
            segments.insert(at, reader.pick([".", "%2e", "%2E"]))
        elif how == "dotdot":
            segments[at:at] = [reader.pick(["x", "v1", "%2e%2e%2e"]),
                               reader.pick(["..", "%2e%2e", "%2E.", ".%2e"])]
        elif how == "trailing":
            if segments[-1]:
                segments.append("")
        elif how == "encode":
            segment = segments[at]
            if segment and "%" not in segment:  # never split an escape already there
                i = reader.byte() % len(segment)
                segments[at] = segment[:i] + "".join(
                    f"%{b:02X}" for b in segment[i].encode()) + segment[i + 1:]
        elif how == "upper":
            segments[at] = segments[at].upper()
        elif how == "lower":
            segments[at] = segments[at].lower()
        elif how == "query":
            query = "?" + reader.pick(["beta=true", "alt=sse", "key=k", "$alt=json", "a=/x"])
        elif how == "fragment":
            fragment = "#" + reader.pick(["", "x", "/v1/other", "?y"])
        elif how == "absolute":
            prefix = reader.pick(["http://example.com", "https://h:8443", "HTTP://h"])
        elif how == "backslash":
            segments.insert(at, "")  # a "\\" reads as "/": "a\\b" is "a/b"
            path = "/" + "/".join(segments)
            return prefix + path.replace("//", "/\\", 1) + query + fragment, ""
    root = reader.pick(["", "", "/api", "/mount/point"])
    path = "/" + "/".join(segments)
    if root and not prefix:
        path = root + path
    return prefix + path + query + fragment, root if not prefix else ""


def test_one_input(data: bytes, tolerate_known: bool = True) -> None:
    """One input (no known bugs in routing: ``tolerate_known`` is accepted for symmetry)."""
    reader = Bytes(data)
    mode = reader.byte()
    method = reader.pick(METHODS) if reader.flag() else reader.text(8)
    override = reader.pick(OVERRIDES) if reader.flag() else None
    if mode & 1:
        route = reader.pick(ROUTES)
        path, root = disguise(reader, route)
        found = match_route(path, root_path=root)
        assert route_key(found) == route_key(match_route(route)), ("disguised route missed",
                                                                   route, path, root)
        assert found is not None and not found.ambiguous
    else:
        root = reader.pick(ROOTS) if reader.flag() else reader.text(8)
        path = "".join(reader.pick(NOISE) if reader.flag() else reader.text(12)
                       for _ in range(1 + reader.byte() % 8))
        if reader.flag():
            path = reader.pick(ROUTES) + path
    check_canonical(path, root)
    check_routes(path, root)

    headers = [(override, reader.pick(["POST", "post", " POST ", "GET"]))] if override else []
    guarded = GUARD.route(method, [path], headers, root)
    is_post = method.upper() == "POST" or any(
        name in OVERRIDES[:3] and value.strip().upper() == "POST" for name, value in headers)
    if not is_post:
        assert guarded is None, (method, headers, path)
    else:
        assert guarded == match_route(path, root_path=root), (method, path)
    if method.isascii():
        assert GUARD.route(ascii_swapcase(method), [path], headers, root) == guarded

    target = path if root == "" else root + path
    verdict = drive(GUARD.check(method, target, headers, b'{"model":"gpt-5-4","messages":[]}'))
    assert verdict.status < 500, verdict


if __name__ == "__main__":
    main(test_one_input, sys.argv)
