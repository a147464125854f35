"""Every violation in one answer, actions, budgets, report mode outages, metrics (§12, §9).

Checks go through ``Guard`` (the pure verdict), the middleware under uvicorn with an echo
app, and ``modelguard serve`` in front of a stand-in upstream; catalog outages come from a
real loopback gateway that answers 500.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from modelguard import Catalog, Guard, ModelGuardMiddleware, RemoteCatalog, rewrite, wording
from modelguard.serve.sidecar import create_app

from .conftest import ALL_TAGS, catalog_of, model_entry
from .gateway import Gateway
from .test_sidecar import metrics_of, sample
from .upstream import StandIn, serve

TIMEOUT = 10.0
KEY = "sk-policy-test-0001"
HI = [{"role": "user", "content": "hi"}]


def anthropic_body(model: str = "m", **extra: Any) -> bytes:
    return json.dumps({"model": model, "max_tokens": 100, "messages": HI, **extra}).encode()


async def check(catalog: Catalog, body: bytes, path: str = "/v1/messages", *,
                headers: dict[str, str] | None = None, **options: Any) -> Any:
    return await Guard(catalog, **options).check("POST", path, headers or {}, body)


THINKING = {"type": "enabled", "budget_tokens": 2000}
CACHED_SYSTEM = [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}]
TOOLS = [{"name": "f", "input_schema": {"type": "object", "properties": {
    "cache_control": {"type": "string"}}}}]
IMAGE = [{"role": "user", "content": [{"type": "image", "source": {
    "type": "url", "url": "https://example.com/a.png"}}, {"type": "text", "text": "?"}]}]


# -- every violation in one answer ---------------------------------------------------------


async def test_the_example_of_section_12() -> None:
    catalog = Catalog.default()
    body = json.dumps({"model": "gpt-5-4", "max_tokens": 32000, "thinking": {"type": "adaptive"},
                       "system": [{"type": "text", "text": "a"}, *CACHED_SYSTEM],
                       "tools": TOOLS, "messages": HI}).encode()
    no_tools = catalog_of(*[m.model_dump() for m in catalog if m.id != "gpt-5-4"],
                          {**catalog.get("gpt-5-4").model_dump(),
                           "capabilities": ["text", "vision", "streaming"]})
    verdict = await check(no_tools, body)
    assert verdict.status == 400 and verdict.token == "unsupported_capability"
    message = verdict.error["error"]["message"]
    assert message.startswith(
        "Model 'gpt-5-4' does not support tool_use (tool definitions, at tools), thinking "
        "(adaptive thinking, at thinking) or cache_control (a cache breakpoint, at system[1]), "
        "and max_tokens 32000 is above its 16384 limit.")
    assert [(v.key, v.path) for v in verdict.violations] == [
        ("tool_use", "tools"), ("thinking", "thinking"), ("cache_control", "system[1]"),
        ("max_tokens", "max_tokens")]


async def test_order_model_content_capabilities_hints_cap() -> None:
    catalog = catalog_of(model_entry("m", set(), max_output_tokens=10),
                         model_entry("n", set(ALL_TAGS)))
    body = json.dumps({"model": "m", "max_tokens": 99, "stream": True, "thinking": THINKING,
                       "system": CACHED_SYSTEM, "tools": TOOLS, "fallbacks": [{"model": "zz"}],
                       "messages": [{"role": "user", "content": [
                           {"type": "hologram"}, *IMAGE[0]["content"]]}]}).encode()
    verdict = await check(catalog, body)
    got = [(v.reason, v.capability) for v in verdict.violations]
    assert got == [
        ("unsupported_model", None), ("unsupported_content", None),
        ("unsupported_capability", "vision"), ("unsupported_capability", "tool_use"),
        ("unsupported_capability", "streaming"), ("unsupported_capability", "thinking"),
        ("unsupported_capability", "cache_control"), ("max_tokens_exceeded", None)]
    assert verdict.token == "unsupported_model"
    assert verdict.reasons == ("unsupported_model", "unsupported_content",
                               "unsupported_capability", "max_tokens_exceeded")
    message = verdict.error["error"]["message"]
    for part in ("'zz' is not available", "'hologram'", "allow_unknown_content",
                 "vision (an image, at messages[0].content[1])", "streaming (",
                 "max_tokens 99 is above its 10 limit"):
        assert part in message, part
    assert message.index("'zz'") < message.index("hologram") < message.index("vision")


async def test_openai_param_and_gemini_path_are_the_first_violations() -> None:
    catalog = catalog_of(model_entry("m", set(), "openai"))
    body = json.dumps({"model": "m", "stream": True, "reasoning_effort": "high",
                       "messages": [{"role": "user", "content": [
                           {"type": "image_url", "image_url": {"url": "https://x/a.png"}}]}],
                       }).encode()
    verdict = await check(catalog, body, "/v1/chat/completions")
    error = verdict.error["error"]
    assert (error["code"], error["param"]) == ("unsupported_capability", "messages[0].content[0]")
    assert "streaming" in error["message"] and "reasoning (reasoning_effort high" in \
        error["message"]
    gemini = catalog_of(model_entry("g", set(), "google"))
    body = json.dumps({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {
        "thinkingConfig": {"includeThoughts": True}, "responseLogprobs": True}}).encode()
    verdict = await check(gemini, body, "/v1beta/models/g:streamGenerateContent")
    meta = verdict.error["error"]["details"][0]["metadata"]
    assert (meta["capability"], meta["path"]) == ("streaming", "streamGenerateContent")
    assert "thoughts via thinkingConfig" in verdict.error["error"]["message"]


async def test_resolved_violations_are_not_named_and_do_not_decide_the_token() -> None:
    catalog = catalog_of(model_entry("m", {"tool_use"}, max_output_tokens=50),
                         model_entry("n", set(ALL_TAGS)))
    body = anthropic_body(thinking=THINKING, system=CACHED_SYSTEM, messages=IMAGE)
    verdict = await check(catalog, body, actions="compat")
    assert not verdict.allowed and verdict.token == "unsupported_capability"
    assert verdict.first.capability == "vision"
    message = verdict.error["error"]["message"]
    assert "thinking" not in message and "cache_control" not in message \
        and "max_tokens" not in message
    assert {(v.key, v.action) for v in verdict.violations} == {
        ("vision", "refuse"), ("thinking", "strip"), ("cache_control", "strip"),
        ("max_tokens", "clamp")}
    assert verdict.rewritten_body is None and verdict.adjustments == ()


async def test_only_resolved_violations_forward_and_the_cap_alone_decides() -> None:
    catalog = catalog_of(model_entry("m", set(), max_output_tokens=50))
    verdict = await check(catalog, anthropic_body(thinking=THINKING),
                          actions={"thinking": "strip"})
    assert not verdict.allowed and verdict.token == "invalid_request_error"
    assert verdict.reason == "max_tokens_exceeded"
    assert verdict.error["error"]["message"].startswith(
        "The requested max_tokens is 100, above the 50 output tokens model 'm' can produce.")


async def test_allow_forwards_unchanged_and_records() -> None:
    catalog = catalog_of(model_entry("m", set(), max_output_tokens=50))
    seen: list[Any] = []
    body = anthropic_body(messages=IMAGE, stream=True)
    verdict = await check(catalog, body, on_violation=seen.append,
                          actions={"vision": "allow", "streaming": "allow",
                                   "max_tokens": "allow"})
    assert verdict.allowed and verdict.rewritten_body is None and verdict.adjustments == ()
    assert {(v.key, v.action) for v in verdict.violations} == {
        ("vision", "allow"), ("streaming", "allow"), ("max_tokens", "allow")}
    assert verdict.refused == () and seen == [verdict]


# -- wording --------------------------------------------------------------------------------


async def test_vendor_rule_names_vendors_with_articles() -> None:
    catalog = Catalog.default()
    body = anthropic_body("gpt-5-4", tools=[{"type": "web_search_20250305", "name": "web_search"}])
    message = (await check(catalog, body)).error["error"]["message"]
    assert "needs an Anthropic model with tool_use; model 'gpt-5-4' is an OpenAI model." \
        in message
    body = json.dumps({"contents": [{"parts": [{"text": "x"}]}],
                       "tools": [{"googleSearch": {}}]}).encode()
    verdict = await check(catalog, body, "/v1beta/models/claude-sonnet-4-6:generateContent")
    message = verdict.error["error"]["message"]
    assert "runs on Google's side and needs a Google model with tool_use; model " \
           "'claude-sonnet-4-6' is an Anthropic model." in message


async def test_alternatives_prefer_the_same_owner() -> None:
    catalog = catalog_of(model_entry("mine-small", set(), "acme"),
                         model_entry("other-1", {"vision"}, "globex"),
                         model_entry("other-2", {"vision"}, "globex"),
                         model_entry("mine-big", {"vision"}, "acme"),
                         model_entry("other-3", {"vision"}, "globex"))
    verdict = await check(catalog, anthropic_body("mine-small", messages=IMAGE))
    assert verdict.first.alternatives == ("mine-big", "other-1", "other-2")
    assert verdict.error["error"]["message"].endswith(
        "needs: mine-big, other-1, other-2.")


async def test_stripped_tags_do_not_narrow_the_alternatives() -> None:
    catalog = catalog_of(model_entry("m", set()), model_entry("vision-only", {"vision"}),
                         model_entry("all", set(ALL_TAGS)))
    verdict = await check(catalog, anthropic_body(messages=IMAGE, thinking=THINKING),
                          actions={"thinking": "strip"})
    assert verdict.first.alternatives == ("vision-only", "all")


# -- budgets follow a clamped cap -----------------------------------------------------------


@pytest.mark.parametrize(("max_tokens", "budget", "limit", "want_budget"), [
    (32000, 31999, 8192, 8191),   # Claude Code's MAX_THINKING_TOKENS shape
    (32000, 16000, 8192, 4096),   # keeps its share of the cap
    (32000, 2000, 8192, None),    # still fits: untouched
    (32000, 30000, 2048, 1920),
    (32000, 31999, 1100, 1099),
    (32000, 4000, 1500, 1024),    # its share would be 187: raised to the minimum
])
async def test_anthropic_budget_lowered_with_the_cap(max_tokens, budget, limit,
                                                     want_budget) -> None:
    catalog = catalog_of(model_entry("m", {"thinking"}, max_output_tokens=limit))
    body = json.dumps({"model": "m", "max_tokens": max_tokens, "messages": HI,
                       "thinking": {"type": "enabled", "budget_tokens": budget}}).encode()
    verdict = await check(catalog, body, actions={"max_tokens": "clamp"})
    assert verdict.allowed
    sent = json.loads(verdict.rewritten_body)
    assert sent["max_tokens"] == limit
    assert sent["thinking"]["budget_tokens"] == (budget if want_budget is None else want_budget)
    assert sent["thinking"]["budget_tokens"] < sent["max_tokens"]
    want = [f"max_tokens={limit}"] + ([f"thinking_budget={want_budget}"] if want_budget else [])
    assert verdict.adjustments == tuple(want)


@pytest.mark.parametrize("literal", ["32000.0", "3.2e4", "32000"])
async def test_integral_float_caps_are_clamped(literal: str) -> None:
    catalog = catalog_of(model_entry("m", {"thinking"}, max_output_tokens=8192))
    raw = ('{"model":"m","max_tokens":' + literal + ',"messages":[{"role":"user",'
           '"content":"x"}],"thinking":{"type":"enabled","budget_tokens":16000.0}}')
    verdict = await check(catalog, raw.encode(), actions={"max_tokens": "clamp"})
    sent = json.loads(verdict.rewritten_body)
    assert sent["max_tokens"] == 8192 and sent["thinking"]["budget_tokens"] == 4096


async def test_no_valid_budget_refuses_unless_thinking_is_strip() -> None:
    catalog = catalog_of(model_entry("m", {"thinking"}, max_output_tokens=1024))
    body = json.dumps({"model": "m", "max_tokens": 32000, "messages": HI,
                       "thinking": {"type": "enabled", "budget_tokens": 20000}}).encode()
    refused = await check(catalog, body, actions={"max_tokens": "clamp"})
    assert not refused.allowed and refused.reason == "max_tokens_exceeded"
    assert refused.first.action == "refuse"
    assert "thinking.budget_tokens 20000 would need at least 1024" in \
        refused.error["error"]["message"]
    forwarded = await check(catalog, body, actions="compat")
    assert forwarded.allowed
    assert forwarded.adjustments == ("thinking=stripped", "max_tokens=1024")
    assert json.loads(forwarded.rewritten_body) == {"model": "m", "max_tokens": 1024,
                                                    "messages": HI}


async def test_fallback_budgets_follow_their_own_caps() -> None:
    catalog = catalog_of(model_entry("main", {"thinking"}, max_output_tokens=64000),
                         model_entry("small", {"thinking"}, max_output_tokens=8192))
    body = json.dumps({"model": "main", "max_tokens": 32000, "messages": HI,
                       "thinking": {"type": "enabled", "budget_tokens": 16000},
                       "fallbacks": [{"model": "small", "max_tokens": 20000,
                                      "thinking": {"type": "enabled", "budget_tokens": 10000}}],
                       }).encode()
    verdict = await check(catalog, body, actions={"max_tokens": "clamp"})
    sent = json.loads(verdict.rewritten_body)
    assert sent["max_tokens"] == 32000 and sent["thinking"]["budget_tokens"] == 16000
    assert sent["fallbacks"][0]["max_tokens"] == 8192
    assert sent["fallbacks"][0]["thinking"]["budget_tokens"] == 4096


@pytest.mark.parametrize(("cap", "budget", "want_cap", "want_budget"), [
    ("65536", 32768, "8192", 4096),     # a proto3 string cap stays a string
    (65536, "32768", 8192, "4096"),
    (65536, -1, 8192, -1),              # dynamic: nothing to fit
    (65536, 1000, 8192, 1000),
])
async def test_gemini_budget_within_the_clamped_cap(cap, budget, want_cap,
                                                    want_budget) -> None:
    catalog = catalog_of(model_entry("g", {"thinking"}, "google", max_output_tokens=8192))
    body = json.dumps({"contents": [{"parts": [{"text": "x"}]}], "generation_config": {
        "max_output_tokens": cap, "thinking_config": {"thinking_budget": budget}}}).encode()
    verdict = await check(catalog, body, "/v1beta/models/g:generateContent",
                          actions="compat")
    sent = json.loads(verdict.rewritten_body)["generation_config"]
    assert sent["max_output_tokens"] == want_cap
    assert sent["thinking_config"]["thinking_budget"] == want_budget


async def test_openai_reasoning_budget_below_the_clamped_cap() -> None:
    catalog = catalog_of(model_entry("o", {"thinking"}, "openai", max_output_tokens=4096))
    body = json.dumps({"model": "o", "max_tokens": 16000, "messages": HI,
                       "reasoning": {"max_tokens": 8000}}).encode()
    verdict = await check(catalog, body, "/v1/chat/completions", actions="compat")
    sent = json.loads(verdict.rewritten_body)
    assert sent == {"model": "o", "max_tokens": 4096, "messages": HI,
                    "reasoning": {"max_tokens": 2048}}


# -- faithful bytes -------------------------------------------------------------------------


async def test_number_literals_and_strings_are_kept_exactly() -> None:
    catalog = catalog_of(model_entry("m", set()))
    raw = ('{"model":"m","max_tokens":100,"temperature":1.0,"top_p":1E-1,'
           '"metadata":{"big":123456789012345678901234567890,"neg":-0.0,"e":2.50e+3},'
           '"system":[{"type":"text","text":"caf\\u00e9 \\ud83d\\ude00 \\"q\\" \\/",'
           '"cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"\\u2028x"}]}')
    verdict = await check(catalog, raw.encode(), actions={"cache_control": "strip"})
    out = verdict.rewritten_body.decode()
    for literal in ('"temperature":1.0', '"top_p":1E-1', "123456789012345678901234567890",
                    '"neg":-0.0', '"e":2.50e+3'):
        assert literal in out, literal
    want = json.loads(raw)
    del want["system"][0]["cache_control"]
    assert json.loads(out) == want


async def test_tool_schemas_and_inputs_keep_fields_named_like_features() -> None:
    catalog = catalog_of(model_entry("m", {"tool_use"}))
    history = [{"role": "user", "content": "x"}, {"role": "assistant", "content": [
        {"type": "tool_use", "id": "t", "name": "f",
         "input": {"cache_control": "keep me", "thinking": "and me"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                                      "content": [{"type": "text", "text": "r",
                                                   "cache_control": {"type": "ephemeral"}}]}]}]
    body = anthropic_body(tools=TOOLS, messages=history, thinking=THINKING)
    verdict = await check(catalog, body, actions="compat")
    sent = json.loads(verdict.rewritten_body)
    assert sent["tools"] == TOOLS
    assert sent["messages"][1] == history[1]
    assert "cache_control" not in sent["messages"][2]["content"][0]["content"][0]
    assert "thinking" not in sent


async def test_a_rewrite_that_would_not_resolve_is_refused(monkeypatch, caplog) -> None:
    """The safety net: the forwarded body is checked again; a gap in a table fails closed."""
    monkeypatch.setitem(rewrite.STRIPS, ("messages", "cache_control"), ())
    catalog = catalog_of(model_entry("m", set()))
    with caplog.at_level(logging.ERROR, "modelguard"):
        verdict = await check(catalog, anthropic_body(system=CACHED_SYSTEM),
                              actions={"cache_control": "strip"})
    assert not verdict.allowed and verdict.first.capability == "cache_control"
    assert "did not resolve" in caplog.text


async def test_gemini_cached_content_cannot_be_stripped() -> None:
    catalog = catalog_of(model_entry("g", set(), "google"))
    body = json.dumps({"contents": [{"parts": [{"text": "x"}]}],
                       "cachedContent": "cachedContents/abc"}).encode()
    verdict = await check(catalog, body, "/v1beta/models/g:generateContent", actions="compat")
    assert not verdict.allowed and verdict.first.capability == "cache_control"
    assert verdict.first.action == "refuse"


# -- report mode ------------------------------------------------------------------------------


async def test_report_mode_rewrites_and_reports() -> None:
    catalog = catalog_of(model_entry("m", set()), model_entry("n", set(ALL_TAGS)))
    body = anthropic_body(system=CACHED_SYSTEM, messages=IMAGE)
    verdict = await check(catalog, body, mode="report", actions="compat")
    assert verdict.allowed and verdict.adjustments == ("cache_control=stripped",)
    assert [v.capability for v in verdict.refused] == ["vision"]
    assert "cache_control" not in json.loads(verdict.rewritten_body)["system"][0]


@pytest.fixture
def down_gateway() -> Iterator[str]:
    gateway = Gateway(fault="500")
    gateway.set_models(KEY, model_entry("claude-sonnet-4-6", set()))
    with serve(gateway.app()) as server:
        yield server.url


def _catalog_for(url: str) -> RemoteCatalog:
    return RemoteCatalog(url, timeout=2)


async def test_report_mode_forwards_a_catalog_outage(down_gateway) -> None:
    seen: list[Any] = []
    source = _catalog_for(down_gateway)
    try:
        guard = Guard(source, mode="report", on_violation=seen.append)
        verdict = await guard.check("POST", "/v1/messages", {"x-api-key": KEY},
                                    anthropic_body("claude-sonnet-4-6"))
    finally:
        await source.aclose()
    assert verdict.allowed and verdict.guarded
    assert verdict.reason == "catalog_unavailable" and verdict.model_id == "claude-sonnet-4-6"
    assert seen == [verdict]
    source = _catalog_for(down_gateway)
    try:
        enforced = await Guard(source).check("POST", "/v1/messages", {"x-api-key": KEY},
                                             anthropic_body("claude-sonnet-4-6"))
    finally:
        await source.aclose()
    assert enforced.status == 503 and enforced.token == "api_error"


async def test_report_mode_still_refuses_a_revoked_key() -> None:
    gateway = Gateway(fault="401")
    with serve(gateway.app()) as server:
        source = _catalog_for(server.url)
        try:
            verdict = await Guard(source, mode="report").check(
                "POST", "/v1/messages", {"x-api-key": KEY}, anthropic_body())
        finally:
            await source.aclose()
    assert verdict.status == 401 and not verdict.allowed


def test_report_mode_sidecar_forwards_while_the_catalog_is_down(down_gateway) -> None:
    seen: list[Any] = []
    standin = StandIn()
    with serve(standin.app) as upstream:
        app = create_app(upstream.url, down_gateway, mode="report", on_violation=seen.append)
        with serve(app, access_log=False) as sidecar:
            response = httpx.post(f"{sidecar.url}/v1/messages", timeout=TIMEOUT,
                                  content=anthropic_body("claude-sonnet-4-6"),
                                  headers={"x-api-key": KEY, "content-type": "application/json"})
            metrics = metrics_of(sidecar.url)
    assert response.status_code == 200 and response.json()["type"] == "message"
    assert len(standin.requests) == 1
    assert [v.reason for v in seen] == ["catalog_unavailable"]
    assert sample(metrics, "modelguard_requests_total", protocol="anthropic",
                  outcome="reported") == 1


# -- the middleware over real HTTP -------------------------------------------------------------


async def _echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"body": body.decode("latin-1"),
                         "content_length": request.headers.get("content-length"),
                         "content_encoding": request.headers.get("content-encoding"),
                         "transfer_encoding": request.headers.get("transfer-encoding")})


ECHO = Starlette(routes=[Route("/{path:path}", _echo, methods=["POST"])])


@pytest.fixture(scope="module")
def echo_url() -> Iterator[str]:
    catalog = catalog_of(model_entry("m", {"tool_use"}, max_output_tokens=64),
                         model_entry("all", set(ALL_TAGS)))
    with serve(ModelGuardMiddleware(ECHO, catalog, actions="compat")) as server:
        yield server.url


def _chunks(data: bytes) -> Iterator[bytes]:
    for i in range(0, len(data), 7):
        yield data[i:i + 7]


@pytest.mark.parametrize("coding", ["identity", "gzip", "chunked", "gzip+chunked"])
def test_middleware_forwards_the_rewritten_body(echo_url: str, coding: str) -> None:
    original = anthropic_body(system=CACHED_SYSTEM, thinking=THINKING)
    data = gzip.compress(original) if "gzip" in coding else original
    headers = {"content-type": "application/json"}
    if "gzip" in coding:
        headers["content-encoding"] = "gzip"
    content: Any = _chunks(data) if "chunked" in coding else data
    response = httpx.post(f"{echo_url}/v1/messages", content=content, headers=headers,
                          timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["modelguard-adjusted"] == \
        "cache_control=stripped; thinking=stripped; max_tokens=64"
    echoed = response.json()
    body = echoed["body"].encode("latin-1")
    assert echoed["content_length"] == str(len(body))
    assert echoed["content_encoding"] is None and echoed["transfer_encoding"] is None
    want = json.loads(original)
    del want["system"][0]["cache_control"], want["thinking"]
    want["max_tokens"] = 64
    assert json.loads(body) == want and list(json.loads(body)) == list(want)


def test_middleware_passes_unchanged_requests_byte_for_byte(echo_url: str) -> None:
    original = b'{ "model" : "m", "max_tokens": 10, "messages": [{"role":"user","content":"x"}]}'
    data = gzip.compress(original)
    response = httpx.post(f"{echo_url}/v1/messages", content=data, timeout=TIMEOUT,
                          headers={"content-encoding": "gzip"})
    echoed = response.json()
    assert "modelguard-adjusted" not in response.headers
    assert echoed["body"].encode("latin-1") == data and echoed["content_encoding"] == "gzip"


# -- metrics and logs --------------------------------------------------------------------------


def test_sidecar_counts_adjustments_and_every_refusal_reason(caplog) -> None:
    catalog = catalog_of(model_entry("m", {"tool_use"}, max_output_tokens=64),
                         model_entry("all", set(ALL_TAGS)))
    standin = StandIn()
    with serve(standin.app) as upstream:
        app = create_app(upstream.url, catalog, actions="compat")
        with serve(app, access_log=False) as sidecar, \
                caplog.at_level(logging.INFO, "modelguard"):
            post = lambda body: httpx.post(f"{sidecar.url}/v1/messages", content=body,  # noqa: E731
                                           headers={"x-api-key": KEY}, timeout=TIMEOUT)
            adjusted = post(anthropic_body(system=CACHED_SYSTEM, thinking=THINKING))
            refused = post(json.dumps({"model": "m", "max_tokens": 10, "messages": [
                {"role": "user", "content": [{"type": "hologram"}, *IMAGE[0]["content"]]}],
            }).encode())
            metrics = metrics_of(sidecar.url)
    assert adjusted.status_code == 200 and refused.status_code == 400
    assert adjusted.headers["modelguard-adjusted"].startswith("cache_control=stripped")
    for capability, action in (("cache_control", "strip"), ("thinking", "strip"),
                               ("max_tokens", "clamp")):
        assert sample(metrics, "modelguard_adjustments_total", capability=capability,
                      action=action) == 1
    assert sample(metrics, "modelguard_requests_total", protocol="anthropic",
                  outcome="adjusted") == 1
    for reason in ("unsupported_content", "unsupported_capability"):
        assert sample(metrics, "modelguard_rejections_total", protocol="anthropic",
                      reason=reason, model="m") == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "modelguard"]
    assert any("unsupported_content" in line and "unsupported_capability vision" in line
               for line in lines), lines
    access = [json.loads(r.getMessage()) for r in caplog.records
              if r.name == "modelguard.access"]
    assert any(a.get("reasons") == ["unsupported_content", "unsupported_capability"]
               for a in access), access
    assert any(a.get("adjustments") == ["cache_control=stripped", "thinking=stripped",
                                        "max_tokens=64"] for a in access), access


@pytest.mark.parametrize(("owner", "words"), [
    ("anthropic", "an Anthropic model"), ("openai", "an OpenAI model"),
    ("google", "a Google model"), ("deepseek", "a DeepSeek model"),
    ("moonshot", "a Moonshot AI model"), ("xai", "an xAI model"),
    ("bytedance", "a ByteDance model"), ("acme", "an acme model"), ("zeta", "a zeta model"),
    (None, "a model of unknown owner"),
])
def test_vendor_names_and_articles(owner, words) -> None:
    assert wording.a_vendor_model(owner) == words
