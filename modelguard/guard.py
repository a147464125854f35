"""``Guard``: the whole check for one request, for the middleware and for any proxy.

It strings the pure steps together (route → decode → features → policy → verdict → envelope)
and adds the one piece of I/O, the catalog lookup.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

import anyio.to_thread

from .body import BodyError, encoding_refusal, too_large, unreadable_encoding, worst_size
from .catalog.sources import CatalogUnavailable, as_source, no_credential
from .errors import OPENAI, Reason
from .headers import (
    HeadError,
    credential_of,
    declared_length,
    header_values,
    media_type_problem,
)
from .policy import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_DEPTH,
    Options,
    Violation,
    judge,
    read_features,
    required_tags,
)
from .routing import Route, families, is_post, match_route
from .types import CatalogLike, Mode
from .verdict import PASS, Verdict, refusal

__all__ = ["Guard", "Headers", "credential_of", "header_values"]

logger = logging.getLogger("modelguard")

Headers = Mapping[Any, Any] | Iterable[tuple[Any, Any]]
_MODES = ("enforce", "report")
WEBSOCKETS = ("refuse", "pass")
#: Reasons a report-mode guard only logs; malformed bodies and limits are refused regardless.
_POLICY = frozenset({Reason.UNSUPPORTED_MODEL, Reason.UNSUPPORTED_CAPABILITY,
                     Reason.UNSUPPORTED_CONTENT, Reason.MAX_TOKENS_EXCEEDED})
#: Bodies that may decode to more than this are inspected in a worker thread (§11), so the
#: event loop keeps serving other requests meanwhile.
LARGE_BODY = 1024 * 1024
#: The refusal when the guard itself failed: fail closed, never a 500.
_FAILED = "The request could not be inspected; it was refused to be safe."
#: Where a request with no known route is answered when the check itself fails.
_NO_ROUTE = Route(OPENAI, "unknown")


def normalize_headers(headers: Headers) -> list[tuple[str, str]]:
    """(lower-case name, value) pairs from a mapping or pairs, str or bytes."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    out = []
    for name, value in items:
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        out.append((str(name).lower(), str(value)))
    return out


