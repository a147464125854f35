"""``modelguard serve``: a guarded reverse proxy for clients you cannot change.

The app (:func:`create_app`) is a Starlette app: ``GET /healthz`` and ``GET /metrics`` are its
own; every other request goes through :class:`~modelguard.ModelGuardMiddleware` and, unless
refused, to the upstream over one pooled ``httpx.AsyncClient``:

- the request as it came: method, raw path and query (the exact bytes of the request target),
  body bytes, and headers less the hop-by-hop ones (RFC 9110 §7.6.1); ``Host`` names the
  upstream; the caller's credentials pass unchanged;
- the response as it comes: status, headers (less hop-by-hop) and body, streamed chunk by
  chunk (``aiter_raw``: nothing is decoded, buffered or re-encoded); a client that disconnects
  cancels the upstream request;
- an upstream that cannot be reached answers 502, one that does not answer in time 504, each
  with a JSON error in the shape of the protocol called.

Every forwarded or refused response carries ``Server-Timing: modelguard;dur=<ms>`` (the time
from the request's arrival until the guard forwarded or refused it), one JSON access-log line
(logger ``modelguard.access``, keys never included) and Prometheus counters.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any
from urllib.parse import quote, unquote_plus, urlsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..catalog.remote import RemoteCatalog
from ..catalog.sources import CatalogUnavailable, StaticSource
from ..errors import ANTHROPIC, GEMINI, OPENAI, Reason
from ..guard import normalize_headers
from ..middleware import STATE_KEY, ModelGuardMiddleware, scope_paths
from ..verdict import Verdict
from .metrics import CONTENT_TYPE, SidecarMetrics

__all__ = ["DEFAULT_CONNECT_TIMEOUT", "DEFAULT_READ_TIMEOUT", "Sidecar", "configure_logging",
           "create_app", "mask_target"]

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]

DEFAULT_CONNECT_TIMEOUT = 10.0
#: Between two bytes of the response; LLM calls can think for minutes (the SDKs allow 600 s).
DEFAULT_READ_TIMEOUT = 600.0
#: How long a /healthz probe result is reused (an unauthenticated endpoint must not hammer).
HEALTH_CACHE_SECONDS = 1.0

logger = logging.getLogger("modelguard.sidecar")
access_logger = logging.getLogger("modelguard.access")

#: RFC 9110 §7.6.1 (and the obsolete Proxy-Connection, Keep-Alive); ``host`` is rewritten.
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"transfer-encoding",
    b"upgrade", b"proxy-authorization", b"proxy-authenticate", b"trailer",
})
#: Headers the guard reads. A ``Connection`` option naming one of them is ignored (they are
#: end-to-end by definition, RFC 9110 §7.6.1): dropping them would let the upstream see a
#: different key, encoding or method than the one the guard checked.
GUARD_READS = frozenset({
    b"authorization", b"x-api-key", b"x-goog-api-key", b"content-type", b"content-encoding",
    b"content-length", b"x-http-method-override", b"x-http-method", b"x-method-override",
})
#: Query parameters whose values are masked in logs.
SECRET_PARAMS = frozenset({"key", "api_key", "apikey", "api-key", "access_token", "token",
                           "x-goog-api-key"})
_LOCAL_METHODS = ("GET", "HEAD")
_EXCHANGE = "modelguard.sidecar"
_CURRENT: ContextVar[_Exchange | None] = ContextVar("modelguard_sidecar_exchange", default=None)
_NOT_VCHAR = re.compile(rb"[^\x21-\x7e]")
_SCHEME = re.compile(rb"^[A-Za-z][A-Za-z0-9+.-]*://")
#: The final event of a model stream. A client may hang up once it has seen it (Codex stops at
#: response.completed): that is a completed stream, not a client disconnect.
_STREAM_END = re.compile(
    rb"event: ?(?:response\.(?:completed|failed|incomplete)|message_stop)\r?\n|data: ?\[DONE\]")


class _ClientGone(Exception):
    """The client disconnected while its body was still being forwarded."""


@dataclass
class _Exchange:
    """What one request went through, for the Server-Timing header, the log and the metrics."""

    start: float
    guard_end: float | None = None
    forwarded: bool = False
    verdict: Verdict | None = None
    status: int | None = None
    upstream_error: str | None = None
    client_gone: bool = False
    stream_ended: bool = False  # the final event of a model stream went out
    tail: bytes = b""  # the end of the last chunk sent (an event name may span two chunks)

    def guard_done(self) -> None:
        if self.guard_end is None:
            self.guard_end = time.perf_counter()

    @property
    def guard_seconds(self) -> float:
        end = self.guard_end if self.guard_end is not None else time.perf_counter()
        return max(0.0, end - self.start)


# -- the app ------------------------------------------------------------------------------------


def create_app(upstream: str, catalog: object | None = None, **options: Any) -> Starlette:
    """A Starlette app that guards the routes of decisions.md §1 and forwards all to ``upstream``.

    ``catalog`` is a :class:`~modelguard.Catalog`, a catalog source, a path to a catalog JSON
    file, or a gateway base URL (``RemoteCatalog(url)``, forwarding mode); by default
    ``RemoteCatalog(upstream)`` in forwarding mode (each caller's key selects its catalog).
    ``options`` are :class:`Sidecar`'s (timeouts, ``on_violation``, ``max_connections``,
    ``transport``); the rest go to :class:`~modelguard.ModelGuardMiddleware` (``mode``,
    ``max_body_bytes``, ``max_depth``, ``allow_unknown_content``). The :class:`Sidecar` is at
    ``app.state.sidecar``.
    """
    sidecar = Sidecar(upstream, catalog, **options)
    app = Starlette(
        routes=[
            Route("/healthz", _Local(sidecar.healthz, sidecar.instrumented)),
            Route("/metrics", _Local(sidecar.metrics_endpoint, sidecar.instrumented)),
        ],
        lifespan=sidecar.lifespan,
    )
    app.router.default = sidecar.instrumented
    app.router.redirect_slashes = False  # /healthz/ is the upstream's, not a redirect
    app.state.sidecar = sidecar
    return app


class Sidecar:
    """The proxy's state: upstream, pooled client, guard, metrics, health probe."""

    def __init__(
        self,
        upstream: str,
        catalog: object | None = None,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        on_violation: Callable[[Verdict], Any] | None = None,
        max_connections: int = 1000,
        transport: httpx.AsyncBaseTransport | None = None,
        **guard_options: Any,
    ) -> None:
        self.origin, self.prefix = _parse_upstream(upstream)
        if connect_timeout <= 0 or read_timeout <= 0:
            raise ValueError("timeouts must be positive (seconds)")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_connections = max_connections
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._user_hook = on_violation
        if catalog is None:
            catalog = RemoteCatalog(self.origin + self.prefix.decode("ascii"))
        elif isinstance(catalog, str) and catalog.startswith(("http://", "https://")):
            catalog = RemoteCatalog(catalog)
        self.guard_app = ModelGuardMiddleware(_Proxy(self), catalog,
                                              on_violation=self._note_violation,
                                              **guard_options)
        self.source: Any = self.guard_app.guard.source
        self.metrics = SidecarMetrics(self.source)
        self.instrumented = _Instrumented(self)
        self._health: tuple[float, int, dict[str, Any]] | None = None
        self._health_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"Sidecar(upstream={self.origin}{self.prefix.decode('ascii')!s}, {self.source!r})"

    # -- lifecycle --------------------------------------------------------------------------

    @asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
        startup = getattr(self.source, "startup", None)
        if startup is not None:
            try:
                await startup()  # service mode: a refused key fails startup
            except CatalogUnavailable as error:
                raise RuntimeError(f"modelguard: catalog check at startup failed: "
                                   f"{error.message}") from None
        self.http()
        try:
            yield
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled client and the catalog source (lifespan shutdown)."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
        close = getattr(self.source, "aclose", None)
        if close is not None:
            await close()

    @property
    def client(self) -> httpx.AsyncClient | None:
        return self._client

    def http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(connect=self.connect_timeout, read=self.read_timeout,
                                      write=self.read_timeout, pool=self.read_timeout),
                limits=httpx.Limits(max_connections=self.max_connections,
                                    max_keepalive_connections=min(100, self.max_connections)),
                follow_redirects=False,  # a redirect is the client's to follow
                # One client serves every caller: it must never keep a cookie.
                cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
                transport=self._transport,
            )
        return self._client

    def _note_violation(self, verdict: Verdict) -> Any:
        exchange = _CURRENT.get()
        if exchange is not None:
            exchange.verdict = verdict
        if self._user_hook is not None:
            return self._user_hook(verdict)
        return None

    # -- forwarding ---------------------------------------------------------------------------

    def target(self, scope: Scope) -> bytes:
        """The upstream request target: the prefix, the raw path and the query, as sent."""
        raw: bytes = scope.get("raw_path") or quote(scope.get("path", "/")).encode("ascii")
        if _SCHEME.match(raw):  # absolute-form left in the path by the HTTP parser
            rest = raw.split(b"://", 1)[1]
            slash = rest.find(b"/")
            raw = rest[slash:] if slash >= 0 else b"/"
        if raw == b"*":
            raw = b"" if self.prefix else b"*"
        elif not raw.startswith(b"/"):
            raw = b"/" + raw
        target = self.prefix + raw
        query = scope.get("query_string") or b""
        if query:
            target += b"?" + query
        return _NOT_VCHAR.sub(lambda m: b"%%%02X" % m.group()[0], target or b"/")

    async def forward(self, scope: Scope, receive: Receive, send: Send,
                      exchange: _Exchange) -> None:
        first = await receive()
        if first["type"] == "http.disconnect":
            exchange.client_gone = True
            return
        body_done = asyncio.Event()
        content: bytes | AsyncIterator[bytes]
        if first.get("more_body", False):
            content = _body_stream(first.get("body", b""), receive, body_done)
        else:
            content = first.get("body", b"")
            body_done.set()
        target = self.target(scope)
        request = httpx.Request(
            scope["method"], self._log_url(target), headers=_request_headers(scope),
            content=content, extensions={"target": target},
        )
        protocol = _protocol_of(scope)
        pump = asyncio.ensure_future(self._exchange(request, send, exchange, protocol))
        watch = asyncio.ensure_future(_wait_disconnect(receive, body_done))
        try:
            await asyncio.wait({pump, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not pump.done():  # the watcher saw the client leave (or we stop)
                exchange.client_gone = not exchange.stream_ended
                pump.cancel()
            watch.cancel()
            await asyncio.gather(pump, watch, return_exceptions=True)
        if not pump.cancelled():
            pump.result()  # re-raise anything unexpected

    async def _exchange(self, request: httpx.Request, send: Send, exchange: _Exchange,
                        protocol: str) -> None:
        try:
            response = await self.http().send(request, stream=True)
        except _ClientGone:
            exchange.client_gone = True
            return
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:  # unreachable
            await self._fail(send, exchange, protocol, 502, "connect", error)
            return
        except httpx.TimeoutException as error:  # connected, but no answer in time
            await self._fail(send, exchange, protocol, 504, "timeout", error)
            return
        except httpx.HTTPError as error:  # connected, but no usable answer
            await self._fail(send, exchange, protocol, 502, "broken", error)
            return
        try:
            await send({"type": "http.response.start", "status": response.status_code,
                        "headers": _response_headers(response.headers.raw)})
            async for chunk in response.aiter_raw():
                if chunk:
                    await send({"type": "http.response.body", "body": chunk,
                                "more_body": True})
                    if _STREAM_END.search(chunk) or _STREAM_END.search(exchange.tail + chunk[:64]):
                        exchange.stream_ended = True
                    exchange.tail = chunk[-64:]
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except httpx.HTTPError as error:
            kind = "timeout" if isinstance(error, httpx.TimeoutException) else "broken"
            exchange.upstream_error = kind
            self.metrics.upstream_errors.labels(kind).inc()
            logger.warning("modelguard: upstream response cut short (%s) for %s %s; closing "
                           "the client connection", type(error).__name__, request.method,
                           mask_target(request_target(request)))
            # Returning without the final body message makes the server close the connection
            # (uvicorn: "ASGI callable returned without completing response"), so the client
            # sees a truncated response, never one that looks complete.
        except OSError:  # servers on ASGI spec 2.4 raise this when the client has gone
            exchange.client_gone = True
        finally:
            await response.aclose()

    async def _fail(self, send: Send, exchange: _Exchange, protocol: str, status: int,
                    kind: str, error: Exception) -> None:
        exchange.upstream_error = kind
        self.metrics.upstream_errors.labels(kind).inc()
        logger.warning("modelguard: upstream %s (%s); answered %d",
                       {"connect": "unreachable", "timeout": "timed out"}.get(kind, "failed"),
                       type(error).__name__, status)
        body = upstream_error_body(protocol, status, type(error).__name__)
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode("ascii")),
        ]})
        await send({"type": "http.response.body", "body": body})

    def _log_url(self, target: bytes) -> httpx.URL:
        """The URL httpx logs: the upstream with the target, secret query values masked.

        The bytes on the wire come from the ``target`` extension, not from this URL.
        """
        base = httpx.URL(self.origin)
        try:
            return base.copy_with(raw_path=mask_target(target).encode("ascii"))
        except (httpx.InvalidURL, UnicodeEncodeError):
            return base

    # -- local endpoints ----------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        status, body = await self.health()
        return JSONResponse(body, status_code=status, headers={"cache-control": "no-store"})

    async def health(self) -> tuple[int, dict[str, Any]]:
        """(status, body) of ``/healthz``: 200 when the catalog can be had, else 503."""
        async with self._health_lock:
            now = time.monotonic()
            if self._health is not None and now - self._health[0] < HEALTH_CACHE_SECONDS:
                return self._health[1], self._health[2]
            status, body = await self._check_health()
            self._health = (time.monotonic(), status, body)
            return status, body

    async def _check_health(self) -> tuple[int, dict[str, Any]]:
        source = self.source
        if isinstance(source, StaticSource):
            return 200, {"status": "ok", "catalog": "static", "models": len(source.catalog)}
        if isinstance(source, RemoteCatalog) and not source.needs_credential:
            try:
                catalog = await source.catalog_for(None)
            except CatalogUnavailable as error:
                return 503, {"status": "unavailable", "catalog": "remote", "mode": "service",
                             "reason": error.reason}
            return 200, {"status": "ok", "catalog": "remote", "mode": "service",
                         "models": len(catalog)}
        if isinstance(source, RemoteCatalog):
            # Forwarding mode has no key of its own: probe the catalog endpoint without one.
            # Any answer below 500 (401 is the usual one) shows the gateway is up.
            try:
                response = await self.http().get(
                    f"{source.base_url}/v1/models",
                    timeout=httpx.Timeout(self.connect_timeout,
                                          read=min(self.read_timeout, 5.0)))
            except httpx.HTTPError as error:
                return 503, {"status": "unavailable", "catalog": "remote", "mode": "forwarding",
                             "error": type(error).__name__}
            body = {"status": "ok" if response.status_code < 500 else "unavailable",
                    "catalog": "remote", "mode": "forwarding",
                    "probe": "GET /v1/models (no key)", "probe_status": response.status_code}
            return (200 if response.status_code < 500 else 503), body
        return 200, {"status": "ok", "catalog": type(source).__name__}

    async def metrics_endpoint(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type=CONTENT_TYPE,
                        headers={"cache-control": "no-store"})

    # -- accounting ---------------------------------------------------------------------------

    def account(self, scope: Scope, exchange: _Exchange) -> None:
        """One access-log line and the metrics for a finished request."""
        verdict: Verdict | None
        if exchange.forwarded:
            verdict = (scope.get("state") or {}).get(STATE_KEY) or exchange.verdict
        else:
            verdict = exchange.verdict
        protocol = verdict.protocol if verdict is not None and verdict.guarded else None
        model = verdict.model_id if verdict is not None else None
        reason = verdict.reason if verdict is not None else None
        if exchange.forwarded:
            if protocol is None:
                outcome = "passthrough"
            else:
                outcome = "reported" if verdict is not None and verdict.violations \
                    else "allowed"
        else:
            if protocol is None:  # refused before a verdict (or the client left): find out
                route = self.guard_app.guard.route(
                    scope.get("method", ""), scope_paths(scope),
                    normalize_headers(scope.get("headers") or []), scope.get("root_path", ""))
                protocol = route.protocol if route is not None else None
                model = model or (route.model if route is not None else None)
            if exchange.status is None:
                outcome = "disconnected"
            else:
                outcome = "rejected"
                reason = reason or _REASON_BY_STATUS.get(exchange.status, "unknown")
        guarded = protocol is not None
        self.metrics.observe(protocol=protocol, outcome=outcome, reason=reason,
                             verdict=verdict, guard_seconds=exchange.guard_seconds
                             if guarded and outcome != "disconnected" else None)
        entry: dict[str, Any] = {
            "method": scope.get("method"),
            "path": mask_target(_client_target(scope)),
            "status": exchange.status,
            "protocol": protocol,
            "model": model[:200] if isinstance(model, str) else None,
            "verdict": outcome,
            "reason": reason,
            "guard_ms": round(exchange.guard_seconds * 1000, 3),
            "duration_ms": round((time.perf_counter() - exchange.start) * 1000, 3),
        }
        if exchange.upstream_error:
            entry["upstream_error"] = exchange.upstream_error
        if exchange.client_gone:
            entry["client_disconnected"] = True
        access_logger.info(json.dumps(entry), extra={"modelguard_access": entry})


