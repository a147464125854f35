"""The fast paths of the hot path give exactly the full path's answers."""

from __future__ import annotations

import gc
import json
import weakref
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelguard import Catalog, Guard, routing
from modelguard import guard as guard_module
from modelguard.catalog.sources import StaticSource
from modelguard.routing import DEFAULT_FAMILIES, FAMILIES, match_route

_ROUTE_PATHS = [row.pattern.replace("{version}", "v1beta").replace("{model}", "models/gemini-x")
                for row in routing.ROUTES]
_PIECES = st.sampled_from(["/", "//", "/.", "/..", "%2F", "%2f", ";a=b", ".json", "\\", "?q=1",
                           "#f", "ſ", "K", "models/", ":generateContent", "V1", "%24", "http://h",
                           *_ROUTE_PATHS])
_PATHS = st.lists(_PIECES, max_size=6).map("".join) | st.text(max_size=40)
_ENABLED = st.sampled_from([DEFAULT_FAMILIES, frozenset(FAMILIES), frozenset({"messages"})])


@settings(max_examples=400, deadline=None)
@given(paths=st.lists(_PATHS, min_size=1, max_size=3), root=st.sampled_from(["", "/v1", "/gw"]),
       enabled=_ENABLED, any_prefix=st.booleans())
def test_cached_route_decision_is_the_uncached_one(paths: list[str], root: str,
                                                   enabled: frozenset[str],
                                                   any_prefix: bool) -> None:
    expected = routing._match(tuple(paths), root, enabled, any_prefix)
    for _ in range(2):  # the first call fills the cache, the second reads it
        got = match_route(*paths, root_path=root, enabled=enabled, any_prefix=any_prefix)
        assert got == expected


def test_route_cache_stays_bounded() -> None:
    for i in range(routing._CACHED_DECISIONS + 50):
        match_route(f"/v1beta/models/m-{i}:generateContent")
    assert len(routing._DECIDED) <= routing._CACHED_DECISIONS


def test_long_paths_are_not_cached() -> None:
    path = "/v1/" + "a" * routing._CACHED_PATH_CHARS + "/messages"
    assert match_route(path) == routing._match((path,), "", DEFAULT_FAMILIES, False)
    assert ((path,), "", DEFAULT_FAMILIES, False) not in routing._DECIDED


