"""The middleware contract, in process (decisions.md §1, §8, §9, §10).

A fake ASGI server hands the middleware request messages and records what is sent back; a
fake downstream app records what it receives. Every await is bounded by ``asyncio.wait_for``.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi import Request as FastAPIRequest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from modelguard import Catalog, Guard, ModelGuardMiddleware, Verdict

from .upstream import StandIn

TIMEOUT = 5.0
CATALOG = Catalog.default()

Message = dict[str, Any]

# -- bodies ---------------------------------------------------------------------------------

# Allowed, with formatting a re-serialiser would change.
ANTHROPIC_OK = (b'{ "model":"claude-sonnet-4-6", "max_tokens": 1.0e2,\n "messages": '
                b'[{"role":"user","content":"caf\\u00e9 \xe2\x98\x95"}], '
                b'"metadata": {"b":1,"a":2} }\n')
OPENAI_OK = (b'{"messages":[{"role":"user","content":[{"type":"text","text":"look"},'
             b'{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}],'
             b'\t"model":"gpt-5-4","stream":true ,"temperature":0.50}')
GEMINI_OK = b'{"contents":[{"role":"user","parts":[{"text":"h\\/i"}]}]}   '
# Refused.
UNKNOWN_MODEL = (b'{"model":"claude-sonnet-4.6","max_tokens":10,'
                 b'"messages":[{"role":"user","content":"hi"}]}')
IMAGE_TO_DEEPSEEK = json.dumps({
    "model": "deepseek-v4-pro", "max_tokens": 10,
    "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": "iVBORw0KGgo="}}]}],
}).encode()
MALFORMED = b'{"model":"claude-sonnet-4-6","max_tokens":10,"messages":['

GUARDED = {
    "anthropic": ("/v1/messages", ANTHROPIC_OK),
    "openai": ("/v1/chat/completions", OPENAI_OK),
    "gemini": ("/v1beta/models/gemini-3-flash:generateContent", GEMINI_OK),
}

RESPONSE: list[Message] = [
    {"type": "http.response.start", "status": 200,
     "headers": [(b"content-type", b"application/json")]},
    {"type": "http.response.body", "body": b'{"ok":true}'},
]


# -- the fake server and app ------------------------------------------------------------------


def http_scope(path: str = "/v1/messages", *, method: str = "POST",
               headers: Iterable[tuple[str, str]] = (), root_path: str = "",
               query: bytes = b"") -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": query,
        "root_path": root_path,
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1"))
                    for k, v in [("host", "testserver"), *headers]],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80),
    }


def chunks_of(body: bytes, size: int | str | None) -> list[Message]:
    """The body as ``http.request`` messages of ``size`` bytes (None: one message).

    ``"7+empty"``: 7-byte chunks and then an empty final message, as chunked uploads end.
    """
    if size is None:
        return [{"type": "http.request", "body": body, "more_body": False}]
    if size == "7+empty":
        return [{**m, "more_body": True} for m in chunks_of(body, 7)] + [
            {"type": "http.request", "body": b"", "more_body": False}]
    assert isinstance(size, int)
    parts = [body[i:i + size] for i in range(0, len(body), size)] or [b""]
    return [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1}
            for i, p in enumerate(parts)]


class FakeServer:
    """Plays the ASGI server: hands out queued messages (blocking when none), records sends."""

    def __init__(self, messages: Iterable[Message] = ()) -> None:
        self.queue: asyncio.Queue[Message] = asyncio.Queue()
        for message in messages:
            self.queue.put_nowait(message)
        self.sent: list[Message] = []
        self.receive_calls = 0
        self.receive = self._receive  # one callable object, so identity can be checked
        self.send = self._send

    async def _receive(self) -> Message:
        self.receive_calls += 1
        return await self.queue.get()

    async def _send(self, message: Message) -> None:
        self.sent.append(message)

    def push(self, message: Message) -> None:
        self.queue.put_nowait(message)

    @property
    def status(self) -> int | None:
        return next((m["status"] for m in self.sent if m["type"] == "http.response.start"), None)

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return next((m["headers"] for m in self.sent if m["type"] == "http.response.start"), [])

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent
                        if m["type"] == "http.response.body")

    def json(self) -> Any:
        return json.loads(self.body)


class Downstream:
    """The wrapped app: reads the whole body (and optionally one more message), then answers."""

    def __init__(self, response: list[Message] | None = None, *, read_after: bool = False,
                 read_body: bool = True) -> None:
        self.response = RESPONSE if response is None else response
        self.read_after = read_after
        self.read_body = read_body
        self.calls = 0
        self.scope: dict[str, Any] | None = None
        self.receive: Any = None
        self.send: Any = None
        self.messages: list[Message] = []
        self.after: Message | None = None

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages
                        if m["type"] == "http.request")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.calls += 1
        self.scope, self.receive, self.send = scope, receive, send
        if scope["type"] != "http":
            return
        if self.read_body:
            while True:
                message = await receive()
                self.messages.append(message)
                if message["type"] != "http.request" or not message.get("more_body", False):
                    break
        if self.read_after:
            self.after = await receive()
        for message in self.response:
            await send(message)


async def run(app: Any, scope: dict[str, Any], server: FakeServer) -> None:
    await asyncio.wait_for(app(scope, server.receive, server.send), TIMEOUT)


def guarded(app: Any, **options: Any) -> ModelGuardMiddleware:
    return ModelGuardMiddleware(app, catalog=CATALOG, **options)


# ============================================================================================
# Allowed bodies reach the app byte for byte, however they were chunked
# ============================================================================================


@pytest.mark.parametrize("size", [None, 1, 7, "7+empty"],
                         ids=["one-message", "1-byte", "7-byte", "7-byte-then-empty"])
@pytest.mark.parametrize("protocol", list(GUARDED))
async def test_allowed_body_reaches_app_unchanged(protocol, size):
    path, body = GUARDED[protocol]
    app = Downstream()
    server = FakeServer(chunks_of(body, size))
    scope = http_scope(path, headers=[("content-type", "application/json")])
    await run(guarded(app), scope, server)
    assert app.calls == 1
    assert app.body == body
    assert app.messages[-1]["type"] == "http.request"
    assert app.messages[-1].get("more_body", False) is False
    assert server.sent == RESPONSE


@pytest.mark.parametrize("size", [None, 1, 7], ids=["one-message", "1-byte", "7-byte"])
async def test_later_receive_calls_get_what_the_server_sends(size):
    disconnect = {"type": "http.disconnect"}
    app = Downstream(read_after=True)
    server = FakeServer([*chunks_of(ANTHROPIC_OK, size), disconnect])
    await run(guarded(app), http_scope(), server)
    assert app.body == ANTHROPIC_OK
    assert app.after is disconnect  # the server's own message, not a copy or a synthesised one


async def test_later_receive_waits_for_the_server():
    """After the body, receive() blocks until the server has something, as without the guard."""
    app_waiting = asyncio.Event()
    got: list[Message] = []

    async def app(scope, receive, send):
        while (await receive()).get("more_body"):
            pass
        app_waiting.set()
        got.append(await receive())
        for message in RESPONSE:
            await send(message)

    server = FakeServer(chunks_of(ANTHROPIC_OK, 7))
    task = asyncio.ensure_future(run(guarded(app), http_scope(), server))
    await asyncio.wait_for(app_waiting.wait(), TIMEOUT)
    assert not task.done() and got == []
    late = {"type": "http.disconnect"}
    server.push(late)
    await asyncio.wait_for(task, TIMEOUT)
    assert got[0] is late


# ============================================================================================
# Content-Encoding
# ============================================================================================


@pytest.mark.parametrize("encoding,compress", [
    ("gzip", gzip.compress), ("GZip", gzip.compress), ("deflate", zlib.compress)])
@pytest.mark.parametrize("size", [None, 5])
async def test_compressed_allowed_body_arrives_still_compressed(encoding, compress, size):
    raw = compress(ANTHROPIC_OK)
    app = Downstream()
    server = FakeServer(chunks_of(raw, size))
    scope = http_scope(headers=[("content-type", "application/json"),
                                ("content-encoding", encoding)])
    await run(guarded(app), scope, server)
    assert app.calls == 1
    assert app.body == raw
    assert (b"content-encoding", encoding.encode()) in app.scope["headers"]
    assert app.scope["state"]["modelguard"].model_id == "claude-sonnet-4-6"


@pytest.mark.parametrize("encoding,compress", [("gzip", gzip.compress), ("deflate", zlib.compress)])
async def test_compressed_body_is_inspected(encoding, compress):
    app = Downstream()
    server = FakeServer(chunks_of(compress(IMAGE_TO_DEEPSEEK), 9))
    await run(guarded(app), http_scope(headers=[("content-encoding", encoding)]), server)
    assert app.calls == 0
    assert server.status == 400
    assert server.json()["error"]["type"] == "unsupported_capability"
    assert "vision" in server.json()["error"]["message"]


# ============================================================================================
# Client gone mid-body
# ============================================================================================


@pytest.mark.parametrize("before", [
    [],
    [{"type": "http.request", "body": ANTHROPIC_OK[:10], "more_body": True}],
    chunks_of(ANTHROPIC_OK[:40], 7)[:-1],
], ids=["before-any-body", "after-one-chunk", "after-many-chunks"])
async def test_client_disconnect_mid_body(before):
    app = Downstream()
    server = FakeServer([*before, {"type": "http.disconnect"}])
    await run(guarded(app), http_scope(), server)  # returns (bounded), raises nothing
    assert app.calls == 0
    assert server.sent == []


# ============================================================================================
# What is not guarded passes through untouched and unbuffered
# ============================================================================================

UNGUARDED = [
    ("GET", "/v1/messages"),
    ("POST", "/v1/models"),
    ("POST", "/healthz"),
    ("PUT", "/v1/chat/completions"),
    ("DELETE", "/v1beta/models/gemini-3-flash:generateContent"),
    ("POST", "/v1/messages/batches"),
    ("POST", "/v1/responses/resp_1/cancel"),
]


@pytest.mark.parametrize("method,path", UNGUARDED)
async def test_other_routes_and_methods_pass_through_unbuffered(method, path):
    body = b"x" * 100  # over the limit below, not JSON: nobody must look at it
    app = Downstream()
    server = FakeServer(chunks_of(body, 10))
    scope = http_scope(path, method=method)
    await run(guarded(app, max_body_bytes=16), scope, server)
    assert app.calls == 1
    assert app.scope is scope
    assert "state" not in scope or "modelguard" not in scope["state"]
    assert app.receive is server.receive
    assert app.send is server.send
    assert [m["body"] for m in app.messages] == [body[i:i + 10] for i in range(0, 100, 10)]
    assert server.sent == RESPONSE


async def test_passthrough_does_not_read_ahead():
    """The app gets each chunk before the client has sent the next one."""
    seen_first = asyncio.Event()
    got: list[bytes] = []

    async def app(scope, receive, send):
        got.append((await receive())["body"])
        seen_first.set()
        got.append((await receive())["body"])
        for message in RESPONSE:
            await send(message)

    server = FakeServer([{"type": "http.request", "body": b"one", "more_body": True}])
    task = asyncio.ensure_future(run(guarded(app), http_scope("/v1/files"), server))
    await asyncio.wait_for(seen_first.wait(), TIMEOUT)
    server.push({"type": "http.request", "body": b"two", "more_body": False})
    await asyncio.wait_for(task, TIMEOUT)
    assert got == [b"one", b"two"]


@pytest.mark.parametrize("scope_type", ["websocket", "lifespan"])
async def test_non_http_scopes_pass_through_untouched(scope_type):
    scope: dict[str, Any] = {"type": scope_type, "asgi": {"version": "3.0"}}
    if scope_type == "websocket":
        scope.update(path="/v1/realtime", raw_path=b"/v1/realtime", query_string=b"",
                     headers=[], root_path="", scheme="ws", subprotocols=[])
    before = dict(scope)
    app = Downstream()
    server = FakeServer()
    await run(guarded(app), scope, server)
    assert app.calls == 1
    assert app.scope is scope
    assert scope == before
    assert app.receive is server.receive and app.send is server.send
    assert server.receive_calls == 0


# ============================================================================================
# Responses are never touched
# ============================================================================================

ODD_RESPONSE: list[Message] = [
    {"type": "http.response.start", "status": 207, "headers": [
        (b"content-type", b"text/event-stream; charset=utf-8"), (b"x-dup", b"1"),
        (b"x-dup", b"2"), (b"set-cookie", b"a=b"), (b"x-empty", b"")]},
    {"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True},
    {"type": "http.response.body", "body": b"", "more_body": True},
    {"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False},
]


@pytest.mark.parametrize("path,body", [
    GUARDED["openai"], ("/v1/other", b"{}")], ids=["guarded", "unguarded"])
async def test_responses_pass_unchanged(path, body):
    app = Downstream(response=ODD_RESPONSE)
    server = FakeServer(chunks_of(body, None))
    await run(guarded(app), http_scope(path), server)
    assert server.sent == ODD_RESPONSE
    assert all(a is b for a, b in zip(server.sent, ODD_RESPONSE, strict=True))


async def test_streamed_response_is_not_buffered():
    """Each response chunk reaches the server before the app produces the next one."""
    first_out = asyncio.Event()

    async def app(scope, receive, send):
        while (await receive()).get("more_body"):
            pass
        await send(ODD_RESPONSE[0])
        await send(ODD_RESPONSE[1])
        await asyncio.wait_for(first_out.wait(), TIMEOUT)
        await send(ODD_RESPONSE[3])

    server = FakeServer(chunks_of(OPENAI_OK, None))
    original_send = server.send

    async def send(message):
        await original_send(message)
        if message.get("body") == b"data: 1\n\n":
            first_out.set()

    server.send = send
    await run(guarded(app), http_scope("/v1/chat/completions"), server)
    assert server.sent == [ODD_RESPONSE[0], ODD_RESPONSE[1], ODD_RESPONSE[3]]


# ============================================================================================
# Modes and hooks
# ============================================================================================


async def test_report_mode_forwards_policy_violations():
    seen: list[Verdict] = []
    app = Downstream()
    server = FakeServer(chunks_of(UNKNOWN_MODEL, 3))
    await run(guarded(app, mode="report", on_violation=seen.append), http_scope(), server)
    assert app.calls == 1
    assert app.body == UNKNOWN_MODEL
    assert server.sent == RESPONSE
    verdict = app.scope["state"]["modelguard"]
    assert verdict.reason == "unsupported_model"
    assert verdict.model_id == "claude-sonnet-4.6"
    assert len(seen) == 1 and seen[0].reason == "unsupported_model"


@pytest.mark.parametrize("body", [IMAGE_TO_DEEPSEEK,
                                  json.dumps({"model": "claude-sonnet-4-6", "max_tokens": 9000,
                                              "messages": [{"role": "user", "content": "x"}]}
                                             ).encode()])
async def test_report_mode_forwards_capability_and_cap_violations(body):
    app = Downstream()
    server = FakeServer(chunks_of(body, None))
    await run(guarded(app, mode="report"), http_scope(), server)
    assert app.body == body
    assert app.scope["state"]["modelguard"].violations


async def test_report_mode_still_refuses_malformed_body():
    app = Downstream()
    server = FakeServer(chunks_of(MALFORMED, 4))
    await run(guarded(app, mode="report"), http_scope(), server)
    assert app.calls == 0
    assert server.status == 400
    assert server.json()["error"]["type"] == "invalid_request_error"
    assert (b"content-type", b"application/json") in server.headers


@pytest.mark.parametrize("declared", [False, True], ids=["counted", "content-length"])
async def test_report_mode_still_refuses_oversized_body(declared):
    body = ANTHROPIC_OK
    headers = [("content-length", str(len(body)))] if declared else []
    app = Downstream()
    server = FakeServer(chunks_of(body, 8))
    await run(guarded(app, mode="report", max_body_bytes=32), http_scope(headers=headers), server)
    assert app.calls == 0
    assert server.status == 413
    assert server.json()["error"]["type"] == "request_too_large"


async def test_oversized_body_with_lying_content_length_is_refused():
    body = ANTHROPIC_OK
    app = Downstream()
    server = FakeServer(chunks_of(body, 8))
    await run(guarded(app, max_body_bytes=32), http_scope(headers=[("content-length", "10")]),
              server)
    assert app.calls == 0
    assert server.status == 413


async def test_on_violation_sync_hook_gets_the_verdict():
    seen: list[Verdict] = []
    app = Downstream()
    server = FakeServer(chunks_of(IMAGE_TO_DEEPSEEK, None))
    await run(guarded(app, on_violation=seen.append), http_scope(), server)
    assert server.status == 400
    (verdict,) = seen
    assert isinstance(verdict, Verdict)
    assert verdict.allowed is False
    assert verdict.reason == "unsupported_capability"
    assert verdict.model_id == "deepseek-v4-pro"
    assert "vision" in verdict.required
    assert verdict.body == server.body


async def test_on_violation_async_hook_is_awaited():
    seen: list[Verdict] = []
    done = asyncio.Event()

    async def hook(verdict: Verdict) -> None:
        await asyncio.sleep(0)
        seen.append(verdict)
        done.set()

    server = FakeServer(chunks_of(UNKNOWN_MODEL, None))
    await run(guarded(Downstream(), on_violation=hook), http_scope(), server)
    assert done.is_set()
    assert seen[0].reason == "unsupported_model"
    assert server.status == 400


async def test_on_violation_not_called_for_allowed_requests():
    seen: list[Verdict] = []
    server = FakeServer(chunks_of(ANTHROPIC_OK, None))
    await run(guarded(Downstream(), on_violation=seen.append), http_scope(), server)
    assert seen == []


@pytest.mark.parametrize("mode,forwarded", [("enforce", False), ("report", True)])
@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_raising_hook_does_not_break_the_request(mode, forwarded, kind, caplog):
    def sync_hook(verdict):
        raise RuntimeError("hook failed")

    async def async_hook(verdict):
        raise RuntimeError("hook failed")

    hook = sync_hook if kind == "sync" else async_hook
    app = Downstream()
    server = FakeServer(chunks_of(UNKNOWN_MODEL, None))
    with caplog.at_level(logging.ERROR, logger="modelguard"):
        await run(guarded(app, mode=mode, on_violation=hook), http_scope(), server)
    if forwarded:
        assert app.calls == 1 and app.body == UNKNOWN_MODEL and server.sent == RESPONSE
    else:
        assert app.calls == 0 and server.status == 400
        assert server.json()["error"]["type"] == "unsupported_model"


async def test_state_holds_the_verdict_for_the_app():
    app = Downstream()
    server = FakeServer(chunks_of(OPENAI_OK, None))
    scope = http_scope("/v1/chat/completions")
    scope["state"] = {"other": 1}
    await run(guarded(app), scope, server)
    state = app.scope["state"]
    assert state["other"] == 1
    verdict = state["modelguard"]
    assert isinstance(verdict, Verdict)
    assert verdict.allowed is True
    assert verdict.model_id == "gpt-5-4"
    assert verdict.model is not None and verdict.model.id == "gpt-5-4"
    assert verdict.required == frozenset({"vision", "streaming"})
    assert verdict.violations == ()


# ============================================================================================
# Mounting and frameworks
# ============================================================================================


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver",
                             timeout=TIMEOUT)


async def test_root_path_mount_under_starlette():
    standin = StandIn()
    outer = Starlette(routes=[Mount("/llm", app=guarded(standin.app))])
    async with _client(outer) as client:
        refused = await client.post("/llm/v1/messages", content=IMAGE_TO_DEEPSEEK)
        assert refused.status_code == 400
        assert refused.json()["error"]["type"] == "unsupported_capability"
        assert standin.requests == []
        ok = await client.post("/llm/v1/messages", content=ANTHROPIC_OK)
        assert ok.status_code == 200, ok.text
        assert ok.json()["type"] == "message"
        unguarded = await client.post("/llm/v1/other", content=b"not json")
        assert unguarded.status_code == 404  # the stand-in's own answer
    assert [r.body for r in standin.requests] == [ANTHROPIC_OK, b"not json"]
    assert standin.requests[0].root_path == "/llm"


async def test_root_path_from_server_is_removed_before_matching():
    app = Downstream()
    server = FakeServer(chunks_of(IMAGE_TO_DEEPSEEK, None))
    scope = http_scope("/proxy/v1/messages", root_path="/proxy")
    await run(guarded(app), scope, server)
    assert app.calls == 0 and server.status == 400


def _echo_app() -> Starlette:
    async def endpoint(request: Request) -> JSONResponse:
        body = await request.body()
        verdict = request.state.modelguard
        return JSONResponse({"len": len(body), "model": verdict.model_id,
                             "required": sorted(verdict.required)})

    async def other(request: Request) -> JSONResponse:
        return JSONResponse({"len": len(await request.body())})

    return Starlette(routes=[Route("/v1/chat/completions", endpoint, methods=["POST"]),
                             Route("/v1/other", other, methods=["POST"])])


async def test_starlette_add_middleware():
    app = _echo_app()
    app.add_middleware(ModelGuardMiddleware, catalog=Catalog.default())
    async with _client(app) as client:
        ok = await client.post("/v1/chat/completions", content=OPENAI_OK)
        assert ok.status_code == 200, ok.text
        assert ok.json() == {"len": len(OPENAI_OK), "model": "gpt-5-4",
                             "required": ["streaming", "vision"]}
        refused = await client.post("/v1/chat/completions", content=OPENAI_OK.replace(
            b'"gpt-5-4"', b'"gpt-5-4-nano"'))
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "unsupported_capability"
        assert refused.json()["error"]["param"] == "messages[0].content[1]"
        assert (await client.post("/v1/other", content=b"xyz")).json() == {"len": 3}


async def test_fastapi_add_middleware():
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: FastAPIRequest) -> dict:
        return {"len": len(await request.body()), "model": request.state.modelguard.model_id}

    app.add_middleware(ModelGuardMiddleware, catalog=Catalog.default())
    async with _client(app) as client:
        ok = await client.post("/v1/chat/completions", content=OPENAI_OK)
        assert ok.json() == {"len": len(OPENAI_OK), "model": "gpt-5-4"}
        refused = await client.post("/v1/chat/completions",
                                    content=OPENAI_OK.replace(b'"gpt-5-4"', b'"gpt-5.4"'))
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "unsupported_model"


# ============================================================================================
# Guard.check agrees with the middleware
# ============================================================================================

CHECK_CASES = {
    "anthropic-ok": ("/v1/messages", "", ANTHROPIC_OK, {}),
    "unknown-model": ("/v1/messages", "", UNKNOWN_MODEL, {}),
    "capability": ("/v1/messages", "", IMAGE_TO_DEEPSEEK, {}),
    "malformed": ("/v1/messages", "", MALFORMED, {}),
    "gzip-refused": ("/v1/messages", "", gzip.compress(IMAGE_TO_DEEPSEEK),
                     {"Content-Encoding": "gzip"}),
    "gzip-ok": ("/v1/messages", "", gzip.compress(ANTHROPIC_OK), {"Content-Encoding": "gzip"}),
    "brotli": ("/v1/messages", "", ANTHROPIC_OK, {"Content-Encoding": "br"}),
    "multipart": ("/v1/chat/completions", "", OPENAI_OK,
                  {"Content-Type": "multipart/form-data; boundary=x"}),
    "openai-ok": ("/v1/chat/completions", "", OPENAI_OK, {"Content-Type": "application/json"}),
    "gemini-stream-refused": ("/v1beta/models/minimax-m2-5:streamGenerateContent", "alt=sse",
                              GEMINI_OK, {"x-goog-api-key": "k"}),
    "gemini-ok": ("/v1/models/gemini-3-flash:generateContent", "key=k", GEMINI_OK, {}),
    "images": ("/v1/images/generations", "", b'{"model":"gpt-5-4","prompt":"x"}', {}),
}

HEADER_FORMS = {
    "mapping-str": lambda h: dict(h),
    "pairs-str": lambda h: list(h.items()),
    "pairs-bytes": lambda h: [(k.encode(), v.encode()) for k, v in h.items()],
    "mapping-bytes": lambda h: {k.encode(): v.encode() for k, v in h.items()},
}


@pytest.mark.parametrize("form", list(HEADER_FORMS))
@pytest.mark.parametrize("case", list(CHECK_CASES))
async def test_guard_check_matches_middleware(case, form):
    path, query, body, headers = CHECK_CASES[case]
    app = Downstream()
    server = FakeServer(chunks_of(body, 11))
    await run(guarded(app), http_scope(path, headers=headers.items(), query=query.encode()),
              server)

    target = path + (f"?{query}" if query else "")
    verdict = await asyncio.wait_for(
        Guard(CATALOG).check("POST", target, HEADER_FORMS[form](headers), body), TIMEOUT)

    if app.calls:
        assert verdict.allowed is True
        seen = app.scope["state"]["modelguard"]
        assert (verdict.model_id, verdict.required, verdict.protocol, verdict.route) == (
            seen.model_id, seen.required, seen.protocol, seen.route)
    else:
        assert verdict.allowed is False
        assert verdict.status == server.status
        assert verdict.body == server.body
        sent_headers = [(k.decode(), v.decode()) for k, v in server.headers]
        assert all(h in sent_headers for h in verdict.headers)
        assert ("content-type", "application/json") in verdict.headers


def test_check_cases_cover_both_outcomes():
    """Guard against a vacuous comparison: the cases above include allowed and refused ones."""
    outcomes = {case: asyncio.run(Guard(CATALOG).check("POST", p + (f"?{q}" if q else ""), h, b)
                                  ).allowed
                for case, (p, q, b, h) in CHECK_CASES.items()}
    assert outcomes["anthropic-ok"] and outcomes["gzip-ok"] and outcomes["gemini-ok"]
    assert not outcomes["gzip-refused"] and not outcomes["brotli"]
    assert not outcomes["multipart"] and not outcomes["gemini-stream-refused"]


# ============================================================================================
# catalog= as a file path
# ============================================================================================


@pytest.mark.parametrize("as_str", [True, False], ids=["str", "Path"])
async def test_catalog_from_json_file(tmp_path: Path, as_str: bool):
    payload = {"object": "list", "data": [
        {"id": "solo-model", "object": "model", "owned_by": "anthropic",
         "capabilities": ["text"], "input_modalities": ["text"], "max_output_tokens": 1000}]}
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(payload))
    middleware = ModelGuardMiddleware(Downstream(), catalog=str(path) if as_str else path)

    ok = b'{"model":"solo-model","max_tokens":1000,"messages":[{"role":"user","content":"hi"}]}'
    app = middleware.app
    server = FakeServer(chunks_of(ok, None))
    await run(middleware, http_scope(), server)
    assert app.calls == 1 and app.body == ok

    for body, token in [(ANTHROPIC_OK, "unsupported_model"),  # in the default, not in this file
                        (ok.replace(b"1000", b"1001"), "invalid_request_error")]:
        server = FakeServer(chunks_of(body, None))
        await run(middleware, http_scope(), server)
        assert server.status == 400
        assert server.json()["error"]["type"] == token
    assert app.calls == 1
