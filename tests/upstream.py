"""Reusable test helpers: a stand-in LLM upstream and a way to serve any ASGI app for real.

``StandIn`` is a small Starlette app that answers the three protocols modelguard guards
(Anthropic Messages, OpenAI Chat Completions / images / videos, Gemini generateContent) with
minimal valid responses, streaming when the request asks for it, and records every request it
receives exactly as it arrived (method, path, query, headers, body bytes).

``serve(app)`` runs any ASGI app under uvicorn on 127.0.0.1 in a background thread, on a free
port, and yields a handle with its ``url``; it waits (bounded) until the server is up and shuts
it down cleanly (bounded) on exit.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

__all__ = ["RecordedRequest", "Served", "StandIn", "serve"]

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
TEXT = "ok"


# -- recording --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    """One request exactly as the stand-in received it."""

    method: str
    path: str
    raw_path: bytes | None
    root_path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def decoded_body(self) -> bytes:
        """The body with any gzip/deflate content-encoding undone (the bytes as sent otherwise)."""
        encoding = (self.header("content-encoding") or "").strip().lower()
        if encoding == "gzip":
            return gzip.decompress(self.body)
        if encoding == "deflate":
            return zlib.decompress(self.body)
        return self.body

    def json(self) -> Any:
        return json.loads(self.decoded_body())


@dataclass
class _Log:
    items: list[RecordedRequest] = field(default_factory=list)
    streams: list[str] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)


# -- canned responses ---------------------------------------------------------------------------


def _sse(events: list[tuple[str | None, str]]) -> bytes:
    out = []
    for event, data in events:
        if event is not None:
            out.append(f"event: {event}\n")
        out.append(f"data: {data}\n\n")
    return "".join(out).encode()


def anthropic_message(model: str) -> dict[str, Any]:
    return {
        "id": "msg_standin", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": TEXT}], "stop_reason": "end_turn",
        "stop_sequence": None, "usage": {"input_tokens": 3, "output_tokens": 1},
    }


def anthropic_stream(model: str) -> list[bytes]:
    start = anthropic_message(model)
    start.update(content=[], stop_reason=None, usage={"input_tokens": 3, "output_tokens": 0})
    events = [
        ("message_start", {"type": "message_start", "message": start}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("ping", {"type": "ping"}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": TEXT}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta",
                           "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": 1}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    return [_sse([(name, json.dumps(data))]) for name, data in events]


def openai_completion(model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-standin", "object": "chat.completion", "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": TEXT},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }


def openai_stream(model: str) -> list[bytes]:
    base = {"id": "chatcmpl-standin", "object": "chat.completion.chunk",
            "created": 1_700_000_000, "model": model}
    chunks = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                              "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"content": TEXT}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ]
    return [_sse([(None, json.dumps(c))]) for c in chunks] + [_sse([(None, "[DONE]")])]


def gemini_response(model: str) -> dict[str, Any]:
    return {
        "candidates": [{"content": {"role": "model", "parts": [{"text": TEXT}]},
                        "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1,
                          "totalTokenCount": 4},
        "modelVersion": model,
    }


def gemini_stream_chunks(model: str) -> list[dict[str, Any]]:
    first = {"candidates": [{"content": {"role": "model", "parts": [{"text": TEXT}]},
                             "index": 0}], "modelVersion": model}
    return [first, gemini_response(model) | {"candidates": [
        {"content": {"role": "model", "parts": [{"text": "!"}]}, "finishReason": "STOP",
         "index": 0}]}]


# -- the app ---------------------------------------------------------------------------------


Handler = Callable[[RecordedRequest], Response | None]


class StandIn:
    """A stand-in upstream: minimal valid answers for the guarded protocols, every request kept.

    ``models`` (a ``GET /v1/models`` payload) is served at ``/v1/models`` when given.
    ``handler`` may answer a request first (return a Response) or defer (return None).
    """

    def __init__(self, *, models: dict[str, Any] | None = None,
                 handler: Handler | None = None, stream_delay: float = 0.0,
                 stream_gate: threading.Event | None = None,
                 gate_timeout: float = 10.0) -> None:
        self.models = models
        self.handler = handler
        #: Streams only: a pause between chunks, and an event waited on (bounded by
        #: ``gate_timeout``) before the last chunk. The defaults send every chunk at once.
        self.stream_delay = stream_delay
        self.stream_gate = stream_gate
        self.gate_timeout = gate_timeout
        self._log = _Log()
        self.app = Starlette(routes=[
            Route("/{path:path}", self._endpoint, methods=ALL_METHODS),
        ])

    # the record

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._log.cond:
            return list(self._log.items)

    def clear(self) -> None:
        with self._log.cond:
            self._log.items.clear()
            self._log.streams.clear()

    @property
    def stream_outcomes(self) -> list[str]:
        """How each SSE stream ended: "completed", "cancelled" or "gate_timeout" (then sent)."""
        with self._log.cond:
            return list(self._log.streams)

    def wait_streams(self, count: int, timeout: float = 5.0) -> list[str]:
        """Block until at least ``count`` streams ended (bounded); return their outcomes."""
        with self._log.cond:
            if not self._log.cond.wait_for(lambda: len(self._log.streams) >= count, timeout):
                raise TimeoutError(f"expected {count} stream(s) to end, "
                                   f"got {len(self._log.streams)}")
            return list(self._log.streams)

    def _stream_ended(self, outcome: str) -> None:
        with self._log.cond:
            self._log.streams.append(outcome)
            self._log.cond.notify_all()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until at least ``count`` requests arrived (bounded); return them all."""
        with self._log.cond:
            if not self._log.cond.wait_for(lambda: len(self._log.items) >= count, timeout):
                raise TimeoutError(f"expected {count} request(s), got {len(self._log.items)}")
            return list(self._log.items)

    def _record(self, request: RecordedRequest) -> None:
        with self._log.cond:
            self._log.items.append(request)
            self._log.cond.notify_all()

    # the answers

    async def _endpoint(self, request: Request) -> Response:
        body = await request.body()
        scope = request.scope
        recorded = RecordedRequest(
            method=request.method,
            path=scope["path"],
            raw_path=scope.get("raw_path"),
            root_path=scope.get("root_path", ""),
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=[(k.decode("latin-1").lower(), v.decode("latin-1"))
                     for k, v in scope.get("headers", [])],
            body=body,
        )
        self._record(recorded)
        if self.handler is not None:
            answer = self.handler(recorded)
            if answer is not None:
                return answer
        return self.answer(recorded)

    def answer(self, req: RecordedRequest) -> Response:
        path = req.path.rstrip("/")
        try:
            doc = req.json() if req.body else {}
        except (ValueError, OSError, zlib.error):
            doc = {}
        if not isinstance(doc, dict):
            doc = {}
        model = str(doc.get("model", "standin-model"))
        streaming = doc.get("stream") is True

        if req.method == "GET" and path.endswith("/v1/models") and self.models is not None:
            return JSONResponse(self.models)
        if req.method != "POST":
            return JSONResponse({"ok": True, "method": req.method, "path": req.path})
        if path.endswith("/messages/count_tokens"):
            return JSONResponse({"input_tokens": 3})
        if path.endswith("/messages"):
            if streaming:
                return self._stream(anthropic_stream(model))
            return JSONResponse(anthropic_message(model))
        if path.endswith("/chat/completions"):
            if streaming:
                return self._stream(openai_stream(model))
            return JSONResponse(openai_completion(model))
        if path.endswith("/images/generations"):
            return JSONResponse({"created": 1_700_000_000,
                                 "data": [{"b64_json": "aW1hZ2U=", "revised_prompt": TEXT}]})
        if path.endswith("/videos/generations"):
            return JSONResponse({"id": "video_standin", "object": "video", "model": model,
                                 "status": "queued"})
        if ":" in path:
            name, method = path.rsplit(":", 1)
            model = name.rsplit("/", 1)[-1]
            if method == "countTokens":
                return JSONResponse({"totalTokens": 3})
            if method == "generateContent":
                return JSONResponse(gemini_response(model))
            if method == "streamGenerateContent":
                chunks = gemini_stream_chunks(model)
                if "alt=sse" in req.query:
                    return self._stream(
                        [f"data: {json.dumps(c)}\r\n\r\n".encode() for c in chunks])
                return JSONResponse(chunks)
        return JSONResponse({"error": {"message": f"stand-in: no route {req.path}"}},
                            status_code=404)

    def _stream(self, chunks: list[bytes]) -> StreamingResponse:
        return _stream(chunks, delay=self.stream_delay, gate=self.stream_gate,
                       gate_timeout=self.gate_timeout, on_end=self._stream_ended)


