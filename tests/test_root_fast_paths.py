"""The fixed-cost fast paths give exactly the full path's answers: the readers' skip of the rare
top-level fields, the one-frame ``check_sync``, the per-guard route decisions and the short
judgement keys."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelguard import Catalog, Guard
from modelguard.body import BodyError
from modelguard.catalog.sources import StaticSource
from modelguard.guard import READ_HEADERS, normalize_headers, read_headers
from modelguard.policy import Options, judgement_key, read_decoded
from modelguard.protocols import anthropic, gemini, openai
from modelguard.protocols._base import Features, ModelRef, Need
from modelguard.routing import DEFAULT_FAMILIES, FAMILIES, match_route
from modelguard.verdict import PASS, Verdict


class _Everything(frozenset):
    """A "rare field" set that meets every body: the readers take their full path."""

    def isdisjoint(self, other: Any) -> bool:
        return False


def _read(target: str, body: bytes) -> Any:
    route = match_route(target)
    assert route is not None
    try:
        return read_decoded(route, body, Options())
    except BodyError as error:
        return ("refused", error.reason, str(error), error.path)


def _fast_and_full(module: Any, target: str, body: bytes) -> tuple[Any, Any]:
    fast = _read(target, body)
    with pytest.MonkeyPatch.context() as patched:
        for name in ("_RARE", "_TOOL_KEYS", "_CAP_KEYS"):  # every skip switched off
            if hasattr(module, name):
                patched.setattr(module, name, _Everything())
        full = _read(target, body)
    return fast, full


#: A field's value: absent is the key left out; else null, a valid value or (a third of the
#: time) a malformed one.
def _field(*valid: Any) -> st.SearchStrategy[Any]:
    good = [None, *valid]
    return st.sampled_from(good * 2) | st.sampled_from(["x", 3, [], {}, {"type": 7}, True])


def _common(body: dict[str, Any], module: Any, keep_rare: bool) -> dict[str, Any]:
    """The body, or (half the time) without its rare fields: the skip itself is exercised."""
    if keep_rare:
        return body
    return {k: v for k, v in body.items() if k not in module._RARE}


_BLOCKS = st.sampled_from([
    "hi", [{"type": "text", "text": "hi"}], [{"type": "image", "source": {"type": "url"}}],
    [{"type": "tool_use", "id": "t", "name": "f", "input": {}}],
    [{"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}}], 5])
_ANTHROPIC_TOOLS = [{"name": "f", "input_schema": {}},
                    {"type": "web_search_20250305", "name": "web_search"},
                    {"name": "g", "input_schema": {}, "cache_control": {"type": "ephemeral"}},
                    {"type": "mystery"}]

_ANTHROPIC = st.fixed_dictionaries(
    {"model": st.sampled_from(["claude-sonnet-4-6", 7]),
     "messages": st.lists(st.fixed_dictionaries({"role": st.just("user"), "content": _BLOCKS}),
                          max_size=2)},
    optional={
        "max_tokens": st.sampled_from([8, None, "8", 2.0]),
        "system": st.sampled_from(["be brief", [{"type": "text", "text": "s"}], 3]),
        "tools": st.sampled_from([[], _ANTHROPIC_TOOLS[:1], _ANTHROPIC_TOOLS, None, "x",
                                  [3]]),
        "stream": st.sampled_from([True, False, None, "yes", 1]),
        "tool_choice": _field({"type": "auto"}, {"type": "any"}, {"type": "none"},
                              {"type": "tool", "name": "f"}, {"type": "mystery"}),
        "mcp_servers": _field([{"type": "url", "url": "https://m", "name": "m"}]),
        "container": _field("c-1"),
        "thinking": _field({"type": "enabled", "budget_tokens": 2048}, {"type": "disabled"},
                           {"type": "adaptive"}, {"type": "sideways"}),
        "output_config": _field({"format": {"type": "json_schema", "schema": {}}},
                                {"effort": "high"}),
        "output_format": _field({"type": "json_schema", "schema": {}}, {"type": "yaml"}),
        "fallbacks": _field([{"model": "claude-haiku-4-5", "max_tokens": 9}],
                            [{"model": "default"}],
                            [{"model": "m", "thinking": {"type": "enabled"}}]),
        "cache_control": _field({"type": "ephemeral"}),
        "metadata": st.just({"user_id": "u"}),
    })


@settings(max_examples=500, deadline=None)
@given(body=_ANTHROPIC, counting=st.booleans(), keep_rare=st.booleans())
def test_anthropic_rare_fields_skip_reads_as_the_full_reader(body: dict[str, Any],
                                                             counting: bool,
                                                             keep_rare: bool) -> None:
    target = "/v1/messages/count_tokens" if counting else "/v1/messages"
    body = _common(body, anthropic, keep_rare)
    fast, full = _fast_and_full(anthropic, target, json.dumps(body).encode())
    assert fast == full


_CHAT = st.fixed_dictionaries(
    {"model": st.sampled_from(["gpt-5-4", 7]),
     "messages": st.lists(st.fixed_dictionaries(
         {"role": st.sampled_from(["user", "tool"]),
          "content": st.sampled_from(["hi", [{"type": "text", "text": "t"}],
                                      [{"type": "image_url", "image_url": {"url": "u"}}]])}),
         max_size=2)},
    optional={
        "max_tokens": st.sampled_from([8, None, "8", 2.0]),
        "max_completion_tokens": st.sampled_from([9, None, -1, "9"]),
        "tools": st.sampled_from([[], [{"type": "function", "function": {"name": "f"}}],
                                  [{"type": "mystery"}], None, "x"]),
        "tool_choice": st.sampled_from(["auto", "none", "required", "sometimes", None,
                                        {"type": "function"}, {"type": 3}, 4]),
        "stream": st.sampled_from([True, False, None, "yes", 1]),
        "stream_options": st.just({"include_usage": True}),
        "functions": _field([{"name": "f"}]),
        "function_call": _field("auto", "none", {"name": "f"}),
        "response_format": _field({"type": "json_schema"}, {"type": "text"},
                                  {"type": "yaml"}),
        "logprobs": _field(False),
        "top_logprobs": _field(2),
        "reasoning_effort": _field("high", "none"),
        "reasoning": _field({"enabled": True}, {"effort": "none"}, {"max_tokens": 9}),
        "thinking": _field({"type": "enabled"}, {"type": "disabled"}, {"type": "odd"}),
        "enable_thinking": _field(False),
        "chat_template_kwargs": _field({"enable_thinking": True}),
        "modalities": _field(["text", "audio"], ["image"], ["smell"]),
        "audio": _field({"voice": "alloy"}),
        "grounding": _field(False, {"x": 1}),
    })


@settings(max_examples=500, deadline=None)
@given(body=_CHAT, keep_rare=st.booleans())
def test_chat_rare_fields_skip_reads_as_the_full_reader(body: dict[str, Any],
                                                        keep_rare: bool) -> None:
    body = _common(body, openai, keep_rare)
    fast, full = _fast_and_full(openai, "/v1/chat/completions", json.dumps(body).encode())
    assert fast == full


_GEMINI = st.fixed_dictionaries(
    {"contents": st.sampled_from([[{"role": "user", "parts": [{"text": "hi"}]}],
                                  [{"parts": [{"functionCall": {"name": "f"}}]}], "x"])},
    optional={
        "systemInstruction": st.sampled_from([{"parts": [{"text": "s"}]}, "s", 3]),
        "tools": st.sampled_from([[], [{"functionDeclarations": [{"name": "f"}]}],
                                  [{"googleSearch": {}}], [{"mystery": {}}], None, "x"]),
        "generationConfig": st.sampled_from([{"maxOutputTokens": 9}, {"thinkingConfig": {}},
                                             None, 3]),
        "toolConfig": _field({"functionCallingConfig": {"mode": "ANY"}},
                             {"functionCallingConfig": {"mode": "NONE"}}),
        "tool_config": _field({"functionCallingConfig": {"mode": "AUTO"}}),
        "cachedContent": _field("cachedContents/c"),
        "model": _field("models/gemini-3-1-pro", "models/other"),
    })


@settings(max_examples=400, deadline=None)
@given(body=_GEMINI, method=st.sampled_from(["generateContent", "countTokens"]),
       keep_rare=st.booleans())
def test_gemini_rare_fields_skip_reads_as_the_full_reader(body: dict[str, Any],
                                                          method: str, keep_rare: bool) -> None:
    if not keep_rare:
        body = {k: v for k, v in body.items() if k not in gemini._ROOT_RARE}
    target = f"/v1beta/models/gemini-3-1-pro:{method}"
    fast = _read(target, json.dumps(body).encode())
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(gemini, "_ROOT_RARE", _Everything())
        full = _read(target, json.dumps(body).encode())
    assert fast == full


def test_the_skip_is_taken_only_without_rare_fields() -> None:
    """The common bodies do take the skip (else the property tests above prove nothing)."""
    plain = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}],
             "tools": [{"name": "f", "input_schema": {}}], "stream": True}
    assert anthropic._RARE.isdisjoint(plain) and openai._RARE.isdisjoint(plain)
    assert not anthropic._RARE.isdisjoint({**plain, "thinking": None})
    assert not openai._RARE.isdisjoint({**plain, "audio": None})


# -- check_sync in one frame, against the public steps it stands for --------------------------


def _stepwise(guard: Guard, method: str, target: str, headers: Any, body: bytes,
              root_path: str | None) -> Verdict:
    """``check_sync`` spelled out with the public steps: route, admit, inspect_sync."""
    pairs = normalize_headers(headers)
    route = guard.route(method, (target,), pairs, root_path)
    if route is None:
        return PASS
    admitted = guard.admit(route, pairs, target.partition("?")[2], body)
    if isinstance(admitted, Verdict):
        return admitted
    return guard.inspect_sync(*admitted)


_HEADERS = st.lists(st.sampled_from([
    ("user-agent", "claude-cli/2.0.1 (external, cli)"), ("User-Agent", "QwenCode/0.1"),
    ("x-api-key", "sk-a"), ("X-Api-Key", "sk-b"), ("authorization", "Bearer sk-c"),
    ("x-goog-api-key", "g"), ("host", "h"), ("x-stainless-os", "Linux"), ("accept", "*/*"),
    ("content-type", "application/json"), ("Content-Type", "application/json; charset=utf-8"),
    ("content-type", "text/plain; charset=latin-1"), ("content-type", "multipart/form-data"),
    ("content-encoding", "identity"), ("content-encoding", "br"), ("content-encoding", "zz"),
    ("content-encoding", "gzip"), ("Content-Encoding", "gzip"),
    ("content-length", "12"), ("content-length", "99999999999"), ("content-length", "1x"),
    ("x-http-method-override", "POST"), ("authorization", "Bearer k")]), max_size=6)
_TARGETS = st.sampled_from([
    "/v1/messages", "/v1/messages?beta=true", "/v1/chat/completions", "/v1/responses",
    "/v1beta/models/gemini-3-1-pro:generateContent", "/v1/messages?$ct=text/plain",
    "/v1/messages?%24ct=application/x-www-form-urlencoded", "/gw/v1/messages", "/v1/models",
    "/v1/images/edits", "/V1/Messages", "/v1/messages/../chat/completions"])
_BODY = st.sampled_from([
    b'{"model":"claude-sonnet-4-6","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}',
    b'{"model":"claude-haiku-4-5","max_tokens":9999999,"messages":[],"thinking":'
    b'{"type":"enabled","budget_tokens":2048}}',
    b'{"model":"gpt-5-4","messages":[{"role":"user","content":"hi"}],"stream":true}',
    b'{"contents":[{"parts":[{"text":"hi"}]}]}', b"", b"{", b"[]",
    b'{"model":"nope","input":"hi"}',
    gzip.compress(b'{"model":"gpt-5-4","messages":[{"role":"user","content":"hi"}]}')])


class _Keyed(StaticSource):
    """A fixed catalog behind a credential: the guard reads the caller's key first."""

    needs_credential = True


