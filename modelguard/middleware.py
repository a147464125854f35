"""``ModelGuardMiddleware``: pure ASGI, in front of any app.

Guarded requests are buffered (counting bytes as they arrive), checked, and then either
answered with the protocol's error envelope or replayed to the app byte for byte. A request a
configured action changed (``strip``/``clamp``) is replayed rewritten instead, with its own
Content-Length and no Content-Encoding, and its response gains a ``modelguard-adjusted``
header. Everything else (other routes and methods, websockets, lifespan) passes through
untouched and unbuffered. Responses are otherwise never touched.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs

from .body import BodyError, too_large
from .catalog import Catalog
from .catalog.sources import CatalogUnavailable, no_credential
from .errors import ANTHROPIC, GEMINI, OPENAI, Reason, envelope
from .guard import Guard, read_headers
from .headers import HeadError, credential_of
from .policy import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_DEPTH
from .routing import canonical_path
from .types import CatalogLike, Mode
from .verdict import Verdict

__all__ = ["ModelGuardMiddleware"]

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]
ASGIApp = Callable[[Scope, Receive, Send], Any]

STATE_KEY = "modelguard"
logger = logging.getLogger("modelguard")
# What the middleware does with a request once the guard has looked at it.
_PASS, _ANSWER, _REPLAY, _DONE = "pass", "answer", "replay", "done"


class ModelGuardMiddleware:
    """Pure ASGI middleware: refuses guarded requests the caller's catalog cannot serve.

    ``catalog`` is a :class:`Catalog`, a catalog source such as ``RemoteCatalog``, or a catalog
    file path. The other arguments are :class:`Guard`'s (``mode``, ``max_body_bytes``,
    ``max_depth``, ``allow_unknown_content``, ``on_violation``); ``serve_models`` answers
    ``GET /v1/models`` from the cached catalog. The verdict of every guarded request is left at
    ``scope["state"]["modelguard"]`` (``request.state.modelguard``).
    """

    def __init__(
        self,
        app: ASGIApp,
        catalog: CatalogLike,
        *,
        mode: Mode = "enforce",
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_depth: int = DEFAULT_MAX_DEPTH,
        allow_unknown_content: bool = False,
        on_violation: Callable[[Verdict], Any] | None = None,
        serve_models: bool = False,
        embeddings: bool = False,
        tool_vendors: Mapping[str, Iterable[str]] | None = None,
        stored_state: str = "allow",
        websockets: str = "refuse",
        route_families: Mapping[str, bool] | None = None,
        actions: Mapping[str, str] | str | None = None,
    ) -> None:
        self.app = app
        self.guard = Guard(
            catalog, mode=mode, max_body_bytes=max_body_bytes, max_depth=max_depth,
            allow_unknown_content=allow_unknown_content, on_violation=on_violation,
            embeddings=embeddings, tool_vendors=tool_vendors, stored_state=stored_state,
            websockets=websockets, route_families=route_families,
            actions=actions,
        )
        self.serve_models = serve_models

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                route = self.guard.websocket_route(scope_paths(scope),
                                                   scope.get("root_path", ""))
                if route is not None:
                    await self._deny_websocket(scope, receive, send, route)
                    return
                await self.app(scope, receive, send)
            elif scope["type"] == "lifespan" and hasattr(self.guard.source, "startup"):
                await self.app(scope, *self._lifespan(receive, send))
            else:
                await self.app(scope, receive, send)
            return
        # Only the guard's own work is wrapped: whatever the app raises is the app's.
        try:
            outcome, verdict, chunks = await self._guard(scope, receive, send)
        except Exception:
            logger.exception("modelguard: internal error while checking a request")
            outcome, verdict, chunks = _ANSWER, self.guard.failed(None), None
        if outcome == _PASS:
            await self.app(scope, receive, send)
        elif outcome == _ANSWER and verdict is not None:
            scope.setdefault("state", {})[STATE_KEY] = verdict
            await _respond(send, verdict)
        elif outcome == _REPLAY and verdict is not None and verdict.rewritten_body is not None:
            body = verdict.rewritten_body  # an action changed the body: new framing
            await self.app(_reframed(scope, len(body)), _replay([body], receive),
                           _announcing(send, verdict))
        elif outcome == _REPLAY and chunks is not None:
            await self.app(scope, _replay(chunks, receive), send)

    async def _guard(self, scope: Scope, receive: Receive,
                     send: Send) -> tuple[str, Verdict | None, list[bytes] | None]:
        """What to do with one request: pass it on, answer it, replay its body, or nothing."""
        headers = read_headers(scope.get("headers") or [])
        if self.serve_models and _is_models_listing(scope):
            await self._models(scope, headers, send)
            return _DONE, None, None
        route = self.guard.route(scope.get("method", ""), scope_paths(scope), headers,
                                 scope.get("root_path", ""))
        if route is None:
            return _PASS, None, None
        query = (scope.get("query_string") or b"").decode("latin-1")
        verdict = self.guard.precheck(route, headers, query)
        chunks = None
        if verdict is None:
            try:
                chunks = await _read_body(receive, self.guard.options.max_body_bytes)
            except BodyError as error:
                verdict = self.guard.refuse(route, error.reason, error.message)
        if verdict is not None:
            await self.guard.notify(verdict)
            return _ANSWER, verdict, None
        if chunks is None:
            return _DONE, None, None  # the client left before its body arrived: nobody to answer
        # One contiguous copy for the check only (none when the body came in one piece, made
        # in the worker thread for a large body); the app gets the original chunks, so no
        # second copy outlives the check.
        verdict = await self.guard.inspect_parts(route, headers, query, chunks)
        scope.setdefault("state", {})[STATE_KEY] = verdict
        if not verdict.allowed:
            return _ANSWER, verdict, None
        return _REPLAY, verdict, chunks

    async def _deny_websocket(self, scope: Scope, receive: Receive, send: Send,
                              route: Any) -> None:
        """Close a websocket to a guarded route before accepting it (routes.md D10): its
        frames would carry whole requests the guard never reads. The client sees HTTP 403,
        with the protocol's envelope where the server supports denial responses."""
        verdict = self.guard.refuse(route, Reason.FORBIDDEN, (
            f"WebSocket connections to {route.name} are refused: modelguard checks requests "
            "sent over HTTP POST only. Send the request with POST, or ask the operator to "
            "set websockets='pass'."))
        scope.setdefault("state", {})[STATE_KEY] = verdict
        await self.guard.notify(verdict)
        message = await receive()
        if message["type"] != "websocket.connect":
            return  # the client already left
        if "websocket.http.response" in (scope.get("extensions") or {}):
            raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in verdict.headers]
            raw.append((b"content-length", str(len(verdict.body)).encode()))
            await send({"type": "websocket.http.response.start", "status": verdict.status,
                        "headers": raw})
            await send({"type": "websocket.http.response.body", "body": verdict.body})
            return
        await send({"type": "websocket.close", "code": 1008})

    def _lifespan(self, receive: Receive, send: Send) -> tuple[Receive, Send]:
        """Start and stop the catalog source with the app; a refused key fails startup."""
        source: Any = self.guard.source
        failure: list[str] = []

        async def lifespan_receive() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await source.startup()
                except CatalogUnavailable as error:
                    logger.error("modelguard: catalog check at startup failed: %s "
                                 "(verify the API key)", error.message)
                    failure.append(f"modelguard: {error.message}")
            elif message["type"] == "lifespan.shutdown":
                await source.aclose()
            return message

        async def lifespan_send(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete" and failure:
                message = {"type": "lifespan.startup.failed", "message": failure[0]}
            await send(message)

        return lifespan_receive, lifespan_send

    async def _models(self, scope: Scope, headers: list[tuple[str, str]], send: Send) -> None:
        """``GET /v1/models`` answered from the cached catalog, with the gateway's filters."""
        raw_query = (scope.get("query_string") or b"").decode("latin-1")
        query = parse_qs(raw_query)
        source = self.guard.source
        protocol = _listing_protocol(headers)
        try:
            credential = credential_of(headers, raw_query) if source.needs_credential else None
            if source.needs_credential and credential is None:
                raise no_credential()
            catalog = await source.catalog_for(credential)
        except HeadError as error:
            status, body, extra = envelope(protocol, error.reason, error.message)
            await _send(send, status, body, extra)
            return
        except CatalogUnavailable as error:
            status, body, extra = envelope(protocol, error.reason, error.message,
                                           retry_after=error.retry_after)
            await _send(send, status, body, extra)
            return
        models = catalog.select(query.get("capability", []), (query.get("family") or [None])[0])
        body = json.dumps(Catalog.listing(models)).encode()
        await _send(send, 200, body, [("content-type", "application/json")])


def _is_models_listing(scope: Scope) -> bool:
    if scope.get("method", "").upper() != "GET":
        return False
    return canonical_path(scope.get("path", ""), scope.get("root_path", "")).lower() == "/v1/models"


def _listing_protocol(headers: list[tuple[str, str]]) -> str:
    names = {name for name, _ in headers}
    if "anthropic-version" in names:
        return ANTHROPIC
    if "x-goog-api-key" in names:
        return GEMINI
    return OPENAI


def scope_paths(scope: Scope) -> tuple[str, ...]:
    """Every reading of the path: the raw target (decoded once) and the server's decoded path."""
    path = scope.get("path", "")
    raw = scope.get("raw_path")
    if raw:
        target = raw.decode("latin-1")
        return (target,) if target == path else (target, path)
    return (path,)


async def _read_body(receive: Receive, limit: int) -> list[bytes] | None:
    """The body's non-empty chunks as they arrived, or None if the client disconnected."""
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
    return chunks


def _replay(chunks: list[bytes], receive: Receive) -> Receive:
    """The original body chunks, then the real ``receive`` (disconnects and all)."""
    pending = list(reversed(chunks)) or [b""]

    async def replay() -> Message:
        if pending:
            body = pending.pop()
            return {"type": "http.request", "body": body, "more_body": bool(pending)}
        return await receive()

    return replay


#: Request headers that describe the original body's bytes, replaced for a rewritten body.
_FRAMING = frozenset({b"content-length", b"content-encoding", b"transfer-encoding"})
ADJUSTED_HEADER = b"modelguard-adjusted"


def _reframed(scope: Scope, length: int) -> Scope:
    """The scope for a rewritten body: decoded, with its own Content-Length."""
    headers = [(k, v) for k, v in scope.get("headers") or [] if k.lower() not in _FRAMING]
    headers.append((b"content-length", str(length).encode("ascii")))
    return {**scope, "headers": headers}


def _announcing(send: Send, verdict: Verdict) -> Send:
    """``send`` adding ``modelguard-adjusted`` to the response of an adjusted request."""
    value = (verdict.adjusted_header or "").encode("latin-1")

    async def announce(message: Message) -> None:
        if message["type"] == "http.response.start" and value:
            message = {**message, "headers": [*message.get("headers", ()),
                                              (ADJUSTED_HEADER, value)]}
        await send(message)

    return announce


async def _respond(send: Send, verdict: Verdict) -> None:
    await _send(send, verdict.status, verdict.body, verdict.headers)


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
