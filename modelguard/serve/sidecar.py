"""``modelguard serve``: a guarded reverse proxy for clients you cannot change.

The app (:func:`create_app`) is a Starlette app: ``GET /livez``, ``/readyz``, ``/healthz`` and
``/metrics`` are its own; every other request goes through
:class:`~modelguard.ModelGuardMiddleware` and, unless refused, to the upstream over one pooled
``httpx2.AsyncClient``:

- the request as it came: method, raw path and query (the exact bytes of the request target),
  body bytes, and headers less the hop-by-hop ones (RFC 9110 §7.6.1) and the client's framing
  (``Content-Length``/``Transfer-Encoding``: the sidecar frames what it sends itself);
  ``Host`` names the upstream; the caller's credentials pass unchanged; ``x-request-id`` is
  passed on, or generated when absent, and returned;
- the response as it comes: status, headers (less hop-by-hop) and body, streamed chunk by
  chunk (``aiter_raw``: nothing is decoded, buffered or re-encoded); a client that disconnects
  cancels the upstream request;
- an upstream that cannot be reached, or any protocol error of the HTTP client, answers 502,
  one that does not answer in time 504, each with a JSON error in the shape of the protocol
  called (never a 500).

Every forwarded or refused response carries ``Server-Timing: modelguard;dur=<ms>`` (the time
from the request's arrival until the guard forwarded or refused it), one access-log line
(logger ``modelguard.access``: timestamp, request id, hashed key id, upstream status; keys
never included) and Prometheus metrics. SIGHUP reloads a catalog file.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from http.cookiejar import CookieJar, DefaultCookiePolicy
from os import PathLike
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote_plus, urlsplit

import httpx2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..catalog.model import Catalog, CatalogError
from ..catalog.remote import RemoteCatalog
from ..catalog.sources import CatalogUnavailable, StaticSource
from ..errors import ANTHROPIC, GEMINI, OPENAI, Reason
from ..guard import credential_of, read_headers
from ..middleware import STATE_KEY, ModelGuardMiddleware, scope_paths
from ..types import CatalogLike
from ..verdict import Verdict
from .metrics import CONTENT_TYPE, SidecarMetrics

__all__ = ["DEFAULT_CONNECT_TIMEOUT", "DEFAULT_READ_TIMEOUT", "LogFormatter", "Sidecar",
           "configure_logging", "create_app", "mask_target"]

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
#: Framing headers of the client: never forwarded, the sidecar frames the bytes itself.
FRAMING = frozenset({b"content-length", b"transfer-encoding"})
REQUEST_ID = b"x-request-id"
#: A longer or non-printable ``x-request-id`` is replaced by a generated one.
MAX_REQUEST_ID = 200
#: Hex digits of the hashed key id in access lines.
KEY_ID_CHARS = 12
_MAX_LENGTH_DIGITS = 19
_BODY_METHODS = ("POST", "PUT", "PATCH")
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
    request_id: str = ""
    client_request_id: bool = False
    guard_end: float | None = None
    forwarded: bool = False
    verdict: Verdict | None = None
    status: int | None = None
    upstream_error: str | None = None
    upstream_status: int | None = None
    upstream_seconds: float | None = None
    upstream_request_id: str | None = None
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


def create_app(upstream: str, catalog: CatalogLike | None = None,
               **options: Any) -> Starlette:
    """A Starlette app that guards the LLM routes and forwards what it does not refuse to
    ``upstream``, streamed both ways.

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
            Route("/livez", _Local(sidecar.livez, sidecar.instrumented)),
            Route("/readyz", _Local(sidecar.healthz, sidecar.instrumented)),
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
        catalog: CatalogLike | None = None,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        on_violation: Callable[[Verdict], Any] | None = None,
        max_connections: int = 1000,
        transport: httpx2.AsyncBaseTransport | None = None,
        **guard_options: Any,
    ) -> None:
        self.origin, self.prefix = _parse_upstream(upstream)
        if connect_timeout <= 0 or read_timeout <= 0:
            raise ValueError("timeouts must be positive (seconds)")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_connections = max_connections
        self._transport = transport
        self._client: httpx2.AsyncClient | None = None
        self._user_hook = on_violation
        #: The catalog file SIGHUP (and :meth:`reload`) reads again; None for other catalogs.
        self.catalog_file: Path | None = None
        if catalog is None:
            catalog = RemoteCatalog(self.origin + self.prefix.decode("ascii"))
        elif isinstance(catalog, str) and catalog.startswith(("http://", "https://")):
            catalog = RemoteCatalog(catalog)
        elif isinstance(catalog, (str, PathLike)):
            self.catalog_file = Path(catalog)
            catalog = Catalog.from_file(self.catalog_file)
        self.guard_app = ModelGuardMiddleware(_Proxy(self), catalog,
                                              on_violation=self._note_violation,
                                              **guard_options)
        self.source: Any = self.guard_app.guard.source
        self.metrics = SidecarMetrics(self.source)
        self.metrics.catalog_loaded()
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
        hangup = self._install_sighup()
        try:
            yield
        finally:
            if hangup:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            await self.aclose()

    def _install_sighup(self) -> bool:
        """SIGHUP reloads the catalog file, and never stops the process (main thread only;
        elsewhere call :meth:`reload`)."""
        if not hasattr(signal, "SIGHUP"):
            return False
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.reload)
        except (RuntimeError, ValueError):  # not the main thread (tests, embedding)
            return False
        return True

    def reload(self) -> bool:
        """Read the ``--catalog`` file again; on any error keep the catalog in use.

        Returns whether a new catalog was installed. Requests in flight keep the catalog they
        started with; the next ones see the new one."""
        if self.catalog_file is None or not isinstance(self.source, StaticSource):
            logger.warning("modelguard: reload asked, but the catalog is not a file: "
                           "nothing to reload")
            return False
        try:
            catalog = Catalog.from_file(self.catalog_file)
        except (CatalogError, OSError) as error:
            logger.error("modelguard: catalog reload failed, keeping the current one "
                         "(%d models): %s", len(self.source.catalog), error)
            self.metrics.reloads.labels("failed").inc()
            return False
        old = self.source.catalog
        self.source.catalog = catalog
        self._health = None
        self.metrics.catalog_loaded()
        self.metrics.reloads.labels("ok").inc()
        added = sorted(set(catalog.ids) - set(old.ids))
        removed = sorted(set(old.ids) - set(catalog.ids))
        logger.info("modelguard: catalog reloaded from %s: %d models (added %s, removed %s)",
                    self.catalog_file, len(catalog), ", ".join(added) or "none",
                    ", ".join(removed) or "none")
        return True

    async def aclose(self) -> None:
        """Close the pooled client and the catalog source (lifespan shutdown)."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
        close = getattr(self.source, "aclose", None)
        if close is not None:
            await close()

    @property
    def client(self) -> httpx2.AsyncClient | None:
        return self._client

    def http(self) -> httpx2.AsyncClient:
        if self._client is None:
            self._client = httpx2.AsyncClient(
                timeout=httpx2.Timeout(connect=self.connect_timeout, read=self.read_timeout,
                                      write=self.read_timeout, pool=self.read_timeout),
                limits=httpx2.Limits(max_connections=self.max_connections,
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
        protocol = _protocol_of(scope)
        target = self.target(scope)
        try:
            request = httpx2.Request(
                scope["method"], self._log_url(target),
                headers=_request_headers(scope, content, exchange.request_id,
                                         exchange.client_request_id),
                content=content, extensions={"target": target},
            )
        except (httpx2.HTTPError, httpx2.InvalidURL, TypeError, ValueError) as error:
            await self._fail(send, exchange, protocol, 502, "broken", error)
            return
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

    async def _exchange(self, request: httpx2.Request, send: Send, exchange: _Exchange,
                        protocol: str) -> None:
        sent_at = time.perf_counter()
        try:
            response = await self.http().send(request, stream=True)
        except _ClientGone:
            exchange.client_gone = True
            return
        except (httpx2.ConnectError, httpx2.ConnectTimeout) as error:  # unreachable
            await self._fail(send, exchange, protocol, 502, "connect", error)
            return
        except httpx2.TimeoutException as error:  # connected, but no answer in time
            await self._fail(send, exchange, protocol, 504, "timeout", error)
            return
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - any protocol error of the client: a 502
            # httpx2.HTTPError, and what escapes it (StreamError, h11/h2 errors, a framing
            # mismatch between the declared length and the bytes): no usable answer.
            await self._fail(send, exchange, protocol, 502, "broken", error)
            return
        exchange.upstream_status = response.status_code
        exchange.upstream_seconds = time.perf_counter() - sent_at
        self.metrics.upstream_answered(response.status_code, exchange.upstream_seconds)
        upstream_id = response.headers.get("x-request-id")
        if upstream_id is not None:  # the upstream's own id is kept (the SDKs expose it)
            exchange.upstream_request_id = upstream_id[:200]
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
        except (httpx2.HTTPError, httpx2.StreamError) as error:
            kind = "timeout" if isinstance(error, httpx2.TimeoutException) else "broken"
            exchange.upstream_error = kind
            self.metrics.upstream_errors.labels(kind).inc()
            logger.warning("modelguard: upstream response cut short (%s) for %s %s; closing "
                           "the client connection", type(error).__name__, request.method,
                           mask_target(request_target(request)))
            # Returning without the final body message makes the server close the connection
            # (uvicorn: "ASGI callable returned without completing response"), so the client
            # sees a truncated response, never one that looks complete.
        except OSError:  # servers on ASGI spec 2.4 raise this when the client has gone
            exchange.client_gone = not exchange.stream_ended
        finally:
            await response.aclose()

    async def _fail(self, send: Send, exchange: _Exchange, protocol: str, status: int,
                    kind: str, error: Exception) -> None:
        exchange.upstream_error = kind
        self.metrics.upstream_errors.labels(kind).inc()
        self.metrics.upstream_failed()
        logger.warning("modelguard: upstream %s (%s); answered %d",
                       {"connect": "unreachable", "timeout": "timed out"}.get(kind, "failed"),
                       type(error).__name__, status)
        body = upstream_error_body(protocol, status, type(error).__name__)
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode("ascii")),
        ]})
        await send({"type": "http.response.body", "body": body})

    def _log_url(self, target: bytes) -> httpx2.URL:
        """The URL httpx2 logs: the upstream with the target, secret query values masked.

        The bytes on the wire come from the ``target`` extension, not from this URL.
        """
        base = httpx2.URL(self.origin)
        try:
            return base.copy_with(raw_path=mask_target(target).encode("ascii"))
        except (httpx2.InvalidURL, UnicodeEncodeError):
            return base

    # -- local endpoints ----------------------------------------------------------------------

    async def livez(self, request: Request) -> Response:
        """``/livez``: the process answers (restart it if not); never looks at the catalog."""
        return JSONResponse({"status": "ok"}, headers={"cache-control": "no-store"})

    async def healthz(self, request: Request) -> Response:
        """``/readyz`` (and ``/healthz``): 200 when a catalog can be had, else 503."""
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
                    timeout=httpx2.Timeout(self.connect_timeout,
                                          read=min(self.read_timeout, 5.0)))
            except httpx2.HTTPError as error:
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
        route_name = verdict.route if verdict is not None and verdict.guarded else None
        model = verdict.model_id if verdict is not None else None
        reason = verdict.reason if verdict is not None else None
        if exchange.forwarded:
            if protocol is None:
                outcome = "passthrough"
            else:
                outcome = "allowed" if verdict is None or not verdict.violations else \
                    "reported" if verdict.refused else "adjusted"
        else:
            if protocol is None:  # refused before a verdict (or the client left): find out
                route = self.guard_app.guard.route(
                    scope.get("method", ""), scope_paths(scope),
                    read_headers(scope.get("headers") or []), scope.get("root_path", ""))
                protocol = route.protocol if route is not None else None
                route_name = route.name if route is not None else None
                model = model or (route.model if route is not None else None)
            if exchange.status is None:
                outcome = "disconnected"
            else:
                outcome = "rejected"
                reason = reason or _REASON_BY_STATUS.get(exchange.status, "unknown")
        guarded = protocol is not None
        self.metrics.observe(protocol=protocol, outcome=outcome, reason=reason,
                             verdict=verdict, guard_seconds=exchange.guard_seconds
                             if guarded and outcome != "disconnected" else None,
                             route=route_name)
        if not access_logger.isEnabledFor(logging.INFO):
            return  # nobody reads the line: neither hash the key nor build it
        entry: dict[str, Any] = {
            "ts": _timestamp(),
            "request_id": exchange.request_id,
            "key_id": key_id_of(scope),
            "method": scope.get("method"),
            "path": mask_target(_client_target(scope)),
            "status": exchange.status,
            "protocol": protocol,
            "route": route_name,
            "model": model[:200] if isinstance(model, str) else None,
            "verdict": outcome,
            "reason": reason,
            "upstream_status": exchange.upstream_status,
            "upstream_ms": None if exchange.upstream_seconds is None
            else round(exchange.upstream_seconds * 1000, 3),
            "guard_ms": round(exchange.guard_seconds * 1000, 3),
            "duration_ms": round((time.perf_counter() - exchange.start) * 1000, 3),
        }
        if verdict is not None and verdict.violations and len(verdict.reasons) > 1:
            entry["reasons"] = list(verdict.reasons)
        if verdict is not None and verdict.adjustments:
            entry["adjustments"] = list(verdict.adjustments)
        if exchange.upstream_error:
            entry["upstream_error"] = exchange.upstream_error
        if exchange.upstream_request_id is not None:
            entry["upstream_request_id"] = exchange.upstream_request_id
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
        exchange = _Exchange(time.perf_counter(), *request_id_of(scope))
        scope[_EXCHANGE] = exchange

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                exchange.guard_done()  # a refusal: the guard ran until its answer
                exchange.status = message["status"]
                timing = f"modelguard;dur={exchange.guard_seconds * 1000:.3f}".encode("ascii")
                headers = [*message.get("headers", ()), (b"server-timing", timing)]
                if not any(name.lower() == REQUEST_ID for name, _ in headers):
                    headers.append((REQUEST_ID, exchange.request_id.encode("ascii")))
                message = {**message, "headers": headers}
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
            exchange = _Exchange(time.perf_counter(), *request_id_of(scope))
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


def _request_headers(scope: Scope, content: bytes | AsyncIterator[bytes],
                     request_id: str, client_id: bool = True) -> list[tuple[bytes, bytes]]:
    """The caller's headers less hop-by-hop ones, Host (httpx2 sets the upstream's) and the
    framing (the sidecar frames what it forwards itself)."""
    raw: list[tuple[bytes, bytes]] = list(scope.get("headers") or [])
    named: set[bytes] = set()
    for name, value in raw:
        if name.lower() in (b"connection", b"proxy-connection"):
            named.update(t.strip().lower() for t in value.split(b",") if t.strip())
    named -= GUARD_READS
    drop = HOP_BY_HOP | FRAMING | named | {b"host"}
    if not client_id:
        drop |= {REQUEST_ID}
    # Leading/trailing whitespace is not part of a field value (RFC 9110 §5.5); httptools
    # hands it over, and httpx2 refuses to send it (a 502 for a valid request).
    out = [(name, value.strip(b" \t")) for name, value in raw if name.lower() not in drop]
    if not client_id:
        out.append((REQUEST_ID, request_id.encode("ascii")))
    declared = _declared_length(raw)
    if not isinstance(content, bytes):
        # Streamed on as it arrives: with the length the server already held the client to
        # (h11 in httpx2 holds us to it too), else chunked.
        if declared is not None:
            out.append((b"content-length", str(declared).encode("ascii")))
    elif not content and (declared is not None or scope.get("method") in _BODY_METHODS):
        out.append((b"content-length", b"0"))  # httpx2 omits it for an empty body
    return out


def _declared_length(raw: list[tuple[bytes, bytes]]) -> int | None:
    """The client's Content-Length when it is one unambiguous value of ASCII digits."""
    values = {value.strip() for name, value in raw if name.lower() == b"content-length"}
    if len(values) != 1:
        return None
    (value,) = values
    if not value or len(value) > _MAX_LENGTH_DIGITS or not value.isdigit():
        return None
    return int(value)


