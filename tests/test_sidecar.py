"""``modelguard serve``: the guarded sidecar, over real HTTP (uvicorn on 127.0.0.1).

The stand-in upstream and gateway are real servers; the official SDKs talk to the sidecar as
they would to the gateway. Allowed calls come back exactly as from the stand-in directly,
streams arrive chunk by chunk, refusals raise each SDK's own error and reach nothing upstream,
everything else passes through unchanged, and no key shows up in logs or metrics.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import modelguard
from modelguard.cli import main
from modelguard.serve.sidecar import create_app, mask_target

from .conftest import model_entry
from .gateway import Gateway
from .upstream import RecordedRequest, StandIn, serve

TIMEOUT = 10.0
KEY = "sk-sidecar-test-key-0001"
CATALOG_FILE = Path(modelguard.__file__).parent / "data" / "catalog.json"
HI = [{"role": "user", "content": "hi"}]
TIMING = re.compile(r"^modelguard;dur=\d+(\.\d+)?$")
SERVE = {"access_log": False}  # as `modelguard serve` runs it: modelguard.access logs instead


def _handler(req: RecordedRequest) -> Response | None:
    """Extra stand-in answers for these tests (the defaults otherwise)."""
    if req.path == "/custom/error":
        return Response(b'{"error": {"message": "slow down", "code": 42}}', status_code=429,
                        media_type="application/json",
                        headers={"retry-after": "7", "x-upstream": "yes",
                                 "keep-alive": "timeout=5", "proxy-authenticate": "Basic"})
    if req.path == "/custom/cookie":
        return JSONResponse({"ok": True}, headers={"set-cookie": "session=abc; Path=/"})
    fail = req.header("x-standin-fail")
    if fail:
        body = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
        return JSONResponse(body, status_code=int(fail))
    return None


@dataclass
class Env:
    standin: StandIn
    direct: str   # the stand-in itself
    url: str      # the sidecar in front of it
    app: Any


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    standin = StandIn(handler=_handler)
    with serve(standin.app) as upstream:
        app = create_app(upstream.url, str(CATALOG_FILE), read_timeout=TIMEOUT)
        with serve(app, **SERVE) as sidecar:
            yield Env(standin, upstream.url, sidecar.url, app)


@pytest.fixture(autouse=True)
def _fresh(request: pytest.FixtureRequest) -> None:
    if "env" in request.fixturenames:
        request.getfixturevalue("env").standin.clear()


@dataclass
class Gated:
    standin: StandIn
    gate: threading.Event
    url: str


@pytest.fixture(scope="module")
def gated() -> Iterator[Gated]:
    """A stand-in that streams with small pauses and holds its last chunk until the gate."""
    gate = threading.Event()
    standin = StandIn(stream_delay=0.01, stream_gate=gate, gate_timeout=10.0)
    with serve(standin.app) as upstream, \
            serve(create_app(upstream.url, str(CATALOG_FILE)), **SERVE) as sidecar:
        yield Gated(standin, gate, sidecar.url)
        gate.set()


@pytest.fixture
def fresh_gated(gated: Gated) -> Iterator[Gated]:
    gated.gate.clear()
    gated.standin.clear()
    try:
        yield gated
    finally:
        gated.gate.set()  # never leave a stream waiting


def claude_at(url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key=KEY, max_retries=0, timeout=TIMEOUT)


def oai_at(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0, timeout=TIMEOUT)


def gem_at(url: str) -> genai.Client:
    return genai.Client(api_key=KEY, http_options=types.HttpOptions(
        base_url=url, api_version="v1beta", timeout=int(TIMEOUT * 1000)))


def dump(obj: Any) -> Any:
    """An SDK object as data, without the per-response HTTP headers genai keeps."""
    return obj.model_dump(exclude={"sdk_http_response"})


def guarded(env: Env) -> list[RecordedRequest]:
    return env.standin.requests


def metrics_of(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The sidecar's metrics once nothing is in flight (a request is counted just after its
    response went out, so the client can be a moment ahead)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        text = httpx.get(url + "/metrics", timeout=TIMEOUT).text
        out = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        if out.get(("modelguard_in_flight_requests", ())) == 0 or time.monotonic() > deadline:
            return out
        time.sleep(0.01)


def access_lines(caplog: pytest.LogCaptureFixture, count: int) -> list[dict[str, Any]]:
    """The first ``count`` access-log lines, waiting (bounded) for the server to write them."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        lines = [json.loads(r.getMessage()) for r in caplog.records
                 if r.name == "modelguard.access"]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.01)


def sample(metrics: dict, name: str, **labels: str) -> float:
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ============================================================================================
# The SDKs through the sidecar: same answers as from the stand-in directly
# ============================================================================================


