"""The official SDKs against the guarded stand-in, over real HTTP (uvicorn on 127.0.0.1).

Allowed calls succeed (plain and streaming) and reach the stand-in with exactly the bytes the
SDK sent (captured by an httpx2 request hook on the SDK's own client). Refused calls raise each
SDK's own error type carrying the fixed token (decisions.md §5), and reach nothing upstream.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import anthropic
import httpx2
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from modelguard import Catalog, ModelGuardMiddleware

from .upstream import StandIn, serve

TIMEOUT = 10.0
KEY = "sk-test-key"
# A 1x1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
PNG_B64 = base64.b64encode(PNG).decode()
HI = [{"role": "user", "content": "hi"}]


@dataclass
class Env:
    standin: StandIn
    url: str


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    standin = StandIn()
    with serve(ModelGuardMiddleware(standin.app, catalog=Catalog.default())) as server:
        yield Env(standin, server.url)


@pytest.fixture(autouse=True)
def _fresh(env: Env) -> None:
    env.standin.clear()


@dataclass(frozen=True)
class Sent:
    method: str
    target: str  # path?query as on the wire
    body: bytes


@pytest.fixture
def sent() -> list[Sent]:
    return []


@pytest.fixture
def http(sent: list[Sent]) -> Iterator[httpx2.Client]:
    """The HTTP client handed to the SDKs: records every request exactly as sent."""

    def hook(request: httpx2.Request) -> None:
        sent.append(Sent(request.method, request.url.raw_path.decode("ascii"), request.read()))

    with httpx2.Client(timeout=TIMEOUT, event_hooks={"request": [hook]}) as client:
        yield client


@pytest.fixture
def claude(env: Env, http: httpx2.Client) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=env.url, api_key=KEY, max_retries=0, http_client=http)


@pytest.fixture
def oai(env: Env, http: httpx2.Client) -> openai.OpenAI:
    return openai.OpenAI(base_url=env.url + "/v1", api_key=KEY, max_retries=0, http_client=http)


@pytest.fixture(params=["v1beta", "v1"])
def gem(request: pytest.FixtureRequest, env: Env, http: httpx2.Client) -> genai.Client:
    return genai.Client(api_key=KEY, http_options=types.HttpOptions(
        base_url=env.url, api_version=request.param, httpx_client=http))


def assert_forwarded_unchanged(env: Env, sent: list[Sent], count: int = 1) -> None:
    """The stand-in received every request the SDK sent, byte for byte, and nothing else."""
    assert len(sent) == count
    got = env.standin.requests
    assert len(got) == count
    for s, r in zip(sent, got, strict=True):
        assert r.method == s.method
        assert r.path + (f"?{r.query}" if r.query else "") == s.target
        assert r.body == s.body


def assert_nothing_forwarded(env: Env, sent: list[Sent]) -> None:
    assert len(sent) == 1, "the SDK should have sent exactly one request"
    assert env.standin.requests == []


# ============================================================================================
# Anthropic
# ============================================================================================


def test_anthropic_plain_call_passes_unchanged(env, sent, claude):
    msg = claude.messages.create(model="claude-sonnet-4-6", max_tokens=8192, messages=HI)
    assert msg.content[0].text == "ok"
    assert_forwarded_unchanged(env, sent)
    request = env.standin.requests[0]
    assert request.path == "/v1/messages"
    # The SDK sends the key as x-api-key or as a bearer token; it arrives as sent.
    assert KEY in (request.header("x-api-key"), (request.header("authorization") or "")[7:])


def test_anthropic_streaming_passes_unchanged(env, sent, claude):
    events = [e.type for e in claude.messages.create(
        model="claude-sonnet-4-6", max_tokens=100, messages=HI, stream=True)]
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert "content_block_delta" in events
    with claude.messages.stream(model="claude-sonnet-4-6", max_tokens=100,
                                messages=HI) as stream:
        assert stream.get_final_text() == "ok"
    assert_forwarded_unchanged(env, sent, count=2)
    assert all(json.loads(r.body)["stream"] is True for r in env.standin.requests)


def test_anthropic_count_tokens_passes_unchanged(env, sent, claude):
    content = [{"type": "text", "text": "what is this?"},
               {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                            "data": PNG_B64}}]
    count = claude.messages.count_tokens(model="claude-sonnet-4-6",
                                         messages=[{"role": "user", "content": content}])
    assert count.input_tokens == 3
    assert_forwarded_unchanged(env, sent)
    assert env.standin.requests[0].path == "/v1/messages/count_tokens"


IMAGE_MESSAGE = [{"role": "user", "content": [
    {"type": "text", "text": "what is this?"},
    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
]}]
TOOL = {"name": "get_weather", "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}

ANTHROPIC_REFUSALS = {
    "unknown_slug": (
        "create", dict(model="claude-sonnet-4.6", max_tokens=100, messages=HI),
        "unsupported_model", ["claude-sonnet-4.6", "did you mean", "claude-sonnet-4-6"]),
    "image_to_text_only": (
        "create", dict(model="deepseek-v4-pro", max_tokens=100, messages=IMAGE_MESSAGE),
        "unsupported_capability", ["deepseek-v4-pro", "vision", "messages[0].content[1]"]),
    "tools_to_no_tools": (
        "create", dict(model="minimax-m2-5", max_tokens=100, messages=HI, tools=[TOOL]),
        "unsupported_capability", ["minimax-m2-5", "tool_use", "tools"]),
    "thinking_to_non_thinking": (
        "create", dict(model="claude-haiku-4-5", max_tokens=4096, messages=HI,
                       thinking={"type": "enabled", "budget_tokens": 2048}),
        "unsupported_capability", ["claude-haiku-4-5", "thinking"]),
    "stream_to_non_streaming": (
        "create", dict(model="minimax-m2-5", max_tokens=100, messages=HI, stream=True),
        "unsupported_capability", ["minimax-m2-5", "streaming", "stream"]),
    "output_cap_too_high": (
        "create", dict(model="claude-sonnet-4-6", max_tokens=8193, messages=HI),
        "invalid_request_error", ["max_tokens", "8193", "8192", "claude-sonnet-4-6"]),
    "count_tokens_image_to_no_vision": (
        "count_tokens", dict(model="glm-5", messages=IMAGE_MESSAGE),
        "unsupported_capability", ["glm-5", "vision", "messages[0].content[1]"]),
}


@pytest.mark.parametrize("case", list(ANTHROPIC_REFUSALS))
def test_anthropic_refusals_raise_sdk_error(env, sent, claude, case):
    method, kwargs, token, words = ANTHROPIC_REFUSALS[case]
    with pytest.raises(anthropic.BadRequestError) as info:
        getattr(claude.messages, method)(**kwargs)
    e = info.value
    assert e.status_code == 400
    assert e.body["type"] == "error"
    assert e.body["error"]["type"] == token
    assert e.type == token
    message = e.body["error"]["message"]
    for word in words:
        assert word.lower() in message.lower(), (word, message)
    assert e.response.headers["content-type"].startswith("application/json")
    assert_nothing_forwarded(env, sent)


def test_anthropic_stream_helper_refused_before_upstream(env, sent, claude):
    with pytest.raises(anthropic.BadRequestError) as info, claude.messages.stream(
            model="minimax-m2-5", max_tokens=100, messages=HI):
        pass
    assert info.value.type == "unsupported_capability"
    assert_nothing_forwarded(env, sent)


ANTHROPIC_OFF_SWITCHES = {
    "thinking_disabled": dict(model="claude-haiku-4-5", max_tokens=100, messages=HI,
                              thinking={"type": "disabled"}),
    "tool_choice_none": dict(model="minimax-m2-5", max_tokens=100, messages=HI, tools=[TOOL],
                             tool_choice={"type": "none"}),
    "stream_false": dict(model="minimax-m2-5", max_tokens=100, messages=HI, stream=False),
    "cap_at_limit": dict(model="claude-sonnet-4-6", max_tokens=8192, messages=HI),
}


@pytest.mark.parametrize("case", list(ANTHROPIC_OFF_SWITCHES))
def test_anthropic_off_switches_pass(env, sent, claude, case):
    msg = claude.messages.create(**ANTHROPIC_OFF_SWITCHES[case])
    assert msg.content[0].text == "ok"
    assert_forwarded_unchanged(env, sent)


# ============================================================================================
# OpenAI
# ============================================================================================


def test_openai_plain_call_passes_unchanged(env, sent, oai):
    completion = oai.chat.completions.create(model="gpt-5-4", messages=HI)
    assert completion.choices[0].message.content == "ok"
    assert_forwarded_unchanged(env, sent)
    assert env.standin.requests[0].path == "/v1/chat/completions"
    assert env.standin.requests[0].header("authorization") == f"Bearer {KEY}"


def test_openai_streaming_passes_unchanged(env, sent, oai):
    chunks = list(oai.chat.completions.create(model="gpt-5-4", messages=HI, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "ok"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert_forwarded_unchanged(env, sent)


def test_openai_image_generation_passes_unchanged(env, sent, oai):
    result = oai.images.generate(model="gpt-image-2", prompt="a cat")
    assert result.data[0].b64_json
    assert_forwarded_unchanged(env, sent)
    assert env.standin.requests[0].path == "/v1/images/generations"


OAI_IMAGE = [{"role": "user", "content": [
    {"type": "text", "text": "what is this?"},
    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
]}]
OAI_TOOL = {"type": "function", "function": {
    "name": "get_weather", "parameters": {"type": "object",
                                          "properties": {"city": {"type": "string"}}}}}

OPENAI_REFUSALS = {
    "unknown_slug": (
        "chat", dict(model="gpt-5.4", messages=HI),
        "unsupported_model", "model", ["gpt-5.4", "did you mean", "gpt-5-4"]),
    "image_to_text_only": (
        "chat", dict(model="gpt-5-4-nano", messages=OAI_IMAGE),
        "unsupported_capability", "messages[0].content[1]", ["gpt-5-4-nano", "vision"]),
    "tools_to_no_tools": (
        "chat", dict(model="gpt-5-4-nano", messages=HI, tools=[OAI_TOOL]),
        "unsupported_capability", "tools", ["gpt-5-4-nano", "tool_use"]),
    "thinking_to_non_thinking": (
        "chat", dict(model="gpt-5-4", messages=HI, reasoning_effort="high"),
        "unsupported_capability", "reasoning_effort", ["gpt-5-4", "thinking"]),
    "stream_to_non_streaming": (
        "chat", dict(model="minimax-m2-5", messages=HI, stream=True),
        "unsupported_capability", "stream", ["minimax-m2-5", "streaming"]),
    "output_cap_too_high": (
        "chat", dict(model="gpt-5-4", messages=HI, max_completion_tokens=16385),
        "max_tokens_exceeded", "max_completion_tokens", ["16385", "16384"]),
    "legacy_max_tokens_too_high": (
        "chat", dict(model="gpt-5-4-nano", messages=HI, max_tokens=4097),
        "max_tokens_exceeded", "max_tokens", ["4097", "4096"]),
    "image_generation_to_chat_model": (
        "images", dict(model="gpt-5-4", prompt="a cat"),
        "unsupported_capability", "model", ["gpt-5-4", "image_gen"]),
    "image_generation_unknown_model": (
        "images", dict(model="gpt-image-2.0", prompt="a cat"),
        "unsupported_model", "model", ["gpt-image-2.0", "gpt-image-2"]),
}


def _openai_call(oai: openai.OpenAI, kind: str, kwargs: dict):
    if kind == "images":
        return oai.images.generate(**kwargs)
    return oai.chat.completions.create(**kwargs)


@pytest.mark.parametrize("case", list(OPENAI_REFUSALS))
def test_openai_refusals_raise_sdk_error(env, sent, oai, case):
    kind, kwargs, code, param, words = OPENAI_REFUSALS[case]
    with pytest.raises(openai.BadRequestError) as info:
        _openai_call(oai, kind, kwargs)
    e = info.value
    assert e.status_code == 400
    assert e.code == code
    assert e.param == param
    assert e.type == "invalid_request_error"
    for word in words:
        assert word.lower() in e.message.lower(), (word, e.message)
    if code == "unsupported_capability":
        assert param in e.message  # the message names the path too
    assert_nothing_forwarded(env, sent)


def test_openai_capability_message_suggests_at_most_three_models(env, sent, oai):
    """§5: the message names up to three models that have every needed capability."""
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(model="gpt-5-4-nano", messages=OAI_IMAGE)
    match = re.search(r"needs: (.*)\.$", info.value.message)
    assert match, info.value.message
    suggested = [m.strip() for m in match.group(1).split(",")]
    default = Catalog.default()
    assert all(default.get(m) is not None for m in suggested)
    assert 1 <= len(suggested) <= 3, suggested


OPENAI_OFF_SWITCHES = {
    "tool_choice_none": dict(model="gpt-5-4-nano", messages=HI, tools=[OAI_TOOL],
                             tool_choice="none"),
    "reasoning_effort_none": dict(model="gpt-5-4", messages=HI, reasoning_effort="none"),
    "stream_false": dict(model="minimax-m2-5", messages=HI, stream=False),
    "logprobs_false": dict(model="gpt-5-4-nano", messages=HI, logprobs=False),
    "json_object_mode": dict(model="gpt-5-4-nano", messages=HI,
                             response_format={"type": "json_object"}),
    "cap_at_limit": dict(model="gpt-5-4", messages=HI, max_completion_tokens=16384),
}


@pytest.mark.parametrize("case", list(OPENAI_OFF_SWITCHES))
def test_openai_off_switches_pass(env, sent, oai, case):
    completion = oai.chat.completions.create(**OPENAI_OFF_SWITCHES[case])
    assert completion.choices[0].message.content == "ok"
    assert_forwarded_unchanged(env, sent)


# ============================================================================================
# Gemini (google-genai), on v1beta and v1
# ============================================================================================


def test_gemini_plain_call_passes_unchanged(env, sent, gem):
    response = gem.models.generate_content(model="gemini-3-flash", contents="hi")
    assert response.text == "ok"
    assert_forwarded_unchanged(env, sent)
    assert re.fullmatch(r"/v1(beta)?/models/gemini-3-flash:generateContent",
                        env.standin.requests[0].path)


def test_gemini_streaming_passes_unchanged(env, sent, gem):
    chunks = list(gem.models.generate_content_stream(model="gemini-3-flash", contents="hi"))
    assert "".join(c.text for c in chunks) == "ok!"
    assert_forwarded_unchanged(env, sent)
    request = env.standin.requests[0]
    assert request.path.endswith(":streamGenerateContent")
    assert "alt=sse" in request.query


def test_gemini_count_tokens_passes_unchanged(env, sent, gem):
    contents = ["what is this?", types.Part.from_bytes(data=PNG, mime_type="image/png")]
    assert gem.models.count_tokens(model="gemini-3-flash", contents=contents).total_tokens == 3
    assert_forwarded_unchanged(env, sent)
    assert env.standin.requests[0].path.endswith("/models/gemini-3-flash:countTokens")


def _image_contents(mime: str = "image/png") -> list:
    return ["what is this?", types.Part.from_bytes(data=PNG, mime_type=mime)]


GEMINI_TOOLS = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[
    types.FunctionDeclaration(name="get_weather", description="Weather for a city",
                              parameters_json_schema={"type": "object"})])])

GEMINI_REFUSALS = {
    "unknown_slug": (
        "generate", dict(model="gemini-3.1-pro", contents="hi"),
        "UNSUPPORTED_MODEL", None, None, ["gemini-3.1-pro", "did you mean", "gemini-3-1-pro"]),
    "image_to_text_only": (
        "generate", dict(model="glm-5", contents=_image_contents()),
        "UNSUPPORTED_CAPABILITY", "vision", "contents[0].parts[1]", ["glm-5", "vision"]),
    "video_to_flash": (
        "generate", dict(model="gemini-3-flash", contents=_image_contents("video/mp4")),
        "UNSUPPORTED_CAPABILITY", "video", "contents[0].parts[1]", ["gemini-3-flash", "video"]),
    "tools_to_no_tools": (
        "generate", dict(model="minimax-m2-5", contents="hi", config=GEMINI_TOOLS),
        "UNSUPPORTED_CAPABILITY", "tool_use", "tools", ["minimax-m2-5", "tool_use"]),
    "thinking_to_non_thinking": (
        "generate", dict(model="gpt-5-4", contents="hi", config=types.GenerateContentConfig(
            thinking_config=types.ThinkingConfig(thinking_budget=1024))),
        "UNSUPPORTED_CAPABILITY", "thinking", "generationConfig", ["gpt-5-4", "thinking"]),
    "stream_to_non_streaming": (
        "stream", dict(model="minimax-m2-5", contents="hi"),
        "UNSUPPORTED_CAPABILITY", "streaming", "streamGenerateContent",
        ["minimax-m2-5", "streaming"]),
    "output_cap_too_high": (
        "generate", dict(model="gemini-3-flash", contents="hi",
                         config=types.GenerateContentConfig(max_output_tokens=65537)),
        "MAX_TOKENS_EXCEEDED", None, "generationConfig.maxOutputTokens", ["65537", "65536"]),
    "count_tokens_image_to_no_vision": (
        "count", dict(model="glm-5", contents=_image_contents()),
        "UNSUPPORTED_CAPABILITY", "vision", "contents[0].parts[1]", ["glm-5", "vision"]),
}


def _gemini_call(gem: genai.Client, kind: str, kwargs: dict):
    if kind == "stream":
        return list(gem.models.generate_content_stream(**kwargs))
    if kind == "count":
        return gem.models.count_tokens(**kwargs)
    return gem.models.generate_content(**kwargs)


@pytest.mark.parametrize("case", list(GEMINI_REFUSALS))
def test_gemini_refusals_raise_sdk_error(env, sent, gem, case):
    kind, kwargs, reason, capability, path, words = GEMINI_REFUSALS[case]
    with pytest.raises(genai_errors.ClientError) as info:
        _gemini_call(gem, kind, kwargs)
    e = info.value
    assert e.code == 400
    assert e.status == "INVALID_ARGUMENT"
    error = e.details["error"]
    assert error["code"] == 400
    detail = error["details"][0]
    assert detail["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert detail["reason"] == reason
    assert detail["domain"] == "modelguard"
    meta = detail["metadata"]
    assert meta["model"] == kwargs["model"]
    assert all(isinstance(v, str) for v in meta.values())
    if capability is not None:
        assert meta["capability"] == capability
    if path is not None:
        # §5 names the part (contents[0].parts[1]); a sub-path of it names it too.
        assert meta["path"] == path or meta["path"].startswith(path + "."), meta
    for word in words:
        assert word.lower() in e.message.lower(), (word, e.message)
    assert_nothing_forwarded(env, sent)


GEMINI_OFF_SWITCHES = {
    "thinking_budget_0": ("gpt-5-4", types.GenerateContentConfig(
        thinking_config=types.ThinkingConfig(thinking_budget=0))),
    "function_calling_none": ("minimax-m2-5", types.GenerateContentConfig(
        tools=GEMINI_TOOLS.tools, tool_config=types.ToolConfig(
            function_calling_config=types.FunctionCallingConfig(mode="NONE")))),
    "not_streaming": ("minimax-m2-5", None),
    "json_mode_without_schema": ("minimax-m2-5", types.GenerateContentConfig(
        response_mime_type="application/json")),
    "cap_at_limit": ("gemini-3-flash", types.GenerateContentConfig(max_output_tokens=65536)),
}


@pytest.mark.parametrize("case", list(GEMINI_OFF_SWITCHES))
def test_gemini_off_switches_pass(env, sent, gem, case):
    model, config = GEMINI_OFF_SWITCHES[case]
    assert gem.models.generate_content(model=model, contents="hi", config=config).text == "ok"
    assert_forwarded_unchanged(env, sent)


# ============================================================================================
# Bytes the guard must not normalise (an SDK's own JSON would survive a re-serialisation)
# ============================================================================================

ODD_BODIES = {
    "/v1/messages": (
        b'{ "model" :"claude-sonnet-4-6",\n\t"max_tokens": 1.0e2, "messages":[{"role":"user",'
        b'"content":"caf\\u00e9 \xe2\x98\x95"}] , "metadata": {"z": 1, "a": [ ]}}\n'),
    "/v1/chat/completions": (
        b'{"messages":[{"content":"\\ud83d\\ude00","role":"user"}],\r\n"model":"gpt-5-4",'
        b'"temperature":0.70000, "extra":{"k":null}}'),
    "/v1beta/models/gemini-3-flash:generateContent": (
        b'{"contents":[{"role":"user","parts":[{"text":"h\\/i"}]}],'
        b'"generation_config":{"maxOutputTokens":"100"}}   '),
}


@pytest.mark.parametrize("path", list(ODD_BODIES))
def test_raw_bytes_arrive_exactly(env, path):
    body = ODD_BODIES[path]
    response = httpx2.post(env.url + path, content=body, timeout=TIMEOUT,
                          headers={"content-type": "application/json", "x-api-key": KEY})
    assert response.status_code == 200, response.text
    (request,) = env.standin.requests
    assert request.body == body
    assert request.header("content-length") == str(len(body))