def request_id_of(scope: Scope) -> tuple[str, bool]:
    """The caller's ``x-request-id`` when it is one short printable token, else a new one.

    Returns the id and whether it came from the caller."""
    values = [value for name, value in scope.get("headers") or []
              if name.lower() == REQUEST_ID]
    if len(values) == 1 and 0 < len(values[0]) <= MAX_REQUEST_ID and \
            _NOT_VCHAR.search(values[0]) is None:
        return values[0].decode("ascii"), True
    return uuid.uuid4().hex, False


def key_id_of(scope: Scope) -> str | None:
    """A stable, non-reversible id of the caller's key for logs (never the key itself)."""
    query = (scope.get("query_string") or b"").decode("latin-1")
    try:
        key = credential_of(read_headers(scope.get("headers") or []), query)
    except Exception:  # noqa: BLE001 - logs never fail a request
        return None
    if not key:
        return None
    digest = hashlib.sha256(b"modelguard-key-id:" + key.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:KEY_ID_CHARS]


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


def request_target(request: httpx2.Request) -> bytes:
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


LOG_FORMATS = ("json", "text")
#: Loggers ``modelguard serve`` writes to stderr in the chosen format.
_SERVE_LOGGERS = ("modelguard", "uvicorn", "httpx2", "asyncio")