def test_agent_fixture_paths_route_as_uncached() -> None:
    fixtures = Path(__file__).parent / "fixtures"
    routed = 0
    for path in sorted(fixtures.rglob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if not isinstance(record, dict) or not isinstance(record.get("path"), str):
            continue
        target = record["path"]
        assert match_route(target) == routing._match((target,), "", DEFAULT_FAMILIES, False)
        routed += match_route(target) is not None
    assert routed >= 8  # the captured SDK and agent requests are on guarded routes


# -- the static-catalog fast path of Guard.check ----------------------------------------------


_FIXTURES = Path(__file__).parent / "fixtures"
_RECORDS = sorted((_FIXTURES / "sdk").glob("*.json")) + sorted(
    (_FIXTURES / "agents").glob("*.json"))


class _Awaited(StaticSource):
    """The same fixed catalog, but not a ``StaticSource`` itself: the guard takes the general
    (awaiting) path for it."""


def _run(coro: Any) -> Any:
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("the check suspended")


def _guards() -> tuple[Guard, Guard]:
    catalog = Catalog.default()
    fast, full = Guard(catalog), Guard(_Awaited(catalog))
    assert type(fast.source) is StaticSource and type(full.source) is not StaticSource
    return fast, full


def _record_request(path: Path) -> tuple[str, dict[str, str], bytes]:
    record = json.loads(path.read_text())
    body = record["body"]
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    target = record["path"] + ("?" + record["query"] if record.get("query") else "")
    return target, record.get("headers", {}), raw


@pytest.mark.parametrize("path", _RECORDS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_static_fast_path_is_the_awaited_path_on_captured_bodies(path: Path) -> None:
    fast, full = _guards()
    target, headers, body = _record_request(path)
    a = _run(fast.check("POST", target, headers, body))
    b = _run(full.check("POST", target, headers, body))
    assert a == b
    assert fast.check_sync("POST", target, headers, body) == a


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                     lambda kids: st.lists(kids, max_size=3)
                     | st.dictionaries(st.sampled_from(["type", "text", "role", "content",
                                                        "image_url", "tools", "stream", "x"]),
                                       kids, max_size=3), max_leaves=12)
_BODIES = st.fixed_dictionaries(
    {"model": st.sampled_from(["claude-sonnet-4-6", "gpt-5-4", "nope", 3])},
    optional={"messages": st.lists(st.fixed_dictionaries({"role": st.just("user"),
                                                          "content": _JSON}), max_size=2),
              "input": _JSON, "contents": _JSON, "tools": _JSON, "stream": _JSON,
              "max_tokens": st.integers(-2, 10**7)})


@settings(max_examples=300, deadline=None)
@given(body=_BODIES, target=st.sampled_from(["/v1/messages", "/v1/chat/completions",
                                             "/v1/responses",
                                             "/v1beta/models/gemini-3-1-pro:generateContent"]),
       raw=st.booleans())
def test_static_fast_path_is_the_awaited_path_on_generated_bodies(body: dict, target: str,
                                                                 raw: bool) -> None:
    fast, full = _guards()
    data = json.dumps(body).encode() if not raw else json.dumps(body)[:-1].encode()
    headers = {"content-type": "application/json"}
    a = _run(fast.check("POST", target, headers, data))
    assert a == _run(full.check("POST", target, headers, data))
    assert a == fast.check_sync("POST", target, headers, data)


# -- remembered judgements of allowed requests -------------------------------------------------


def test_remembered_judgements_are_fresh_judgements_on_captured_bodies() -> None:
    """One long-lived guard (its judgements remembered) against a fresh guard per request,
    over every captured body, twice, in two orders."""
    warm, _ = _guards()
    requests = [_record_request(path) for path in _RECORDS]
    for order in (requests, requests[::-1]):
        for target, headers, body in order:
            fresh, _ = _guards()
            expected = fresh.check_sync("POST", target, headers, body)
            assert warm.check_sync("POST", target, headers, body) == expected
            assert _run(warm.check("POST", target, headers, body)) == expected
    assert warm._judgements  # the second round really was answered from memory


@settings(max_examples=300, deadline=None)
@given(bodies=st.lists(st.tuples(_BODIES, st.sampled_from(
    ["/v1/messages", "/v1/chat/completions", "/v1/responses",
     "/v1beta/models/gemini-3-1-pro:generateContent"])), min_size=1, max_size=6))
def test_remembered_judgements_are_fresh_judgements_on_generated_bodies(
        bodies: list[tuple[dict, str]]) -> None:
    warm, warm_awaited = _guards()
    headers = {"content-type": "application/json"}
    for body, target in bodies * 2:
        data = json.dumps(body).encode()
        fresh, _ = _guards()
        expected = fresh.check_sync("POST", target, headers, data)
        assert warm.check_sync("POST", target, headers, data) == expected
        assert _run(warm_awaited.check("POST", target, headers, data)) == expected


@pytest.mark.parametrize(("target", "body"), [
    ("/v1/messages", {"model": "claude-sonnet-4-6", "max_tokens": 64,
                      "messages": [{"role": "user", "content": "hi"}]}),
    ("/v1/messages/count_tokens", {"model": "claude-sonnet-4-6",
                                   "messages": [{"role": "user", "content": "hi"}]}),
    ("/v1/chat/completions", {"model": "gpt-5-4", "stream": True,
                              "messages": [{"role": "user", "content": "hi"}]}),
    ("/v1beta/models/gemini-3-1-pro:streamGenerateContent",
     {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
    ("/v1/responses", {"model": "gpt-5-4", "input": "hi", "max_output_tokens": 64}),
])
def test_a_repeated_request_is_answered_from_memory(
        target: str, body: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """The key the recall builds in its own frame (one model, no thinking) is the key
    ``judgement_key`` remembered: the second check judges nothing."""
    guard, _ = _guards()
    data = json.dumps(body).encode()
    first = guard.check_sync("POST", target, {}, data)
    assert first.allowed

    def judge(*_: Any) -> Any:
        raise AssertionError("judged again")

    monkeypatch.setattr(guard_module, "judge", judge)
    assert guard.check_sync("POST", target, {}, data) == first
    assert _run(guard.check("POST", target, {}, data)) == first


def test_a_remembered_judgement_still_compares_output_caps_and_follows_the_catalog() -> None:
    catalog = Catalog.default()
    limit = catalog.get("claude-sonnet-4-6").max_output_tokens
    assert limit is not None
    source = _Awaited(catalog)
    guard = Guard(source)

    def check(max_tokens: int) -> Any:
        body = json.dumps({"model": "claude-sonnet-4-6", "max_tokens": max_tokens,
                           "messages": [{"role": "user", "content": "hi"}]}).encode()
        return _run(guard.check("POST", "/v1/messages", {}, body))

    assert check(limit).allowed and check(limit).allowed  # remembered
    over = check(limit + 1)
    assert not over.allowed and over.violations[0].reason == "max_tokens_exceeded"
    assert check(16).allowed
    # a new catalog (a refresh) without the model: nothing remembered for the old one applies
    source.catalog = Catalog(data=tuple(m for m in catalog.data if m.id != "claude-sonnet-4-6"))
    gone = check(16)
    assert not gone.allowed and gone.violations[0].reason == "unsupported_model"


def test_remembered_judgements_keep_only_a_few_catalogs_alive() -> None:
    """One catalog per caller key (a remote catalog): what is remembered for old catalogs
    must not keep them all alive."""
    base = Catalog.default()
    source = _Awaited(base)
    guard = Guard(source)
    body = json.dumps({"model": "claude-sonnet-4-6", "max_tokens": 8,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()
    refs = []
    for _ in range(40):
        source.catalog = Catalog(data=base.data)
        refs.append(weakref.ref(source.catalog))
        assert _run(guard.check("POST", "/v1/messages", {}, body)).allowed
        assert _run(guard.check("POST", "/v1/messages", {}, body)).allowed  # remembered
    source.catalog = base
    gc.collect()
    assert sum(ref() is not None for ref in refs) <= 8


# -- the readers' settled-block fast paths ------------------------------------------------------

from modelguard.body import BodyError  # noqa: E402
from modelguard.policy import Options, read_decoded  # noqa: E402
from modelguard.protocols import anthropic, gemini, responses  # noqa: E402


def _full_readers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every block, part and tool read in full: the fast paths switched off."""
    monkeypatch.setattr(anthropic, "_first_unsettled", lambda f, blocks, start=0: start)
    monkeypatch.setattr(gemini, "_settled_call", lambda f, part: False)
    monkeypatch.setattr(responses, "_INERT_TOOLS", frozenset())


def _features(target: str, body: bytes) -> Any:
    route = match_route(target.partition("?")[0])
    assert route is not None
    try:
        return read_decoded(route, body, Options(), ["application/json"])
    except BodyError as error:
        return ("refused", error.reason, str(error), error.path)


def _both(monkeypatch: pytest.MonkeyPatch, target: str, body: bytes) -> tuple[Any, Any]:
    fast = _features(target, body)
    with monkeypatch.context() as patched:
        _full_readers(patched)
        full = _features(target, body)
    return fast, full


_GUARDED = [p for p in _RECORDS if match_route(json.loads(p.read_text())["path"]) is not None]


@pytest.mark.parametrize("path", _GUARDED, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_reader_fast_paths_read_captured_bodies_as_the_full_readers(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target, _, body = _record_request(path)
    fast, full = _both(monkeypatch, target, body)
    assert fast == full


_KEYS = st.sampled_from(["type", "text", "content", "source", "cache_control", "thought",
                         "thoughtSignature", "thought_signature", "functionCall",
                         "functionResponse", "function_call", "parts", "name", "response",
                         "inlineData", "TYPE", "tools", "model", "svg", "x"])
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 3)
    | st.sampled_from(["text", "image", "tool_use", "tool_result", "thinking", "function",
                       "custom", "namespace", "web_search", "image_generation", "x", "mcp",
                       "document", "redacted_thinking", "server_tool_use"]),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(_KEYS, kids, max_size=4),
    max_leaves=14)
_ITEMS = st.lists(st.dictionaries(_KEYS, _VALUES, max_size=4), max_size=4)


@settings(max_examples=400, deadline=None)
@given(blocks=_ITEMS, tools=st.one_of(st.none(), _ITEMS), first=_ITEMS)
def test_anthropic_fast_path_on_generated_blocks(blocks: list, tools: list | None,
                                                 first: list) -> None:
    body: dict[str, Any] = {"model": "m", "max_tokens": 8,
                            "messages": [{"role": "user", "content": first},
                                         {"role": "assistant", "content": blocks}]}
    if tools is not None:
        body["tools"] = tools
    with pytest.MonkeyPatch.context() as monkeypatch:
        fast, full = _both(monkeypatch, "/v1/messages", json.dumps(body).encode())
    assert fast == full


@settings(max_examples=400, deadline=None)
@given(parts=_ITEMS, tools=st.one_of(st.none(), st.just([{"functionDeclarations": []}]),
                                     st.just([{"functionDeclarations": [{"name": "f"}]}])))
def test_gemini_fast_path_on_generated_parts(parts: list, tools: list | None) -> None:
    body: dict[str, Any] = {"contents": [{"role": "model", "parts": parts},
                                         {"role": "user", "parts": parts[::-1]}]}
    if tools is not None:
        body["tools"] = tools
    with pytest.MonkeyPatch.context() as monkeypatch:
        fast, full = _both(monkeypatch, "/v1beta/models/m:generateContent",
                           json.dumps(body).encode())
    assert fast == full


@settings(max_examples=400, deadline=None)
@given(tools=_ITEMS, choice=st.sampled_from([None, "auto", "none"]))
def test_responses_fast_path_on_generated_tools(tools: list, choice: str | None) -> None:
    body: dict[str, Any] = {"model": "m", "input": "hi", "tools": tools}
    if choice is not None:
        body["tool_choice"] = choice
    with pytest.MonkeyPatch.context() as monkeypatch:
        fast, full = _both(monkeypatch, "/v1/responses", json.dumps(body).encode())
    assert fast == full


# -- a body in pieces ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", _RECORDS[::7], ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_a_body_in_pieces_is_checked_as_the_whole_body(path: Path) -> None:
    import asyncio

    target, headers, body = _record_request(path)
    route = match_route(target.partition("?")[0])
    if route is None:
        pytest.skip("not a guarded route")
    guard = Guard(Catalog.default())
    pairs = [(k.lower(), v) for k, v in headers.items()]
    query = target.partition("?")[2]
    large = body[:-1] + b" " * (1 << 20) + body[-1:]  # inspected in a worker thread

    async def both(data: bytes) -> tuple[Any, Any]:
        parts = [data[i:i + 4096] for i in range(0, len(data), 4096)]
        return (await guard.inspect(route, pairs, query, data),
                await guard.inspect_parts(route, pairs, query, parts))

    for data in (body, large):
        whole, pieces = asyncio.run(both(data))
        assert whole == pieces
        assert whole == guard.inspect_sync(route, pairs, query, data)