_REASON_BY_STATUS = {413: Reason.TOO_LARGE, 415: Reason.MEDIA_TYPE,
                     401: Reason.UNAUTHENTICATED, 403: Reason.FORBIDDEN,
                     503: Reason.UNAVAILABLE, 400: Reason.INVALID}


class _Instrumented:
    """Outside the guard: times it, adds Server-Timing, logs and counts each request."""

    def __init__(self, sidecar: Sidecar) -> None:
        self.sidecar = sidecar
        self.app = sidecar.guard_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = _Exchange(time.perf_counter())
        scope[_EXCHANGE] = exchange

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                exchange.guard_done()  # a refusal: the guard ran until its answer
                exchange.status = message["status"]
                timing = f"modelguard;dur={exchange.guard_seconds * 1000:.3f}".encode("ascii")
                message = {**message, "headers": [*message.get("headers", ()),
                                                  (b"server-timing", timing)]}
            await send(message)

        token = _CURRENT.set(exchange)
        metrics = self.sidecar.metrics
        metrics.in_flight.inc()
        try:
            await self.app(scope, receive, timed_send)
        finally:
            _CURRENT.reset(token)
            exchange.guard_done()
            try:
                self.sidecar.account(scope, exchange)
            except Exception:  # accounting must never break a response
                logger.exception("modelguard: access accounting failed")
            metrics.in_flight.dec()  # last: in flight 0 means every request is accounted for


