"""The two guarded fronts the agents talk to, and a tap that records what each one received.

``sidecar``: the ``modelguard serve`` app (``create_app``) forwarding to the stand-in gateway.
``gateway``: a small FastAPI gateway that proxies to the stand-in, with ``ModelGuardMiddleware``
mounted on it. Both fetch the catalog from the stand-in's ``GET /v1/models`` with the caller's key.
The tap sits outermost: it sees the request bytes exactly as the agent sent them and the answer
exactly as the agent got it.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from modelguard import ModelGuardMiddleware, RemoteCatalog
from modelguard.serve.sidecar import create_app
from tests.upstream import serve

__all__ = ["FRONTS", "Exchange", "Tap", "front", "gateway_app"]

FRONTS = ("sidecar", "gateway")
#: Hop-by-hop and framing headers a proxy must not copy (RFC 9110 §7.6.1, RFC 9112 §6).
_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade",
        "te", "trailer", "proxy-connection"}
PROXY_TIMEOUT = httpx.Timeout(30.0, connect=5.0)


@dataclass
class Exchange:
    """One HTTP exchange as the agent saw it."""

    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytearray = field(default_factory=bytearray)
    status: int | None = None
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    response: bytearray = field(default_factory=bytearray)

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.response_headers if k == name), None)


class Tap:
    """Pure ASGI: records every HTTP exchange, passes everything through untouched."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._seen: list[Exchange] = []

    @property
    def exchanges(self) -> list[Exchange]:
        with self._lock:
            return list(self._seen)

    def posts(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.method == "POST"]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        entry = Exchange(scope["method"], scope["path"],
                         scope.get("query_string", b"").decode("latin-1"),
                         [(k.decode("latin-1"), v.decode("latin-1"))
                          for k, v in scope["headers"]])
        with self._lock:
            self._seen.append(entry)

        async def tapped_receive() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                entry.body += message.get("body", b"")
            return message

        async def tapped_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                entry.status = message["status"]
                entry.response_headers = [(k.decode("latin-1").lower(), v.decode("latin-1"))
                                          for k, v in message.get("headers", [])]
            elif message["type"] == "http.response.body":
                entry.response += message.get("body", b"")
            await send(message)

        await self.app(scope, tapped_receive, tapped_send)


def gateway_app(upstream: str, **options: Any) -> FastAPI:
    """A minimal FastAPI gateway: every route proxied to ``upstream``, the guard mounted."""
    state: dict[str, httpx.AsyncClient] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state["client"] = httpx.AsyncClient(base_url=upstream, timeout=PROXY_TIMEOUT)
        try:
            yield
        finally:
            await state.pop("client").aclose()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"])
    async def proxy(request: Request) -> StreamingResponse:
        client = state["client"]
        target = request.scope.get("raw_path") or request.url.path.encode()
        query = request.scope.get("query_string") or b""
        url = (target + (b"?" + query if query else b"")).decode("latin-1")
        headers = [(k, v) for k, v in request.headers.items() if k not in _HOP]
        upstream_request = client.build_request(request.method, url, headers=headers,
                                                content=await request.body())
        answer = await client.send(upstream_request, stream=True)
        return StreamingResponse(
            answer.aiter_raw(), status_code=answer.status_code,
            headers={k: v for k, v in answer.headers.items() if k not in _HOP},
            background=BackgroundTask(answer.aclose))

    app.add_middleware(ModelGuardMiddleware, catalog=RemoteCatalog(upstream), **options)
    return app


@contextmanager
def front(kind: str, upstream: str, **options: Any) -> Iterator[tuple[str, Tap]]:
    """Serve the guarded front ``kind`` on 127.0.0.1; yield its URL and its tap."""
    if kind == "sidecar":
        app: Any = create_app(upstream, **options)
    elif kind == "gateway":
        app = gateway_app(upstream, **options)
    else:
        raise ValueError(f"unknown front {kind!r}")
    tap = Tap(app)
    with serve(tap, lifespan="on") as served:
        yield served.url, tap