def test_anthropic_calls_match_direct(env):
    via, direct = claude_at(env.url), claude_at(env.direct)
    kwargs = dict(model="claude-sonnet-4-6", max_tokens=100, messages=HI)
    assert dump(via.messages.create(**kwargs)) == dump(direct.messages.create(**kwargs))
    streamed = [dump(e) for e in via.messages.create(**kwargs, stream=True)]
    assert streamed == [dump(e) for e in direct.messages.create(**kwargs, stream=True)]
    assert streamed[0]["type"] == "message_start" and streamed[-1]["type"] == "message_stop"
    with via.messages.stream(**kwargs) as stream:
        assert stream.get_final_text() == "ok"
    count = via.messages.count_tokens(model="claude-sonnet-4-6", messages=HI)
    assert count.input_tokens == 3
    got = guarded(env)
    assert [r.path for r in got] == ["/v1/messages"] * 5 + ["/v1/messages/count_tokens"]
    via_requests = [got[0], got[2], got[4], got[5]]
    assert all(KEY in (r.header("x-api-key"), (r.header("authorization") or "")[7:])
               for r in via_requests)


def test_openai_calls_match_direct(env):
    via, direct = oai_at(env.url), oai_at(env.direct)
    kwargs = dict(model="gpt-5-4", messages=HI)
    assert dump(via.chat.completions.create(**kwargs)) == \
        dump(direct.chat.completions.create(**kwargs))
    streamed = [dump(c) for c in via.chat.completions.create(**kwargs, stream=True)]
    assert streamed == [dump(c) for c in direct.chat.completions.create(**kwargs, stream=True)]
    assert "".join(c["choices"][0]["delta"]["content"] or "" for c in streamed) == "ok"
    image = via.images.generate(model="gpt-image-2", prompt="a cat")
    assert image.data[0].b64_json
    got = guarded(env)
    assert [r.path for r in got] == ["/v1/chat/completions"] * 4 + ["/v1/images/generations"]
    assert got[0].header("authorization") == f"Bearer {KEY}"


def test_gemini_calls_match_direct(env):
    via, direct = gem_at(env.url), gem_at(env.direct)
    kwargs = dict(model="gemini-3-flash", contents="hi")
    plain = via.models.generate_content(**kwargs)
    assert plain.text == "ok"
    assert dump(plain) == dump(direct.models.generate_content(**kwargs))
    streamed = [dump(c) for c in via.models.generate_content_stream(**kwargs)]
    assert streamed == [dump(c) for c in direct.models.generate_content_stream(**kwargs)]
    assert len(streamed) == 2
    assert via.models.count_tokens(**kwargs).total_tokens == 3
    got = guarded(env)
    assert got[0].path == "/v1beta/models/gemini-3-flash:generateContent"
    assert got[2].path.endswith(":streamGenerateContent") and "alt=sse" in got[2].query
    assert got[0].header("x-goog-api-key") == KEY