class _Proxy:
    """The app behind the guard: forwards whatever reaches it."""

    def __init__(self, sidecar: Sidecar) -> None:
        self.sidecar = sidecar

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # not proxied: refuse the handshake (HTTP 403)
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            return
        exchange = scope.get(_EXCHANGE)
        if exchange is None:  # used without the instrumentation wrapper
            exchange = _Exchange(time.perf_counter())
        exchange.guard_done()
        exchange.forwarded = True
        await self.sidecar.forward(scope, receive, send, exchange)


class _Local:
    """``GET``/``HEAD`` answered by the sidecar itself; any other method is forwarded."""

    def __init__(self, handler: Callable[[Request], Any], fallback: Any) -> None:
        self.handler = handler
        self.fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in _LOCAL_METHODS:
            await self.fallback(scope, receive, send)
            return
        response = await self.handler(Request(scope, receive))
        await response(scope, receive, send)


# -- helpers ------------------------------------------------------------------------------------


def _parse_upstream(upstream: str) -> tuple[str, bytes]:
    parts = urlsplit(upstream)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"upstream must be an http:// or https:// URL, not {upstream!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError("the upstream URL must not carry credentials: callers send their own")
    if parts.query or parts.fragment:
        raise ValueError("the upstream URL must not have a query or a fragment")
    origin = f"{parts.scheme}://{parts.netloc}"
    return origin, parts.path.rstrip("/").encode("ascii")