def _stream(chunks: list[bytes], *, delay: float = 0.0, gate: threading.Event | None = None,
            gate_timeout: float = 10.0,
            on_end: Callable[[str], None] | None = None) -> StreamingResponse:
    async def gen() -> Any:
        outcome = "cancelled"  # unless the last chunk goes out (a disconnect cancels us)
        try:
            for index, chunk in enumerate(chunks):
                if index and delay:
                    await asyncio.sleep(delay)
                if gate is not None and index == len(chunks) - 1 \
                        and not await _wait_event(gate, gate_timeout):
                    outcome = "gate_timeout"
                yield chunk
            if outcome == "cancelled":
                outcome = "completed"
        finally:
            if on_end is not None:
                on_end(outcome)

    return StreamingResponse(gen(), media_type="text/event-stream",
                             headers={"cache-control": "no-cache"})


async def _wait_event(event: threading.Event, timeout: float) -> bool:
    """Wait (bounded, without blocking the loop) until a thread sets ``event``."""
    deadline = time.monotonic() + timeout
    while not event.is_set():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.005)
    return True


# -- serving for real ---------------------------------------------------------------------------


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.ready.set()  # set also when startup failed, so the waiter never hangs


@dataclass(frozen=True)
class Served:
    host: str
    port: int
    server: uvicorn.Server

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@contextmanager
def serve(app: Any, *, startup_timeout: float = 10.0, shutdown_timeout: float = 10.0,
          lifespan: str = "auto", **config: Any) -> Iterator[Served]:
    """Run ``app`` under uvicorn on 127.0.0.1 (a free port) in a thread, for the block's length."""
    host = "127.0.0.1"
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config.setdefault("log_level", "warning")
    config.setdefault("timeout_graceful_shutdown", 3)
    server = _Server(uvicorn.Config(app, host=host, port=port, lifespan=lifespan, **config))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        if not server.ready.wait(startup_timeout) or not server.started:
            raise RuntimeError(f"uvicorn did not start on {host}:{port} within "
                               f"{startup_timeout}s")
        yield Served(host, port, server)
    finally:
        server.should_exit = True
        thread.join(shutdown_timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(shutdown_timeout)
        sock.close()
        if thread.is_alive():
            raise RuntimeError(f"uvicorn on {host}:{port} did not stop within "
                               f"{2 * shutdown_timeout}s")
