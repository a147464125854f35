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

from .body import BodyError, too_large, unreadable_encoding
from .catalog.sources import CatalogUnavailable, as_source, no_credential
from .errors import Reason
from .hints import annotate
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

__all__ = ["Guard", "Headers"]

logger = logging.getLogger("modelguard")

Headers = Mapping[Any, Any] | Iterable[tuple[Any, Any]]
_MODES = ("enforce", "report")
WEBSOCKETS = ("refuse", "pass")
#: Reasons a report-mode guard only logs; malformed bodies and limits are refused regardless.
_POLICY = frozenset({Reason.UNSUPPORTED_MODEL, Reason.UNSUPPORTED_CAPABILITY,
                     Reason.UNSUPPORTED_CONTENT, Reason.MAX_TOKENS_EXCEEDED})


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


def header_values(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in headers if key == name]


def credential_of(headers: list[tuple[str, str]], query: str) -> str | None:
    """The caller's key: x-api-key, then Bearer, then x-goog-api-key, then ``?key=``."""
    for value in header_values(headers, "x-api-key"):
        if value.strip():
            return value.strip()
    for value in header_values(headers, "authorization"):
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    for value in header_values(headers, "x-goog-api-key"):
        if value.strip():
            return value.strip()
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == "key" and value:
            return value
    return None


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
        """Refusals that need no body: an unreadable encoding or media type, a declared size."""
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
                return self.refuse(route, Reason.MEDIA_TYPE, (
                    f"Content-Encoding {bad!r} is not supported here; send the body "
                    "uncompressed, or with gzip or deflate."))
        if "$ct" in query or "%24ct" in query.lower():
            media_types += [v for k, v in parse_qsl(query, keep_blank_values=True) if k == "$ct"]
        if not route.multipart and any(v.strip().lower().startswith("multipart/")
                                       for v in media_types):
            return self.refuse(route, Reason.MEDIA_TYPE, (
                "multipart bodies are not supported here; send the request as JSON."))
        for value in lengths:
            if value.strip().isdigit() and int(value) > self.options.max_body_bytes:
                error = too_large(self.options.max_body_bytes)
                return self.refuse(route, error.reason, error.message)
        return None

    # -- the whole check ----------------------------------------------------------------------

    async def check(self, method: str, target: str, headers: Headers, body: bytes) -> Verdict:
        """The verdict for one request; ``target`` is the path with its query string."""
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
            verdict = self.refuse(route, Reason.INVALID, (
                "The request could not be inspected; it was refused to be safe."))
        await self.notify(verdict)
        return verdict

    async def _inspect(self, route: Route, headers: list[tuple[str, str]], query: str,
                       body: bytes) -> Verdict:
        encodings = header_values(headers, "content-encoding")
        try:
            features = read_features(route, body, encodings, self.options,
                                     header_values(headers, "content-type"))
        except BodyError as error:
            return self.refuse(route, error.reason, error.message, error.path)
        credential = None
        if self.source.needs_credential:
            credential = credential_of(headers, query)
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
        return annotate(refusal(route.protocol, route.name, first, reject=reject, model=entry,
                                required=required, violations=tuple(violations),
                                model_id=main), headers)

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