def _request_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    """The caller's headers less hop-by-hop ones and Host (httpx sets the upstream's)."""
    raw: list[tuple[bytes, bytes]] = list(scope.get("headers") or [])
    named: set[bytes] = set()
    for name, value in raw:
        if name.lower() in (b"connection", b"proxy-connection"):
            named.update(t.strip().lower() for t in value.split(b",") if t.strip())
    named -= GUARD_READS
    drop = HOP_BY_HOP | named | {b"host"}
    return [(name, value) for name, value in raw if name.lower() not in drop]


def _response_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    named: set[bytes] = set()
    for name, value in raw:
        if name.lower() in (b"connection", b"proxy-connection"):
            named.update(t.strip().lower() for t in value.split(b",") if t.strip())
    drop = HOP_BY_HOP | named
    return [(name.lower(), value) for name, value in raw if name.lower() not in drop]


async def _body_stream(first: bytes, receive: Receive,
                       done: asyncio.Event) -> AsyncIterator[bytes]:
    """A request body that arrives in parts, forwarded as it arrives."""
    try:
        if first:
            yield first
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone()
            chunk = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return
    finally:
        done.set()


async def _wait_disconnect(receive: Receive, body_done: asyncio.Event) -> None:
    """Return when the client disconnects (only after its body was read in full)."""
    await body_done.wait()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