@pytest.mark.parametrize("path, body", [
    ("/v1/messages", {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": HI,
                      "stream": True}),
    ("/v1/chat/completions", {"model": "gpt-5-4", "messages": HI, "stream": True}),
    ("/v1beta/models/gemini-3-flash:streamGenerateContent?alt=sse",
     {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
])
def test_stream_bytes_and_headers_identical(env, path, body):
    headers = {"x-api-key": KEY, "content-type": "application/json"}
    raw = json.dumps(body).encode()
    direct = httpx.post(env.direct + path, content=raw, headers=headers, timeout=TIMEOUT)
    via = httpx.post(env.url + path, content=raw, headers=headers, timeout=TIMEOUT)
    assert via.status_code == direct.status_code == 200
    assert via.content == direct.content
    for name in ("content-type", "cache-control"):
        assert via.headers[name] == direct.headers[name]
    assert TIMING.match(via.headers["server-timing"])
    first, second = env.standin.requests
    assert first.body == second.body == raw


# -- refusals -----------------------------------------------------------------------------------


def test_anthropic_refusal_is_the_sdks_error_and_nothing_is_forwarded(env):
    with pytest.raises(anthropic.BadRequestError) as info:
        claude_at(env.url).messages.create(model="claude-sonnet-4.6", max_tokens=10,
                                           messages=HI)
    assert info.value.type == "unsupported_model"
    assert "did you mean" in info.value.body["error"]["message"].lower()
    assert TIMING.match(info.value.response.headers["server-timing"])
    claude = claude_at(env.url)
    with pytest.raises(anthropic.BadRequestError) as info, claude.messages.stream(
            model="minimax-m2-5", max_tokens=10, messages=HI):
        pass
    assert info.value.type == "unsupported_capability"
    assert env.standin.requests == []


def test_openai_refusal_is_the_sdks_error_and_nothing_is_forwarded(env):
    with pytest.raises(openai.BadRequestError) as info:
        oai_at(env.url).chat.completions.create(model="minimax-m2-5", messages=HI,
                                                stream=True)
    assert (info.value.code, info.value.param) == ("unsupported_capability", "stream")
    with pytest.raises(openai.BadRequestError) as info:
        oai_at(env.url).images.generate(model="gpt-5-4", prompt="a cat")
    assert info.value.code == "unsupported_capability"
    assert env.standin.requests == []


def test_gemini_refusal_is_the_sdks_error_and_nothing_is_forwarded(env):
    gem = gem_at(env.url)  # keep a reference: genai closes its HTTP client when collected
    with pytest.raises(genai_errors.ClientError) as info:
        list(gem.models.generate_content_stream(model="minimax-m2-5", contents="hi"))
    detail = info.value.details["error"]["details"][0]
    assert (info.value.code, detail["reason"]) == (400, "UNSUPPORTED_CAPABILITY")
    assert detail["metadata"]["path"] == "streamGenerateContent"
    with pytest.raises(genai_errors.ClientError) as info:
        gem.models.generate_content(model="gemini-3.1-pro", contents="hi")
    assert info.value.details["error"]["details"][0]["reason"] == "UNSUPPORTED_MODEL"
    assert env.standin.requests == []


def test_upstream_errors_pass_through_to_the_sdk(env):
    """An allowed call the upstream answers with an error: status and body as the upstream's."""
    client = anthropic.Anthropic(base_url=env.url, api_key=KEY, max_retries=0,
                                 timeout=TIMEOUT, default_headers={"x-standin-fail": "529"})
    with pytest.raises(anthropic.APIStatusError) as info:
        client.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=HI)
    assert info.value.status_code == 529
    assert info.value.body == {"type": "error",
                               "error": {"type": "overloaded_error", "message": "busy"}}
    assert len(env.standin.requests) == 1


# ============================================================================================
# Streaming: chunk by chunk, and a client that leaves cancels the upstream
# ============================================================================================


def _open_stream(sdk: str, client: Any) -> Iterator[Any]:
    if sdk == "anthropic":
        return iter(client.messages.create(model="claude-sonnet-4-6", max_tokens=10,
                                           messages=HI, stream=True))
    if sdk == "openai":
        return iter(client.chat.completions.create(model="gpt-5-4", messages=HI, stream=True))
    return iter(client.models.generate_content_stream(model="gemini-3-flash", contents="hi"))


SDK_CLIENTS = {"anthropic": claude_at, "openai": oai_at, "google-genai": gem_at}


@pytest.mark.parametrize("sdk", list(SDK_CLIENTS))
def test_chunks_arrive_before_the_upstream_sends_its_last(fresh_gated, sdk):
    g = fresh_gated
    client = SDK_CLIENTS[sdk](g.url)
    events = _open_stream(sdk, client)
    first = next(events)
    # The stand-in is still holding its last chunk (it waits for the gate): the first chunk
    # came through the sidecar on its own, not after a buffered whole.
    assert g.standin.stream_outcomes == []
    g.gate.set()
    rest = list(events)
    assert first is not None and rest
    assert g.standin.wait_streams(1, TIMEOUT) == ["completed"]


def test_client_disconnect_cancels_the_upstream_stream(fresh_gated):
    g = fresh_gated
    body = {"model": "gpt-5-4", "messages": HI, "stream": True}
    with httpx.Client(timeout=TIMEOUT) as client, client.stream(
            "POST", g.url + "/v1/chat/completions", json=body,
            headers={"authorization": f"Bearer {KEY}"}) as response:
        assert response.status_code == 200
        first = next(response.iter_raw())
        assert first.startswith(b"data: ")
    # The client is gone while the stand-in still holds its last chunk: the sidecar drops the
    # upstream request, and the stand-in's stream is cancelled rather than completed.
    assert g.standin.wait_streams(1, TIMEOUT) == ["cancelled"]


# ============================================================================================
# Everything else passes through unchanged
# ============================================================================================


def test_models_listing_and_other_routes_pass_unchanged(env):
    direct = httpx.get(env.direct + "/v1/models", timeout=TIMEOUT)
    via = httpx.get(env.url + "/v1/models", headers={"x-api-key": KEY}, timeout=TIMEOUT)
    assert (via.status_code, via.content) == (direct.status_code, direct.content)
    payload = b"\x00\x01 binary \xff"
    put = httpx.put(env.url + "/v1/files/abc?purpose=x", content=payload, timeout=TIMEOUT,
                    headers={"content-type": "application/octet-stream", "x-api-key": KEY})
    assert put.json() == {"ok": True, "method": "PUT", "path": "/v1/files/abc"}
    post = httpx.post(env.url + "/healthz", content=b"{}", timeout=TIMEOUT)  # not ours
    assert post.json() == {"error": {"message": "stand-in: no route /healthz"}}
    _, listing, upload, health = env.standin.requests
    assert (listing.method, listing.path, listing.header("x-api-key")) == \
        ("GET", "/v1/models", KEY)
    assert (upload.method, upload.path, upload.query, upload.body) == \
        ("PUT", "/v1/files/abc", "purpose=x", payload)
    assert upload.header("content-length") == str(len(payload))
    assert (health.method, health.path) == ("POST", "/healthz")


@pytest.mark.parametrize("chunked", [False, True])
def test_a_large_guarded_body_arrives_byte_for_byte(env, chunked):
    body = json.dumps({"model": "gpt-5-4", "messages": [
        {"role": "user", "content": "x" * 300_000}]}).encode()
    content: Any = body
    if chunked:
        content = iter([body[:100_000], body[100_000:]])  # sent with transfer-encoding
    response = httpx.post(env.url + "/v1/chat/completions", content=content, timeout=TIMEOUT,
                          headers={"authorization": f"Bearer {KEY}"})
    assert response.status_code == 200
    (request,) = env.standin.requests
    assert request.body == body
    assert request.header("transfer-encoding" if chunked else "content-length") == \
        ("chunked" if chunked else str(len(body)))


def test_head_passes_through(env):
    direct = httpx.head(env.direct + "/v1/models", timeout=TIMEOUT)
    via = httpx.head(env.url + "/v1/models", timeout=TIMEOUT)
    assert via.status_code == direct.status_code == 200
    assert via.content == b""
    assert via.headers["content-length"] == direct.headers["content-length"]
    assert [r.method for r in env.standin.requests] == ["HEAD", "HEAD"]


async def test_a_body_in_parts_is_forwarded_as_it_comes():
    """An unguarded upload arriving in several ASGI messages streams on (no buffering)."""
    seen = []

    async def upstream(request: httpx2.Request) -> httpx2.Response:
        seen.append((request.method, request.headers.get("transfer-encoding"),
                     request.headers.get("content-length"), await request.aread()))
        return httpx2.Response(201, stream=httpx2.ByteStream(b"stored"))

    app = create_app("http://upstream.test", str(CATALOG_FILE),
                     transport=httpx2.MockTransport(upstream))

    async def parts() -> Any:
        yield b"part-1;"
        yield b"part-2"

    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://sidecar.test") as client:
            response = await client.put("/v1/uploads/u1", content=parts())
    finally:
        await app.state.sidecar.aclose()
    assert (response.status_code, response.content) == (201, b"stored")
    assert seen == [("PUT", "chunked", None, b"part-1;part-2")]


def test_encoded_path_and_query_arrive_as_sent(env):
    target = "/v1/files/a%2Fb%20c/x%3Ay?q=a%2Fb&plus=1+2&empty="
    response = httpx.get(env.url + target, timeout=TIMEOUT)
    assert response.status_code == 200
    (request,) = env.standin.requests
    assert request.raw_path == b"/v1/files/a%2Fb%20c/x%3Ay"
    assert request.query == "q=a%2Fb&plus=1+2&empty="


def test_hop_by_hop_headers_dropped_and_credentials_kept(env):
    headers = [("connection", "keep-alive, x-hop"), ("x-hop", "1"), ("keep-alive", "timeout=5"),
               ("te", "trailers"), ("proxy-authorization", "Basic cHJveHk6cHc="),
               ("x-custom", "kept"), ("x-api-key", KEY), ("authorization", f"Bearer {KEY}"),
               ("anthropic-version", "2023-06-01"), ("user-agent", "test-agent/1"),
               ("accept-encoding", "identity")]
    body = json.dumps({"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": HI})
    response = httpx.post(env.url + "/v1/messages", content=body, headers=headers,
                          timeout=TIMEOUT)
    assert response.status_code == 200
    (request,) = env.standin.requests
    names = {name for name, _ in request.headers}
    assert names.isdisjoint({"connection", "x-hop", "keep-alive", "te", "proxy-authorization",
                             "transfer-encoding", "upgrade"})
    assert request.header("x-custom") == "kept"
    # The caller's own headers, not the proxy client's defaults.
    assert request.header("user-agent") == "test-agent/1"
    assert request.header("accept-encoding") == "identity"
    assert request.header("x-api-key") == KEY
    assert request.header("authorization") == f"Bearer {KEY}"
    assert request.header("host") == env.direct.removeprefix("http://")
    assert request.header("content-length") == str(len(body))


def test_connection_cannot_strip_the_key_the_guard_checked(env):
    """A Connection option naming a header the guard reads is ignored, not obeyed."""
    headers = {"connection": "x-api-key", "x-api-key": KEY,
               "content-type": "application/json"}
    body = json.dumps({"model": "gpt-5-4", "messages": HI})
    assert httpx.post(env.url + "/v1/chat/completions", content=body, headers=headers,
                      timeout=TIMEOUT).status_code == 200
    assert env.standin.requests[0].header("x-api-key") == KEY


def test_upstream_status_headers_and_error_body_pass_unchanged(env):
    direct = httpx.get(env.direct + "/custom/error", timeout=TIMEOUT)
    via = httpx.get(env.url + "/custom/error", timeout=TIMEOUT)
    assert via.status_code == direct.status_code == 429
    assert via.content == direct.content
    assert via.headers["retry-after"] == "7" and via.headers["x-upstream"] == "yes"
    assert "keep-alive" not in via.headers and "proxy-authenticate" not in via.headers
    assert TIMING.match(via.headers["server-timing"])


def test_upstream_cookies_reach_the_caller_and_are_never_kept(env):
    first = httpx.get(env.url + "/custom/cookie", timeout=TIMEOUT)
    assert first.headers["set-cookie"] == "session=abc; Path=/"
    httpx.get(env.url + "/v1/models", timeout=TIMEOUT)  # another caller
    assert env.standin.requests[-1].header("cookie") is None
    assert len(env.app.state.sidecar.client.cookies.jar) == 0


# ============================================================================================
# Failures upstream: 502, 504, a stream cut short
# ============================================================================================


def test_unreachable_upstream_is_502_in_the_protocols_shape():
    app = create_app(f"http://127.0.0.1:{free_port()}", str(CATALOG_FILE), connect_timeout=2)
    with serve(app, **SERVE) as sidecar:
        with pytest.raises(anthropic.InternalServerError) as info:
            claude_at(sidecar.url).messages.create(model="claude-sonnet-4-6", max_tokens=10,
                                                   messages=HI)
        assert info.value.status_code == 502
        assert info.value.body["error"]["type"] == "api_error"
        listing = httpx.get(sidecar.url + "/v1/models", timeout=TIMEOUT)
        assert listing.status_code == 502
        assert listing.json()["error"]["code"] == "upstream_unreachable"
        assert TIMING.match(listing.headers["server-timing"])
        metrics = metrics_of(sidecar.url)
    assert sample(metrics, "modelguard_upstream_errors_total", kind="connect") == 2


def test_upstream_timeout_is_504():
    release = threading.Event()

    async def slow(request: Request) -> Response:
        deadline = time.monotonic() + TIMEOUT
        while not release.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return JSONResponse({"late": True})

    upstream_app = Starlette(routes=[Route("/{p:path}", slow, methods=["GET", "POST"])])
    try:
        with serve(upstream_app) as upstream, serve(create_app(
                upstream.url, str(CATALOG_FILE), read_timeout=0.2), **SERVE) as sidecar:
            response = httpx.post(sidecar.url + "/v1/chat/completions", timeout=TIMEOUT,
                                  json={"model": "gpt-5-4", "messages": HI},
                                  headers={"authorization": f"Bearer {KEY}"})
            release.set()  # let the stand-in's handler finish before its server stops
            assert response.status_code == 504
            assert response.json()["error"]["code"] == "upstream_timeout"
            assert sample(metrics_of(sidecar.url), "modelguard_upstream_errors_total",
                          kind="timeout") == 1
    finally:
        release.set()


def test_stream_cut_short_upstream_is_not_passed_off_as_complete():
    gate = threading.Event()
    standin = StandIn(stream_gate=gate, gate_timeout=TIMEOUT)
    try:
        with serve(standin.app) as upstream, serve(create_app(
                upstream.url, str(CATALOG_FILE), read_timeout=0.3), **SERVE) as sidecar:
            body = {"model": "gpt-5-4", "messages": HI, "stream": True}
            received = b""
            with pytest.raises(httpx.RemoteProtocolError), httpx.stream(
                    "POST", sidecar.url + "/v1/chat/completions", json=body, timeout=TIMEOUT,
                    headers={"authorization": f"Bearer {KEY}"}) as response:
                assert response.status_code == 200
                for chunk in response.iter_raw():
                    received += chunk
            assert received.startswith(b"data: ") and b"[DONE]" not in received
            assert standin.wait_streams(1, TIMEOUT) == ["cancelled"]
            assert sample(metrics_of(sidecar.url), "modelguard_upstream_errors_total",
                          kind="timeout") == 1
    finally:
        gate.set()


# ============================================================================================
# Catalog from the gateway (forwarding mode), health, metrics, logs
# ============================================================================================

KEY_A = "sk-sidecar-key-alpha-7788"
KEY_B = "sk-sidecar-key-bravo-9911"
REVOKED = "sk-sidecar-key-revoked-4455"


@dataclass
class GatewayEnv:
    gateway: Gateway
    standin: StandIn
    url: str


@pytest.fixture
def gw() -> Iterator[GatewayEnv]:
    gateway = Gateway()
    gateway.set_models(KEY_A, model_entry("claude-sonnet-4-6", {"streaming"}),
                       model_entry("gemini-3-flash", {"streaming"}, owned_by="google"))
    gateway.set_models(KEY_B, model_entry("gpt-5-4", {"streaming"}, owned_by="openai"))
    standin = StandIn()
    with serve(gateway.app()) as gateway_server, serve(standin.app) as upstream:
        app = create_app(upstream.url, gateway_server.url)
        with serve(app, **SERVE) as sidecar:
            yield GatewayEnv(gateway, standin, sidecar.url)


def test_gateway_catalog_applies_per_caller_key(gw):
    msg = claude_at(gw.url).with_options(api_key=KEY_A).messages.create(
        model="claude-sonnet-4-6", max_tokens=10, messages=HI)
    assert msg.content[0].text == "ok"
    with pytest.raises(anthropic.BadRequestError) as info:
        claude_at(gw.url).with_options(api_key=KEY_B).messages.create(
            model="claude-sonnet-4-6", max_tokens=10, messages=HI)
    assert info.value.type == "unsupported_model"
    assert len(gw.standin.requests) == 1
    assert sorted(gw.gateway.auth_headers) == [f"Bearer {KEY_A}", f"Bearer {KEY_B}"]
    health = httpx.get(gw.url + "/healthz", timeout=TIMEOUT)
    assert health.status_code == 200
    assert health.json()["status"] == "ok" and health.json()["probe_status"] == 401
    metrics = metrics_of(gw.url)
    assert sample(metrics, "modelguard_catalog_fetches_total", outcome="ok") == 2


def test_metrics_count_what_was_sent(env):
    app = create_app(env.direct, str(CATALOG_FILE))
    with serve(app, **SERVE) as sidecar:
        claude = claude_at(sidecar.url)
        for _ in range(2):
            claude.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=HI)
        oai = oai_at(sidecar.url)
        list(oai.chat.completions.create(model="gpt-5-4", messages=HI, stream=True))
        with pytest.raises(openai.BadRequestError):
            oai.chat.completions.create(model="gpt-5.4", messages=HI)
        with pytest.raises(openai.BadRequestError):
            oai.chat.completions.create(model="gpt-5-4-nano", messages=HI, tools=[{
                "type": "function", "function": {"name": "f", "parameters": {}}}])
        refused = httpx.post(sidecar.url + "/v1/chat/completions", content=b"{}",
                             headers={"content-encoding": "br"}, timeout=TIMEOUT)
        assert refused.status_code == 415
        httpx.get(sidecar.url + "/v1/models", timeout=TIMEOUT)
        httpx.get(sidecar.url + "/healthz", timeout=TIMEOUT)  # the sidecar's own: not counted
        metrics = metrics_of(sidecar.url)
    requests = {k: v for k, v in metrics.items() if k[0] == "modelguard_requests_total"}
    assert requests == {
        ("modelguard_requests_total", (("outcome", "allowed"), ("protocol", "anthropic"))): 2,
        ("modelguard_requests_total", (("outcome", "allowed"), ("protocol", "openai"))): 1,
        ("modelguard_requests_total", (("outcome", "rejected"), ("protocol", "openai"))): 3,
        ("modelguard_requests_total", (("outcome", "passthrough"), ("protocol", "none"))): 1,
    }
    rejections = {dict(k[1])["reason"]: (dict(k[1])["model"], v) for k, v in metrics.items()
                  if k[0] == "modelguard_rejections_total"}
    assert rejections == {"unsupported_model": ("other", 1),  # client-chosen: capped
                          "unsupported_capability": ("gpt-5-4-nano", 1),
                          "unsupported_media_type": ("other", 1)}
    assert sample(metrics, "modelguard_guard_seconds_count", protocol="anthropic") == 2
    assert sample(metrics, "modelguard_guard_seconds_count", protocol="openai") == 4
    assert sample(metrics, "modelguard_in_flight_requests") == 0
    assert all(k[0] != "modelguard_catalog_fetches_total" for k in metrics)  # a file catalog