def _as_bytes(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]


@settings(max_examples=400, deadline=None)
@given(method=st.sampled_from(["POST", "post", "GET"]), target=_TARGETS, headers=_HEADERS,
       body=_BODY, root_path=st.sampled_from(["", "/gw", None]), small=st.booleans(),
       keyed=st.booleans(), raw=st.booleans())
def test_check_sync_is_the_public_steps(method: str, target: str, headers: list,
                                        body: bytes, root_path: str | None,
                                        small: bool, keyed: bool, raw: bool) -> None:
    catalog = Catalog.default()
    guard = Guard(_Keyed(catalog) if keyed else catalog,
                  max_body_bytes=40 if small else 1 << 20)
    if raw:
        headers = _as_bytes(headers)
    expected = _stepwise(guard, method, target, headers, body, root_path)
    for _ in range(2):  # the second time, the target's route is remembered
        assert guard.check_sync(method, target, headers, body, root_path=root_path) == expected


_AGENT_HEADERS = st.lists(st.sampled_from([
    ("User-Agent", "claude-cli/2.0.1 (external, cli)"), ("user-agent", "QwenCode/0.1"),
    ("user-agent", "GeminiCLI/0.9"), ("user-agent", "codex_cli_rs/0.5"), ("USER-AGENT", "x/1"),
    ("x-api-key", "sk-a"), ("Authorization", "Bearer sk-c"), ("host", "h"),
    ("x-stainless-os", "Linux"), ("content-type", "application/json"),
    ("content-length", "119")]), max_size=5)