def _client_target(scope: Scope) -> bytes:
    raw: bytes = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "replace")
    query = scope.get("query_string") or b""
    return raw + b"?" + query if query else raw


def request_target(request: httpx.Request) -> bytes:
    target = request.extensions.get("target")
    return target if isinstance(target, bytes) else request.url.raw_path


def mask_target(target: bytes | str, limit: int = 2048) -> str:
    """A request target for logs: secret query values (``key=``, ...) replaced by ``***``."""
    text = target.decode("latin-1") if isinstance(target, bytes) else target
    path, sep, query = text.partition("?")
    if sep:
        parts = []
        for part in query.split("&"):
            name, eq, _ = part.partition("=")
            if eq and unquote_plus(name).strip().lower() in SECRET_PARAMS:
                part = f"{name}=***"
            parts.append(part)
        text = path + "?" + "&".join(parts)
    return text if len(text) <= limit else text[:limit] + "..."


def _protocol_of(scope: Scope) -> str:
    """The protocol whose error shape a 502/504 takes: the verdict's, else a guess."""
    verdict = (scope.get("state") or {}).get(STATE_KEY)
    if isinstance(verdict, Verdict) and verdict.protocol is not None:
        return verdict.protocol
    names = {name.lower() for name, _ in scope.get("headers") or []}
    path = scope.get("path", "")
    if b"anthropic-version" in names:
        return ANTHROPIC
    if b"x-goog-api-key" in names or path.startswith(("/v1beta/", "/v1alpha/")) \
            or ":generateContent" in path or ":streamGenerateContent" in path:
        return GEMINI
    return OPENAI