def test_metrics_count_the_same_with_the_access_log_off(env, caplog):
    """With the access log off (``--log-level warning``) no line is built, and every request
    is still counted, under the same labels, each time the same label set comes round again."""
    caplog.set_level(logging.WARNING, logger="modelguard.access")
    app = create_app(env.direct, str(CATALOG_FILE))
    with serve(app, **SERVE) as sidecar:
        claude = claude_at(sidecar.url)
        for _ in range(3):
            claude.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=HI)
        for _ in range(2):
            with pytest.raises(anthropic.BadRequestError):
                claude.messages.create(model="claude-sonnet-4.6", max_tokens=10, messages=HI)
        for _ in range(2):
            assert httpx.get(sidecar.url + "/v1/files", timeout=TIMEOUT).status_code == 200
        quiet = metrics_of(sidecar.url)
        assert not [r for r in caplog.records if r.name == "modelguard.access"]
        caplog.set_level(logging.INFO, logger="modelguard.access")
        claude.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=HI)
        (line,) = access_lines(caplog, 1)
        loud = metrics_of(sidecar.url)
    assert sample(quiet, "modelguard_requests_total", protocol="anthropic", outcome="allowed") == 3
    assert sample(quiet, "modelguard_requests_total", protocol="anthropic",
                  outcome="rejected") == 2
    assert sample(quiet, "modelguard_requests_total", protocol="none", outcome="passthrough") == 2
    assert sample(quiet, "modelguard_route_requests_total", route="/v1/messages",
                  outcome="allowed") == 3
    assert sample(quiet, "modelguard_guard_seconds_count", protocol="anthropic") == 5
    assert sample(quiet, "modelguard_upstream_responses_total", code="200") == 5
    assert sample(loud, "modelguard_requests_total", protocol="anthropic", outcome="allowed") == 4
    assert sample(loud, "modelguard_guard_seconds_count", protocol="anthropic") == 6
    assert line["verdict"] == "allowed" and line["model"] == "claude-sonnet-4-6"
    assert line["status"] == 200 and line["route"] == "/v1/messages"