class Guard:
    """Checks requests against the catalog; ``await guard.check(...)`` gives a :class:`Verdict`.

    ``catalog`` is a :class:`Catalog`, a ``RemoteCatalog`` or a path to a catalog JSON file.
    """

    def __init__(
        self,
        catalog: CatalogLike,
        *,
        mode: Mode = "enforce",
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_depth: int = DEFAULT_MAX_DEPTH,
        allow_unknown_content: bool = False,
        on_violation: Callable[[Verdict], Any] | None = None,
        embeddings: bool = False,
        tool_vendors: Mapping[str, Iterable[str]] | None = None,
        stored_state: str = "allow",
        websockets: str = "refuse",
        route_families: Mapping[str, bool] | None = None,
    ) -> None:
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, not {mode!r}")
        if websockets not in WEBSOCKETS:
            raise ValueError(f"websockets must be one of {WEBSOCKETS}, not {websockets!r}")
        self.source = as_source(catalog)
        self.mode = mode
        self.options = Options(max_body_bytes, max_depth, allow_unknown_content,
                               tool_vendors or {}, stored_state)
        self.on_violation = on_violation
        #: The route families guarded (routes.md D0, D13).
        self.families = families(route_families, embeddings=embeddings)
        #: ``"refuse"``: a websocket to a guarded route is closed before it is accepted (D10).
        self.websockets = websockets

    def __repr__(self) -> str:
        return f"Guard({self.source!r}, mode={self.mode!r})"

    # -- the steps before the body ---------------------------------------------------------

    def route(self, method: str, paths: Iterable[str], headers: list[tuple[str, str]],
              root_path: str = "") -> Route | None:
        """The guarded route of a request, or None to let it pass untouched."""
        if not is_post(method, headers):
            return None
        return match_route(*paths, root_path=root_path, enabled=self.families)

    def websocket_route(self, paths: Iterable[str], root_path: str = "") -> Route | None:
        """The guarded route a websocket opens, when such websockets are refused (D10)."""
        if self.websockets == "pass":
            return None
        return match_route(*paths, root_path=root_path, enabled=self.families)

    def precheck(self, route: Route, headers: list[tuple[str, str]], query: str) -> Verdict | None:
        """Refusals that need no body: encoding, media type, framing, size and credential."""
        try:
            self._check_head(route, headers, query)
        except HeadError as error:
            return self.refuse(route, error.reason, error.message)
        except BodyError as error:
            return self.refuse(route, error.reason, error.message, error.path)
        return None

    def _check_head(self, route: Route, headers: list[tuple[str, str]], query: str) -> None:
        encodings, media_types, lengths = [], [], []
        for name, value in headers:
            if name == "content-encoding":
                encodings.append(value)
            elif name == "content-type":
                media_types.append(value)
            elif name == "content-length":
                lengths.append(value)
        if encodings:
            bad = unreadable_encoding(encodings)
            if bad is not None:
                raise encoding_refusal(bad)
        if "$ct" in query or "%24ct" in query.lower():
            media_types += [v for k, v in parse_qsl(query, keep_blank_values=True) if k == "$ct"]
        problem = media_type_problem(media_types,
                                     reads_multipart=route.multipart)
        if problem is not None:
            raise HeadError(Reason.MEDIA_TYPE, problem)
        declared = declared_length(lengths)
        if declared is not None and declared > self.options.max_body_bytes:
            raise too_large(self.options.max_body_bytes)
        if self.source.needs_credential:
            credential_of(headers, query)  # a refused credential is refused before the body

    # -- the whole check ----------------------------------------------------------------------

    async def check(self, method: str, target: str, headers: Headers, body: bytes) -> Verdict:
        """The verdict for one request; ``target`` is the path with its query string.

        Never raises: a failure of the check itself refuses the request (fail closed)."""
        try:
            return await self._check(method, target, headers, body)
        except Exception:
            logger.exception("modelguard: internal error while checking a request")
            return self.failed(None)

    async def _check(self, method: str, target: str, headers: Headers, body: bytes) -> Verdict:
        pairs = normalize_headers(headers)
        path, _, query = target.partition("?")
        route = self.route(method, (target,), pairs)
        if route is None:
            return PASS
        early = self.precheck(route, pairs, query)
        if early is None and len(body) > self.options.max_body_bytes:
            error = too_large(self.options.max_body_bytes)
            early = self.refuse(route, error.reason, error.message)
        if early is not None:
            await self.notify(early)
            return early
        return await self.inspect(route, pairs, query, body)

    async def inspect(self, route: Route, headers: list[tuple[str, str]], query: str,
                      body: bytes) -> Verdict:
        """Check a body already read within the size limit; never raises on client input."""
        try:
            verdict = await self._inspect(route, headers, query, body)
        except Exception:  # a bug must not turn client input into a 500: fail closed
            logger.exception("modelguard: internal error while checking a request")
            verdict = self.failed(route)
        await self.notify(verdict)
        return verdict

    def failed(self, route: Route | None) -> Verdict:
        """The fail-closed refusal for a check that itself went wrong."""
        return self.refuse(route or _NO_ROUTE, Reason.INVALID, _FAILED)

    async def _inspect(self, route: Route, headers: list[tuple[str, str]], query: str,
                       body: bytes) -> Verdict:
        encodings = header_values(headers, "content-encoding")
        try:
            media_types = header_values(headers, "content-type")
            if worst_size(len(body), encodings) > LARGE_BODY:
                features = await anyio.to_thread.run_sync(
                    read_features, route, body, encodings, self.options, media_types)
            else:
                features = read_features(route, body, encodings, self.options, media_types)
        except BodyError as error:
            return self.refuse(route, error.reason, error.message, error.path)
        credential = None
        try:
            if self.source.needs_credential:
                credential = credential_of(headers, query)
        except HeadError as error:
            return self.refuse(route, error.reason, error.message)
        try:
            if self.source.needs_credential and credential is None:
                raise no_credential()
            catalog = await self.source.catalog_for(credential)
            violations = judge(route, features, catalog, self.options)
            if any(v.reason == Reason.UNSUPPORTED_MODEL for v in violations):
                fresher = await self.source.refresh_for_unknown(credential)
                if fresher is not None:
                    catalog = fresher
                    violations = judge(route, features, catalog, self.options)
        except CatalogUnavailable as error:
            return self.refuse(route, error.reason, error.message, retry_after=error.retry_after)
        main = features.models[0].slug if features.models else None
        entry = catalog.get(main) if main is not None else None
        required = required_tags(features, route)
        if not violations:
            return Verdict(allowed=True, guarded=True, protocol=route.protocol, route=route.name,
                           model_id=main, model=entry, required=required)
        first = violations[0]
        reject = self.mode == "enforce" or first.reason not in _POLICY
        logger.info("modelguard %s %s request for model %r: %s", "refused" if reject
                    else "reported", route.protocol, main, first.reason,
                    extra={"modelguard_reason": first.reason, "modelguard_path": first.path})
        return refusal(route.protocol, route.name, first, reject=reject, model=entry,
                       required=required, violations=tuple(violations), model_id=main)

    def refuse(self, route: Route, reason: str, message: str, path: str | None = None,
                retry_after: int | None = None) -> Verdict:
        return refusal(route.protocol, route.name, Violation(reason, message, path),
                       retry_after=retry_after, model_id=route.model)

    async def notify(self, verdict: Verdict) -> None:
        """Hand a verdict with violations to ``on_violation``; a failing hook is only logged."""
        if not verdict.violations or self.on_violation is None:
            return
        try:
            result = self.on_violation(verdict)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("modelguard: on_violation hook raised")
