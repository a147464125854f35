"""The guard inside the client: httpx2 transports for the official SDKs (decisions.md §13).

``GuardTransport`` (sync) and ``AsyncGuardTransport`` (async) wrap another httpx2 transport.
A request the guard refuses is answered here, in-process, with the protocol's own error
envelope: nothing is sent, and the SDK raises its own exception (``BadRequestError``, ...).
Every other request goes to the wrapped transport untouched; responses (streams included) are
never read or buffered. Only a request on a guarded route has its body read.

A transport sees URLs, not an ASGI ``root_path``: with ``root_path="/gw"`` that prefix is
removed before matching; without it, a request whose path *ends in* a guarded route is guarded
(an SDK talks to one API, so a base URL such as ``https://host/gw/v1`` stays guarded).

The refused response carries the verdict in ``response.extensions["modelguard"]``.
"""

from __future__ import annotations

from typing import Any

import httpx2

from .guard import Guard, read_headers
from .routing import Route
from .verdict import Verdict

__all__ = ["AsyncGuardTransport", "GuardTransport"]

#: The key of the verdict in ``response.extensions`` (refused and allowed guarded requests).
EXTENSION = "modelguard"


class _Guarded:
    """What both transports share: the guard, the prefix rule, and building answers."""

    def __init__(self, catalog: object, root_path: str | None, options: dict[str, Any]) -> None:
        self.guard = Guard(catalog, **options)
        #: None: guard any path that ends in a guarded route.
        self.root_path = root_path

    def _route(self, request: httpx2.Request) -> tuple[Route | None, list[tuple[str, str]], str]:
        """The guarded route of a request (None: it goes out unread), its headers and query."""
        headers = read_headers(request.headers.raw)
        target = _target(request)
        route = self.guard.route(request.method, (target,), headers, self.root_path)
        return route, headers, target.partition("?")[2]

    def _refused(self, request: httpx2.Request, verdict: Verdict) -> httpx2.Response:
        return httpx2.Response(verdict.status, headers=verdict.headers, content=verdict.body,
                               request=request, extensions={EXTENSION: verdict})

    def _outgoing(self, request: httpx2.Request, verdict: Verdict) -> httpx2.Request:
        """The request to send: unchanged, or with the body a policy action rewrote."""
        rewritten = getattr(verdict, "rewritten_body", None)
        if rewritten is None:
            return request
        headers = httpx2.Headers(request.headers)
        headers.pop("content-encoding", None)
        headers.pop("transfer-encoding", None)
        headers["content-length"] = str(len(rewritten))
        return httpx2.Request(request.method, request.url, headers=headers, content=rewritten,
                              extensions=request.extensions)

    @staticmethod
    def _noted(response: httpx2.Response, verdict: Verdict) -> httpx2.Response:
        response.extensions = {**response.extensions, EXTENSION: verdict}
        adjustments = getattr(verdict, "adjustments", ())
        if adjustments:
            response.headers["modelguard-adjusted"] = "; ".join(adjustments)
        return response


class GuardTransport(_Guarded, httpx2.BaseTransport):
    """A sync httpx2 transport that checks each request before it leaves the process.

    ``anthropic.Anthropic(http_client=httpx2.Client(transport=GuardTransport(catalog)))``.
    ``catalog``: a ``Catalog``, a ``RemoteCatalog`` or a path to a catalog JSON file;
    ``transport``: the transport to send through (default ``httpx2.HTTPTransport()``);
    ``root_path``: the prefix in front of the API routes, if known; ``options``: ``Guard``'s
    (``mode``, ``max_body_bytes``, ``on_violation``, ...).
    """

    def __init__(self, catalog: object, *, transport: httpx2.BaseTransport | None = None,
                 root_path: str | None = None, **options: Any) -> None:
        super().__init__(catalog, root_path, options)
        self.transport = transport if transport is not None else httpx2.HTTPTransport()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        route, headers, query = self._route(request)
        if route is None:
            return self.transport.handle_request(request)
        admitted = self.guard.admit(route, headers, query, request.read())
        if isinstance(admitted, Verdict):
            verdict = admitted
            self.guard.notify_sync(verdict)
        else:
            verdict = self.guard.inspect_sync(*admitted)
        if not verdict.allowed:
            return self._refused(request, verdict)
        response = self.transport.handle_request(self._outgoing(request, verdict))
        return self._noted(response, verdict)

    def close(self) -> None:
        """Close the wrapped transport (the catalog is the caller's: close it yourself)."""
        self.transport.close()


class AsyncGuardTransport(_Guarded, httpx2.AsyncBaseTransport):
    """The async twin of :class:`GuardTransport` (``AsyncAnthropic``, ``AsyncOpenAI``,
    google-genai's async client); ``transport`` defaults to ``httpx2.AsyncHTTPTransport()``."""

    def __init__(self, catalog: object, *, transport: httpx2.AsyncBaseTransport | None = None,
                 root_path: str | None = None, **options: Any) -> None:
        super().__init__(catalog, root_path, options)
        self.transport = transport if transport is not None else httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        route, headers, query = self._route(request)
        if route is None:
            return await self.transport.handle_async_request(request)
        admitted = self.guard.admit(route, headers, query, await request.aread())
        if isinstance(admitted, Verdict):
            verdict = admitted
            await self.guard.notify(verdict)
        else:
            verdict = await self.guard.inspect(*admitted)
        if not verdict.allowed:
            return self._refused(request, verdict)
        response = await self.transport.handle_async_request(self._outgoing(request, verdict))
        return self._noted(response, verdict)

    async def aclose(self) -> None:
        """Close the wrapped transport (the catalog is the caller's: close it yourself)."""
        await self.transport.aclose()


def _target(request: httpx2.Request) -> str:
    """The request target as sent on the wire: path and query."""
    return request.url.raw_path.decode("ascii", "surrogateescape")