_REFUSED = st.sampled_from([
    b'{"model":"claude-haiku-4-5","max_tokens":9999999,"messages":[],"thinking":'
    b'{"type":"enabled","budget_tokens":2048}}',
    b'{"model":"claude-sonnet-4-6","max_tokens":99999999,"messages":[]}',
    b'{"model":"gpt-5-4-nano","messages":[{"role":"user","content":[{"type":"input_audio",'
    b'"input_audio":{"data":"","format":"wav"}}]}],"stream":true}',
    b'{"model":"nope","messages":[]}'])


@settings(max_examples=300, deadline=None)
@given(headers=_AGENT_HEADERS, body=_REFUSED, keyed=st.booleans(), raw=st.booleans())
def test_check_sync_reads_the_agent_and_the_key_as_the_public_steps(
        headers: list, body: bytes, keyed: bool, raw: bool) -> None:
    """Refusals worded for the agent the User-Agent names, with and without a keyed catalog."""
    catalog = Catalog.default()
    guard = Guard(_Keyed(catalog) if keyed else catalog)
    target = "/v1/chat/completions" if b"gpt" in body else "/v1/messages"
    if raw:
        headers = _as_bytes(headers)
    expected = _stepwise(guard, "POST", target, headers, body, "")
    assert guard.check_sync("POST", target, headers, body) == expected


