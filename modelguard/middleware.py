"""``ModelGuardMiddleware``: pure ASGI, in front of any app.

Guarded requests are buffered (counting bytes as they arrive), checked, and then either
answered with the protocol's error envelope or replayed to the app byte for byte. Everything
else (other routes and methods, websockets, lifespan) passes through untouched and unbuffered.
Responses are never touched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .body import BodyError, too_large
from .guard import Guard, normalize_headers
from .policy import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_DEPTH
from .verdict import Verdict

__all__ = ["ModelGuardMiddleware"]

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]
ASGIApp = Callable[[Scope, Receive, Send], Any]

STATE_KEY = "modelguard"


class ModelGuardMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        catalog: object,
        *,
        mode: str = "enforce",
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_depth: int = DEFAULT_MAX_DEPTH,
        allow_unknown_content: bool = False,
        on_violation: Callable[[Verdict], Any] | None = None,
    ) -> None:
        self.app = app
        self.guard = Guard(
            catalog, mode=mode, max_body_bytes=max_body_bytes, max_depth=max_depth,
            allow_unknown_content=allow_unknown_content, on_violation=on_violation,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = normalize_headers(scope.get("headers") or [])
        route = self.guard.route(scope.get("method", ""), _paths(scope), headers,
                                 scope.get("root_path", ""))
        if route is None:
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        verdict = self.guard.precheck(route, headers, query)
        if verdict is not None:
            await _respond(send, verdict)
            return
        try:
            body = await _read_body(receive, self.guard.options.max_body_bytes)
        except BodyError as error:
            await _respond(send, self.guard.refuse(route, error.reason, error.message))
            return
        if body is None:
            return  # the client left before its body arrived: nobody to answer
        verdict = await self.guard.inspect(route, headers, query, body)
        if not verdict.allowed:
            await _respond(send, verdict)
            return
        scope.setdefault("state", {})[STATE_KEY] = verdict
        await self.app(scope, _replay(body, receive), send)


def _paths(scope: Scope) -> tuple[str, ...]:
    """Every reading of the path: the raw target (decoded once) and the server's decoded path."""
    path = scope.get("path", "")
    raw = scope.get("raw_path")
    if raw:
        return (raw.decode("latin-1"), path)
    return (path,)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    if len(chunks) == 1:
        return chunks[0]
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The original body in one message, then the real ``receive`` (disconnects and all)."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _respond(send: Send, verdict: Verdict) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in verdict.headers]
    headers.append((b"content-length", str(len(verdict.body)).encode()))
    await send({"type": "http.response.start", "status": verdict.status, "headers": headers})
    await send({"type": "http.response.body", "body": verdict.body})