def upstream_error_body(protocol: str, status: int, cause: str) -> bytes:
    """A 502/504 in the caller's protocol shape (the SDKs raise their own error types)."""
    timeout = status == 504
    message = ("modelguard: the upstream did not answer in time" if timeout else
               "modelguard: no answer could be had from the upstream") + \
        f" ({cause}); retry later."
    if protocol == ANTHROPIC:
        doc: dict[str, Any] = {"type": "error", "error": {
            "type": "timeout_error" if timeout else "api_error", "message": message}}
    elif protocol == GEMINI:
        doc = {"error": {
            "code": status, "message": message,
            "status": "DEADLINE_EXCEEDED" if timeout else "UNAVAILABLE",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                         "reason": "UPSTREAM_TIMEOUT" if timeout else "UPSTREAM_UNREACHABLE",
                         "domain": "modelguard", "metadata": {}}]}}
    else:
        doc = {"error": {"message": message, "type": "api_error", "param": None,
                         "code": "upstream_timeout" if timeout else "upstream_unreachable"}}
    return json.dumps(doc).encode()


def configure_logging(level: str = "info") -> None:
    """For ``modelguard serve``: JSON access lines and other modelguard logs on stderr."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    base = logging.getLogger("modelguard")
    base.setLevel(numeric)
    if not base.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        base.addHandler(handler)
    if not access_logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access_logger.addHandler(handler)
        access_logger.propagate = False