def test_remembered_routes_follow_the_guarded_families() -> None:
    guard = Guard(Catalog.default())
    body = b'{"model":"gpt-5-4","messages":[{"role":"user","content":"hi"}]}'
    assert guard.check_sync("POST", "/v1/chat/completions", {}, body).guarded
    guard.families = frozenset(FAMILIES) - {"chat"}
    assert not guard.check_sync("POST", "/v1/chat/completions", {}, body).guarded
    guard.families = DEFAULT_FAMILIES
    assert guard.check_sync("POST", "/v1/chat/completions", {}, body).guarded


def test_remembered_routes_stay_bounded() -> None:
    from modelguard import guard as guard_module

    guard = Guard(Catalog.default())
    for i in range(guard_module._ROUTED_TARGETS + 10):
        guard.check_sync("POST", f"/v1beta/models/m-{i}:generateContent", {}, b"{}")
    assert len(guard._routes[1]) <= guard_module._ROUTED_TARGETS
    long = "/v1/messages?" + "a" * guard_module._ROUTED_TARGET_CHARS
    guard.check_sync("POST", long, {}, b"{}")
    assert long not in guard._routes[1]


# -- short judgement keys ---------------------------------------------------------------------


def _long_key(route: Any, features: Features) -> tuple[Any, ...] | None:
    """The judgement key in its one general form: a (slug, only, thinking) triple per model."""
    if features.unknown or features.stored:
        return None
    rules = [(n.tag, n.vendor, n.output, n.body_thinking, n.tool, n.any_of)
             for n in features.needs]
    return (route.protocol, route.name, route.counting,
            tuple((ref.slug, ref.only, None if ref.thinking is None else tuple(
                (n.tag, n.vendor, n.output, n.body_thinking, n.tool, n.any_of)
                for n in ref.thinking)) for ref in features.models), tuple(rules))


_NEEDS = st.lists(st.builds(Need, st.sampled_from(["thinking", "vision", ""]), st.just("p"),
                            st.just("w"), vendor=st.sampled_from([None, "anthropic"]),
                            output=st.booleans(), body_thinking=st.booleans()), max_size=2)
_REFS = st.lists(st.builds(ModelRef, st.just("model"), st.sampled_from(["a", "b"]),
                           thinking=st.none() | _NEEDS,
                           only=st.sampled_from([None, (), ("image_gen",)])),
                 min_size=0, max_size=2)


def _features(models: list[ModelRef], needs: list[Need]) -> Features:
    f = Features()
    f.models, f.needs = models, needs
    return f


_FEATURES = st.builds(_features, models=_REFS, needs=_NEEDS)


def _varied(a: Features, other: Features, change: str) -> Features:
    """``a`` with one part taken from ``other`` (or none): near misses, not just strangers."""
    models = [ModelRef(r.path, r.slug, list(r.caps), r.thinking, r.only) for r in a.models]
    needs = list(a.needs)
    if change == "needs":
        needs = list(other.needs)
    elif change == "models":
        models = list(other.models)
    elif models and other.models:
        setattr(models[0], change, getattr(other.models[0], change))
    return _features(models, needs)