def _timestamp(created: float | None = None) -> str:
    """RFC 3339 UTC with milliseconds, the form log pipelines parse without configuration."""
    moment = datetime.fromtimestamp(time.time() if created is None else created, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class LogFormatter(logging.Formatter):
    """One line per record: a JSON object (``json``) or ``key=value`` text (``text``).

    Access records (``extra={"modelguard_access": entry}``) are written as their fields;
    other records as ``ts``, ``level``, ``logger`` and ``message``."""

    def __init__(self, fmt: str = "json") -> None:
        super().__init__()
        if fmt not in LOG_FORMATS:
            raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {fmt!r}")
        self.fmt = fmt

    def format(self, record: logging.LogRecord) -> str:
        access = getattr(record, "modelguard_access", None)
        head = {"ts": _timestamp(record.created), "level": record.levelname,
                "logger": record.name}
        if isinstance(access, dict):
            fields = {**head, **access}
        else:
            fields = {**head, "message": record.getMessage()}
            if record.exc_info:
                fields["error"] = self.formatException(record.exc_info)
        if self.fmt == "json":
            return json.dumps(fields, default=str)
        rest = " ".join(f"{k}={_text_value(v)}" for k, v in fields.items()
                        if k not in ("ts", "level", "logger", "message") and v is not None)
        message = fields.get("message")
        line = f"{fields['ts']} {fields['level']} {fields['logger']}"
        line += f": {message}" if message is not None else ""
        return f"{line} {rest}" if rest else line


def _text_value(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if not text or any(c in text for c in ' "=\n') else text


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    """For ``modelguard serve``: every line (access, modelguard, uvicorn) on stderr, one format."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogFormatter(fmt))
    for name in _SERVE_LOGGERS:
        target = logging.getLogger(name)
        for old in [h for h in target.handlers if isinstance(h.formatter, LogFormatter)]:
            target.removeHandler(old)
        target.addHandler(handler)
        target.propagate = False
    logging.getLogger("modelguard").setLevel(numeric)
    logging.getLogger("uvicorn").setLevel(numeric)
    # Request lines of the client library would duplicate the access log.
    logging.getLogger("httpx2").setLevel(max(numeric, logging.WARNING))