def test_report_mode_forwards_and_counts_violations(env):
    seen = []
    app = create_app(env.direct, str(CATALOG_FILE), mode="report", on_violation=seen.append)
    with serve(app, **SERVE) as sidecar:
        msg = claude_at(sidecar.url).messages.create(model="claude-sonnet-4.6", max_tokens=10,
                                                     messages=HI)
        assert msg.content[0].text == "ok"
        metrics = metrics_of(sidecar.url)
    assert [v.reason for v in seen] == ["unsupported_model"]  # the user's hook still runs
    assert env.standin.requests[0].json()["model"] == "claude-sonnet-4.6"
    assert sample(metrics, "modelguard_requests_total", protocol="anthropic",
                  outcome="reported") == 1
    assert not any(k[0] == "modelguard_rejections_total" for k in metrics)


def test_no_key_in_logs_or_metrics(gw, caplog):
    caplog.set_level(logging.DEBUG)
    chat = json.dumps({"model": "gpt-5-4", "messages": HI})
    gemini = json.dumps({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    calls = [
        ("/v1/messages", {"x-api-key": KEY_A}, json.dumps(
            {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": HI})),
        ("/v1/chat/completions", {"authorization": f"Bearer {KEY_B}"}, chat),
        ("/v1/chat/completions", {"authorization": f"Bearer {KEY_A}"}, chat),  # refused
        ("/v1beta/models/gemini-3-flash:generateContent", {"x-goog-api-key": KEY_A}, gemini),
        (f"/v1beta/models/gemini-3-flash:generateContent?key={KEY_A}", {}, gemini),
        (f"/v1beta/models/nope:generateContent?alt=json&key={KEY_B}", {}, gemini),  # refused
        ("/v1/chat/completions", {"authorization": f"Bearer {REVOKED}"}, chat),  # 401
    ]
    statuses = []
    for path, headers, body in calls:
        response = httpx.post(gw.url + path, content=body, timeout=TIMEOUT,
                              headers={"content-type": "application/json", **headers})
        statuses.append(response.status_code)
    passthrough = httpx.get(gw.url + f"/v1/files?key={KEY_B}&x=1", timeout=TIMEOUT)
    assert passthrough.status_code == 200
    assert statuses == [200, 200, 400, 200, 200, 400, 401]
    assert gw.standin.requests[-1].query == f"key={KEY_B}&x=1"  # forwarded as sent
    access = access_lines(caplog, len(calls) + 1)
    metrics_text = httpx.get(gw.url + "/metrics", timeout=TIMEOUT).text
    # Every record the servers wrote (this test's own httpx client, in the main thread, logs
    # the URLs it was given, keys included: that is the caller's business, not the sidecar's).
    records = [r for r in caplog.records if r.threadName != threading.main_thread().name]
    assert any(r.name == "modelguard.access" for r in records)
    logs = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in records)
    for key in (KEY_A, KEY_B, REVOKED):
        assert key not in logs
        assert key not in metrics_text
    assert len(access) == len(calls) + 1
    paths = {line["path"] for line in access}
    assert "/v1beta/models/gemini-3-flash:generateContent?key=***" in paths
    assert "/v1beta/models/nope:generateContent?alt=json&key=***" in paths
    assert "/v1/files?key=***&x=1" in paths
    assert any("key=***" in r.getMessage() for r in records if r.name == "httpx2")


def test_access_log_lines_carry_the_verdict(env, caplog):
    caplog.set_level(logging.INFO, logger="modelguard.access")
    oai = oai_at(env.url)
    oai.chat.completions.create(model="gpt-5-4", messages=HI)
    with pytest.raises(openai.BadRequestError):
        oai.chat.completions.create(model="minimax-m2-5", messages=HI, stream=True)
    httpx.delete(env.url + "/v1/files/abc", timeout=TIMEOUT)
    lines = access_lines(caplog, 3)
    # Each line is written just after its response went out, so the order may vary.
    by_verdict = {line["verdict"]: line for line in lines}
    allowed, refused, passthrough = (by_verdict[v] for v in ("allowed", "rejected",
                                                             "passthrough"))
    assert {k: allowed[k] for k in ("method", "path", "status", "protocol", "model", "verdict",
                                    "reason")} == {
        "method": "POST", "path": "/v1/chat/completions", "status": 200, "protocol": "openai",
        "model": "gpt-5-4", "verdict": "allowed", "reason": None}
    assert (refused["status"], refused["verdict"], refused["reason"], refused["model"]) == \
        (400, "rejected", "unsupported_capability", "minimax-m2-5")
    assert (passthrough["method"], passthrough["verdict"], passthrough["protocol"]) == \
        ("DELETE", "passthrough", None)
    assert all(isinstance(line["guard_ms"], float) for line in lines)


def test_mask_target_hides_secret_query_values():
    assert mask_target(b"/v1/x?alt=sse&key=abc&KEY=d&api%5Fkey=e&keys=f") == \
        "/v1/x?alt=sse&key=***&KEY=***&api%5Fkey=***&keys=f"
    assert mask_target("/plain") == "/plain"


# -- health and lifecycle -----------------------------------------------------------------------


def test_healthz_with_a_file_catalog(env):
    health = httpx.get(env.url + "/healthz", timeout=TIMEOUT)
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "catalog": "static", "models": 18}
    assert env.standin.requests == []


def test_healthz_503_when_the_catalog_gateway_is_down():
    app = create_app(f"http://127.0.0.1:{free_port()}", connect_timeout=2)
    with serve(app, **SERVE) as sidecar:
        health = httpx.get(sidecar.url + "/healthz", timeout=TIMEOUT)
    assert health.status_code == 503
    assert health.json()["status"] == "unavailable"


def test_default_catalog_is_the_upstream_with_the_callers_key():
    standin = StandIn(models={"object": "list", "data": [
        model_entry("gpt-5-4", {"streaming"}, owned_by="openai")]})
    with serve(standin.app) as upstream, serve(create_app(upstream.url), **SERVE) as sidecar:
        completion = oai_at(sidecar.url).chat.completions.create(model="gpt-5-4", messages=HI)
        assert completion.choices[0].message.content == "ok"
        anonymous = httpx.post(sidecar.url + "/v1/chat/completions", timeout=TIMEOUT,
                               json={"model": "gpt-5-4", "messages": HI})
        assert anonymous.status_code == 401
        assert anonymous.json()["error"]["code"] == "invalid_api_key"
        health = httpx.get(sidecar.url + "/healthz", timeout=TIMEOUT).json()
    fetch, call = standin.requests[:2]
    assert (fetch.method, fetch.path, fetch.header("authorization")) == \
        ("GET", "/v1/models", f"Bearer {KEY}")
    assert (call.path, call.header("authorization")) == ("/v1/chat/completions", f"Bearer {KEY}")
    assert health["mode"] == "forwarding" and health["status"] == "ok"
    assert len(standin.requests) == 3  # the health probe; the anonymous call went nowhere


def test_client_closed_on_shutdown(env):
    app = create_app(env.direct, str(CATALOG_FILE))
    with serve(app, **SERVE) as sidecar:
        httpx.get(sidecar.url + "/v1/models", timeout=TIMEOUT)
        client = app.state.sidecar.client
        assert client is not None and not client.is_closed
    assert client.is_closed
    assert app.state.sidecar.client is None


def test_bad_upstream_urls_are_refused():
    for bad in ("ftp://x", "http://user:pw@127.0.0.1:1", "127.0.0.1:8080", "http://h/?q=1"):
        with pytest.raises(ValueError):
            create_app(bad, str(CATALOG_FILE))


# ============================================================================================
# The command line
# ============================================================================================


def test_serve_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["serve", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--upstream", "--host", "--port", "--catalog", "--connect-timeout",
                   "--read-timeout"):
        assert option in out


def test_serve_bad_usage_exits_2(capsys, tmp_path):
    assert main(["serve", "--upstream", "ftp://nope"]) == 2
    assert main(["serve", "--upstream", "http://127.0.0.1:1",
                 "--catalog", str(tmp_path / "missing.json")]) == 2
    with pytest.raises(SystemExit) as info:
        main(["serve", "--upstream", "http://127.0.0.1:1", "--read-timeout", "-1"])
    assert info.value.code == 2


def test_python_m_modelguard_serve_answers_healthz(env):
    port = free_port()
    cmd = [sys.executable, "-m", "modelguard", "serve", "--upstream", env.direct,
           "--host", "127.0.0.1", "--port", str(port), "--catalog", str(CATALOG_FILE)]
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        health = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                health = httpx.get(url + "/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        assert health is not None, process.stderr.read().decode() if process.poll() else ""
        assert health.status_code == 200 and health.json()["status"] == "ok"
        via = httpx.get(url + f"/v1/models?key={KEY}", timeout=TIMEOUT)
        assert via.status_code == 200
        assert env.standin.requests[-1].query == f"key={KEY}"
    finally:
        process.terminate()
        try:
            _, err = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate(timeout=5)
    # uvicorn shuts down gracefully, then re-raises the signal it caught (exit -SIGTERM).
    assert process.returncode in (0, -signal.SIGTERM), err.decode()
    assert "Application shutdown complete" in err.decode()
    lines = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    assert len(lines) == len(err.decode().splitlines())  # every line is JSON (--log-format)
    access = [line for line in lines if line["logger"] == "modelguard.access"]
    assert [line["path"] for line in access] == ["/v1/models?key=***"]
    assert KEY not in err.decode()