@settings(max_examples=800, deadline=None)
@given(a=_FEATURES, other=_FEATURES,
       change=st.sampled_from(["slug", "only", "thinking", "needs", "models"]),
       target=st.sampled_from(["/v1/messages", "/v1/messages/count_tokens"]))
def test_short_judgement_keys_equal_exactly_when_the_general_ones_do(
        a: Features, other: Features, change: str, target: str) -> None:
    route = match_route(target)
    b = _varied(a, other, change)
    assert (judgement_key(route, a) == judgement_key(route, b)) == (
        _long_key(route, a) == _long_key(route, b))


# -- remembered Content-Type readings ---------------------------------------------------------


_MEDIA = st.lists(st.sampled_from(["application/json", "text/plain; charset=latin-1",
                                   "multipart/form-data; boundary=x", " Application/JSON ",
                                   "application/x-www-form-urlencoded", "a/b, c/d; charset=x",
                                   "application/json; charset=UTF-8; charset=utf8", ""])
                  | st.text(max_size=12), max_size=3)


@settings(max_examples=400, deadline=None)
@given(values=_MEDIA, multipart=st.booleans(), long=st.booleans())
def test_remembered_media_type_readings_are_fresh_readings(values: list[str], multipart: bool,
                                                           long: bool) -> None:
    from modelguard import headers

    if long:  # past the remembered length: read every time
        values = [v + " " * headers._REMEMBERED_VALUE_CHARS for v in values]
    fresh = next((p for v in values if (p := headers._value_problem(v, multipart))), None)
    for _ in range(2):
        assert headers.media_type_problem(values, reads_multipart=multipart) == fresh


# -- the headers a check reads ---------------------------------------------------------------

_NAMES = st.sampled_from(sorted(READ_HEADERS) + [
    "Content-Type", "CONTENT-LENGTH", "X-Api-Key", "host", "accept", "x-stainless-os",
    "content-typ", "x-api-key ", "x-api-\u212aey", "Ÿ-api-key", "ÿ-api-key", "\xc0uthorization"])
_HEADER_VALUES = st.sampled_from(["application/json", "sk-1", "", " 5", "Ä", "claude-cli/1"])


@settings(max_examples=500, deadline=None)
@given(pairs=st.lists(st.tuples(_NAMES, _HEADER_VALUES), max_size=8),
       shape=st.sampled_from(["pairs", "bytes", "mixed", "dict"]))
def test_read_headers_are_the_normalized_headers_the_check_reads(
        pairs: list[tuple[str, str]], shape: str) -> None:
    headers: Any = pairs
    if shape == "bytes":
        headers = [(k.encode("latin-1", "replace"), v.encode("latin-1")) for k, v in pairs]
    elif shape == "mixed":
        headers = [(k.encode("latin-1", "replace") if i % 2 else k, v)
                   for i, (k, v) in enumerate(pairs)]
    elif shape == "dict":
        headers = dict(pairs)
    expected = [p for p in normalize_headers(headers) if p[0] in READ_HEADERS]
    assert read_headers(headers) == expected


def test_read_headers_fail_as_normalize_headers_on_values_they_drop() -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no text")

    headers = [("x-other", Unprintable())]
    with pytest.raises(RuntimeError):
        normalize_headers(headers)
    with pytest.raises(RuntimeError):
        read_headers(headers)
    verdict = Guard(Catalog.default()).check_sync("POST", "/v1/messages", headers, b"{}")
    assert not verdict.allowed and verdict.status == 400  # fail closed, as before


def test_every_header_a_step_reads_is_kept() -> None:
    from modelguard import headers as head
    from modelguard import hints, routing

    assert {name for _, name in head.SLOTS if name} <= READ_HEADERS
    assert set(routing.METHOD_OVERRIDES) <= READ_HEADERS
    assert {hints.USER_AGENT, "content-type", "content-encoding", "content-length",
            "anthropic-version"} <= READ_HEADERS


# -- one plain Content-Length -----------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(value=st.text(alphabet="0123456789 \t,-+٣²", max_size=22)
       | st.integers(0, 10**20).map(str))
def test_one_plain_content_length_reads_as_the_general_reading(value: str) -> None:
    from modelguard.headers import HeadError, declared_length

    def outcome(values: Any) -> Any:
        try:
            return declared_length(values)
        except HeadError as error:
            return ("refused", error.reason, error.message)

    assert outcome([value]) == outcome((value,))  # a tuple takes the general loop
