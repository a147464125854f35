"""``Guard``: the whole check for one request, for the middleware and for any proxy.

It strings the pure steps together (route → decode → features → policy → verdict → envelope)
and adds the one piece of I/O, the catalog lookup.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import Callable, Coroutine, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar

from . import rewrite
from ._resume import resume
from .actions import CLAMP, REFUSE, STRIP, resolve_actions
from .body import BodyError, encoding_refusal, too_large, unreadable_encoding, worst_size
from .catalog import Catalog
from .catalog.sources import CatalogUnavailable, StaticSource, as_source, no_credential
from .errors import OPENAI, Reason
from .headers import (
    SLOTS,
    HeadError,
    credential_of,
    declared_length,
    header_values,
    media_type_problem,
)
from .hints import USER_AGENT, annotate
from .policy import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_DEPTH,
    Options,
    Violation,
    decode_body,
    judge,
    judgement_key,
    need_rules,
    read_decoded,
    required_tags,
)
from .protocols._base import Features
from .routing import METHOD_OVERRIDES, Route, families, is_post, match_route
from .types import CatalogLike, Mode
from .verdict import PASS, Verdict, refusal
from .wording import compose

__all__ = ["Guard", "Headers", "credential_of", "header_values"]

logger = logging.getLogger("modelguard")

Headers = Mapping[Any, Any] | Iterable[tuple[Any, Any]]
_MODES = ("enforce", "report")
WEBSOCKETS = ("refuse", "pass")
#: Bodies that may decode to more than this are inspected in a worker thread (§11), so the
#: event loop keeps serving other requests meanwhile.
LARGE_BODY = 1024 * 1024


def _cores() -> int:
    """The CPUs this process may run on (its affinity, where the platform tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def large_body_workers(cores: int) -> int:
    """Large bodies inspected at once per event loop on ``cores`` CPUs: one per core beyond
    the event loop's own, at most two. The decoder holds the GIL for all but the long
    strings, so more threads would not inspect faster; and a long string is scanned with the
    GIL released, so on a 2-core machine a second scan takes the core the event loop needs (a
    concurrent tiny request's p99 under four 32 MiB bodies: 26–28 ms with two, 11–20 ms with
    one)."""
    return max(1, min(2, cores - 1))


#: Large bodies joined and decoded at once per event loop (see :func:`large_body_workers`).
LARGE_BODY_WORKERS = large_body_workers(_cores())
#: How many allowed verdicts a guard keeps (one per route, model and needs seen; bounded).
_ALLOWED_VERDICTS = 1024
#: How many judgements of allowed requests a guard remembers per catalog, and for how many
#: catalogs at once (see :meth:`Guard._judged`).
_JUDGEMENTS = 1024
_JUDGED_CATALOGS = 8
#: The refusal when the guard itself failed: fail closed, never a 500.
_FAILED = "The request could not be inspected; it was refused to be safe."
#: Where a request with no known route is answered when the check itself fails.
_NO_ROUTE = Route(OPENAI, "unknown")
#: Targets whose POST route a guard remembers (see :meth:`Guard._route_of`), and the
#: longest one remembered (as :func:`~modelguard.routing.match_route` caches).
_ROUTED_TARGETS = 4096
_ROUTED_TARGET_CHARS = 512
_UNDECIDED: Any = object()


@dataclass(frozen=True, slots=True)
class _Need:
    """What the sans-I/O check needs next: the caller's catalog, or an early refresh of it."""

    credential: str | None
    refresh: bool = False


#: The check as a generator: it yields :class:`_Need`, receives a Catalog (or None for "no
#: early refresh"; CatalogUnavailable is thrown in), and returns the Verdict. ``check`` and
#: ``check_sync`` are two thin drivers of this one description.
_Steps = Generator[_Need, Any, Verdict]
#: A request admitted to inspection: (route, headers, query, body).
_Admitted = tuple[Route, list[tuple[str, str]], str, bytes]


def normalize_headers(headers: Headers) -> list[tuple[str, str]]:
    """(lower-case name, value) pairs from a mapping or pairs, str or bytes."""
    kind = type(headers)
    if kind is not tuple and kind is not list and (kind is dict or isinstance(headers, Mapping)):
        headers = headers.items()  # type: ignore[union-attr]
    out = []
    for name, value in headers:
        if type(name) is not str:
            name = name.decode("latin-1") if isinstance(name, bytes) else str(name)
        if type(value) is not str:
            value = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        out.append((name.lower(), value))
    return out


#: Every header name a check reads (the head, credentials, method overrides, the agent hint,
#: the middleware's models listing): ``check``, ``check_sync`` and the middleware keep only
#: these, so a request's other headers cost one set test each. A step that reads another
#: header must add its name here.
READ_HEADERS = frozenset({"content-encoding", "content-type", "content-length", USER_AGENT,
                          "anthropic-version", *(name for _, name in SLOTS if name is not None),
                          *METHOD_OVERRIDES})
#: The same names as bytes: an ASGI name is tested before it is decoded. (A Latin-1 name with
#: a byte over 0x7f lowers to a non-ASCII name either way, so the two tests agree.)
_READ_BYTES = frozenset(name.encode("latin-1") for name in READ_HEADERS)


def read_headers(headers: Headers) -> list[tuple[str, str]]:
    """:func:`normalize_headers` of the names in :data:`READ_HEADERS` only. Every value is
    still converted as there when it is not text or bytes, so one that cannot be read fails
    the same way."""
    kind = type(headers)
    if kind is not tuple and kind is not list and (kind is dict or isinstance(headers, Mapping)):
        headers = headers.items()  # type: ignore[union-attr]
    out = []
    for name, value in headers:
        if type(name) is str:
            name = name.lower()
            wanted = name in READ_HEADERS
        elif type(name) is bytes:
            lowered = name.lower()
            wanted = lowered in _READ_BYTES
            if wanted:
                name = lowered.decode("latin-1")
        else:
            name = (name.decode("latin-1") if isinstance(name, bytes) else str(name)).lower()
            wanted = name in READ_HEADERS
        if type(value) is not str:
            if not wanted and isinstance(value, bytes):
                continue
            value = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        if wanted:
            out.append((name, value))
    return out


class Guard:
    """Checks requests against the catalog; ``await guard.check(...)`` gives a :class:`Verdict`.

    ``catalog`` is a :class:`Catalog`, a ``RemoteCatalog`` or a path to a catalog JSON file.
    ``actions`` (a mapping of capability tag or ``max_tokens`` to ``refuse``/``allow``/
    ``strip``/``clamp``, or a preset name such as ``"compat"``) says what to do instead of
    refusing; an invalid pairing is a :class:`ValueError` here.
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
        actions: Mapping[str, str] | str | None = None,
    ) -> None:
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, not {mode!r}")
        if websockets not in WEBSOCKETS:
            raise ValueError(f"websockets must be one of {WEBSOCKETS}, not {websockets!r}")
        self.options = Options(max_body_bytes, max_depth, allow_unknown_content,
                               tool_vendors=tool_vendors or {}, stored_state=stored_state,
                               actions=resolve_actions(actions))
        self.source = as_source(catalog)
        self._allowed_verdicts: dict[tuple[Any, ...], Verdict] = {}
        #: id(catalog) → (that catalog, judgement key → (limits, verdict)); see _judged.
        self._judgements: dict[int, tuple[Catalog, dict[tuple[Any, ...],
                                                        tuple[tuple[int | None, ...],
                                                              Verdict]]]] = {}
        self.mode = mode
        self.on_violation = on_violation
        #: The route families guarded (routes.md D0, D13).
        self.families = families(route_families, embeddings=embeddings)
        #: ``"refuse"``: a websocket to a guarded route is closed before it is accepted (D10).
        self.websockets = websockets
        #: The families the routes were decided for, and target → route (see _route_of).
        self._routes: tuple[frozenset[str], dict[str, Route | None]] = (self.families, {})

    @property
    def actions(self) -> Mapping[str, str]:
        """The keys whose action is not ``refuse``, and their actions."""
        return self.options.actions

    def __repr__(self) -> str:
        actions = f", actions={dict(self.actions)!r}" if self.actions else ""
        return f"Guard({self.source!r}, mode={self.mode!r}{actions})"

    # -- the steps before the body ---------------------------------------------------------

    def route(self, method: str, paths: Iterable[str], headers: list[tuple[str, str]],
              root_path: str | None = "") -> Route | None:
        """The guarded route of a request, or None to let it pass untouched.

        ``root_path=None``: a path that ends in a guarded route is guarded (the transports)."""
        if not is_post(method, headers):
            return None
        if root_path is None:
            return match_route(*paths, enabled=self.families, any_prefix=True)
        return match_route(*paths, root_path=root_path, enabled=self.families)

    def websocket_route(self, paths: Iterable[str], root_path: str = "") -> Route | None:
        """The guarded route a websocket opens, when such websockets are refused (D10)."""
        if self.websockets == "pass":
            return None
        return match_route(*paths, root_path=root_path, enabled=self.families)

    def precheck(self, route: Route, headers: list[tuple[str, str]], query: str) -> Verdict | None:
        """Refusals that need no body: encoding, media type, framing, size and credential."""
        head = self._head(route, headers, query, 0)
        return None if type(head) is list else head

    def _head(self, route: Route, headers: list[tuple[str, str]], query: str,
              size: int) -> Verdict | list[str]:
        """:meth:`precheck`, then the size of a body of ``size`` bytes: a refusal, or the
        content codings (gathered by the same scan of the headers, so read once)."""
        encodings, media_types, lengths = [], [], []
        for name, value in headers:
            if name == "content-encoding":
                encodings.append(value)
            elif name == "content-type":
                media_types.append(value)
            elif name == "content-length":
                lengths.append(value)
        limit = self.options.max_body_bytes
        try:
            if encodings:
                bad = unreadable_encoding(encodings)
                if bad is not None:
                    raise encoding_refusal(bad)
            if query and ("$ct" in query or "%24ct" in query.lower()):
                media_types += [v for k, v in parse_qsl(query, keep_blank_values=True)
                                if k == "$ct"]
            if media_types:
                problem = media_type_problem(media_types, reads_multipart=route.multipart)
                if problem is not None:
                    raise HeadError(Reason.MEDIA_TYPE, problem)
            if lengths:
                declared = declared_length(lengths)
                if declared is not None and declared > limit:
                    raise too_large(limit)
            if self.source.needs_credential:
                credential_of(headers, query)  # a refused credential is refused before the body
        except HeadError as error:
            return self.refuse(route, error.reason, error.message)
        except BodyError as error:
            return self.refuse(route, error.reason, error.message, error.path)
        if size > limit:
            error = too_large(limit)
            return self.refuse(route, error.reason, error.message)
        return encodings

    # -- the whole check ----------------------------------------------------------------------

    async def check(self, method: str, target: str, headers: Headers, body: bytes, *,
                    root_path: str | None = "") -> Verdict:
        """The verdict for one request; ``target`` is the path with its query string.

        ``root_path``: a path prefix removed before matching, like the ASGI ``root_path`` (a
        proxy mounted under ``/llm`` passes ``root_path="/llm"``); ``None`` guards any path
        that ends in a guarded route. A request the guard does not recognise is allowed with
        ``verdict.guarded`` False: check it when a prefix is involved. Never raises: a failure
        of the check itself refuses the request (fail closed).
        """
        start = self._start(method, target, headers, body, root_path)
        if isinstance(start, Verdict):
            await self.notify(start)
            return start
        return await self.inspect(*start)

    def check_sync(self, method: str, target: str, headers: Headers, body: bytes, *,
                   root_path: str | None = "") -> Verdict:
        """:meth:`check` without an event loop (WSGI, Flask, Django, threads): the same
        verdict; a catalog that must be fetched is fetched blocking (``RemoteCatalog``
        shares one cache and one fetch per key between threads and coroutines)."""
        # _start, admit and inspect_sync in one frame: a tiny request pays little else.
        try:
            pairs = read_headers(headers)
            route = self._route_of(method, target, pairs, root_path)
            if route is None:
                return PASS
            query = target.partition("?")[2]
            head = self._head(route, pairs, query, len(body))
        except Exception:
            logger.exception("modelguard: internal error while checking a request")
            head = self.failed(None)
        if type(head) is not list:
            self.notify_sync(head)
            return head
        return self._inspect_sync(route, pairs, query, body, head)

    def _start(self, method: str, target: str, headers: Headers, body: bytes,
               root_path: str | None) -> Verdict | _Admitted:
        """Everything before the catalog: the route and the refusals that need no catalog.
        Never raises: a failure of its own refuses the request (fail closed)."""
        try:
            pairs = read_headers(headers)
            route = self._route_of(method, target, pairs, root_path)
            if route is None:
                return PASS
            return self.admit(route, pairs, target.partition("?")[2], body)
        except Exception:
            logger.exception("modelguard: internal error while checking a request")
            return self.failed(None)

    def _route_of(self, method: str, target: str, pairs: list[tuple[str, str]],
                  root_path: str | None) -> Route | None:
        """:meth:`route` of one target; a POST without a root path is decided once per
        target (a pure function of it and :attr:`families`), bounded like the route cache."""
        if method != "POST" or root_path != "":
            return self.route(method, (target,), pairs, root_path)
        routes = self._routes
        if routes[0] is not self.families:
            routes = self._routes = (self.families, {})
        route = routes[1].get(target, _UNDECIDED)
        if route is _UNDECIDED:
            route = self.route(method, (target,), pairs, root_path)
            if len(target) <= _ROUTED_TARGET_CHARS:
                if len(routes[1]) >= _ROUTED_TARGETS:
                    routes[1].clear()
                routes[1][target] = route
        return route

    def admit(self, route: Route, headers: list[tuple[str, str]], query: str,
              body: bytes) -> Verdict | _Admitted:
        """A refusal that needs no catalog (encoding, media type, size), or the arguments of
        :meth:`inspect` / :meth:`inspect_sync` for a request on ``route``."""
        head = self._head(route, headers, query, len(body))
        if type(head) is not list:
            return head
        return route, headers, query, body

    async def inspect(self, route: Route, headers: list[tuple[str, str]], query: str,
                      body: bytes) -> Verdict:
        """Check a body already read within the size limit; never raises on client input.

        A body that may decode to more than :data:`LARGE_BODY` is decoded and read in a
        worker thread, so the event loop keeps serving other requests meanwhile. A static
        catalog answers at once, so its check runs without a round trip through the loop."""
        return await self.inspect_parts(route, headers, query, (body,))

    async def inspect_parts(self, route: Route, headers: list[tuple[str, str]], query: str,
                            parts: Sequence[bytes]) -> Verdict:
        """:meth:`inspect` for a body still in the pieces it arrived in. A large body is
        joined inside the worker thread, and at most :data:`LARGE_BODY_WORKERS` of them are
        joined and decoded at once per event loop: requests waiting their turn hold only
        their own pieces, so peak memory stays near the bytes in flight."""
        try:
            encodings = header_values(headers, "content-encoding")
            if worst_size(sum(map(len, parts)), encodings) > LARGE_BODY:
                read = await anyio.to_thread.run_sync(self._read_parts, route, headers, parts,
                                                      encodings, limiter=_large_limiter())
            else:
                read = self._read(route, headers, _joined(parts), encodings)
            if isinstance(read, Verdict):
                verdict = read
            elif type(self.source) is StaticSource:  # answers at once: no await needed
                verdict = self._static(route, headers, *read, self.source.catalog)
            else:
                verdict = await self._drive(self._steps(route, headers, query, *read))
        except Exception:  # a bug must not turn client input into a 500: fail closed
            logger.exception("modelguard: internal error while checking a request")
            verdict = self.failed(route)
        if verdict.violations:
            await self.notify(verdict)
        return verdict

    def inspect_sync(self, route: Route, headers: list[tuple[str, str]], query: str,
                     body: bytes) -> Verdict:
        """:meth:`inspect` without an event loop."""
        return self._inspect_sync(route, headers, query, body, None)

    def _inspect_sync(self, route: Route, headers: list[tuple[str, str]], query: str,
                      body: bytes, encodings: list[str] | None) -> Verdict:
        """:meth:`inspect_sync` given the content codings, when the head was already read."""
        try:
            if encodings is None:
                encodings = header_values(headers, "content-encoding")
            try:  # _read, in this frame
                decoded = (decode_body(route, body, encodings, self.options)
                           if encodings or route.ambiguous else body)
                features = read_decoded(route, decoded, self.options, header_values(
                    headers, "content-type") if route.multipart else ())
            except BodyError as error:
                verdict = self.refuse(route, error.reason, error.message, error.path)
            else:
                source = self.source
                if type(source) is StaticSource:
                    verdict = self._static(route, headers, decoded, features, source.catalog)
                else:
                    verdict = self._drive_sync(self._steps(route, headers, query, decoded,
                                                           features))
        except Exception:  # a bug must not turn client input into a 500: fail closed
            logger.exception("modelguard: internal error while checking a request")
            verdict = self.failed(route)
        if verdict.violations:
            self.notify_sync(verdict)
        return verdict

    async def _drive(self, steps: _Steps) -> Verdict:
        """Run the check's steps, awaiting each catalog they ask for."""
        done, step = resume(steps)
        while not done:
            ask = self.source.refresh_for_unknown if step.refresh else self.source.catalog_for
            try:
                value, failed = await ask(step.credential), False
            except CatalogUnavailable as error:
                value, failed = error, True
            done, step = resume(steps, value, failed)
        return step

    def _drive_sync(self, steps: _Steps) -> Verdict:
        """Run the check's steps, fetching each catalog they ask for blocking."""
        done, step = resume(steps)
        while not done:
            name = "refresh_for_unknown" if step.refresh else "catalog_for"
            try:
                value, failed = _blocking(self.source, name, step.credential), False
            except CatalogUnavailable as error:
                value, failed = error, True
            done, step = resume(steps, value, failed)
        return step

    def failed(self, route: Route | None) -> Verdict:
        """The fail-closed refusal for a check that itself went wrong."""
        return self.refuse(route or _NO_ROUTE, Reason.INVALID, _FAILED)

    def _read_parts(self, route: Route, headers: list[tuple[str, str]],
                    parts: Sequence[bytes],
                    encodings: list[str]) -> tuple[bytes, Features] | Verdict:
        """:meth:`_read` of a body in pieces (run in a worker thread for a large body)."""
        return self._read(route, headers, _joined(parts), encodings)

    def _read(self, route: Route, headers: list[tuple[str, str]], body: bytes,
              encodings: list[str]) -> tuple[bytes, Features] | Verdict:
        """Decode the body and read its features (pure, so it may run in a worker thread);
        a body that cannot be read is refused."""
        try:
            decoded = (decode_body(route, body, encodings, self.options)
                       if encodings or route.ambiguous else body)
            types = header_values(headers, "content-type") if route.multipart else ()
            return decoded, read_decoded(route, decoded, self.options, types)
        except BodyError as error:
            return self.refuse(route, error.reason, error.message, error.path)

    def _steps(self, route: Route, headers: list[tuple[str, str]], query: str,
               decoded: bytes, features: Features) -> _Steps:
        """The check after the body was read, as a pure description: the catalog is asked
        for (by yielding), never fetched here."""
        credential = None
        try:
            if self.source.needs_credential:
                credential = credential_of(headers, query)
        except HeadError as error:
            return self.refuse(route, error.reason, error.message)
        try:
            if self.source.needs_credential and credential is None:
                raise no_credential()
            catalog = yield _Need(credential)
            known = self._judged(route, features, catalog)
            if known is not None:
                return known
            violations = judge(route, features, catalog, self.options)
            if any(v.reason == Reason.UNSUPPORTED_MODEL for v in violations):
                fresher = yield _Need(credential, refresh=True)
                if fresher is not None:
                    catalog = fresher
                    violations = judge(route, features, catalog, self.options)
        except CatalogUnavailable as error:
            if self.mode == "report" and error.reason == Reason.UNAVAILABLE:
                return self._outage(route, features, error)
            return self.refuse(route, error.reason, error.message, retry_after=error.retry_after)
        return self._conclude(route, headers, decoded, features, catalog, violations)

    def _static(self, route: Route, headers: list[tuple[str, str]], decoded: bytes,
                features: Features, catalog: Catalog) -> Verdict:
        """:meth:`_steps` for one fixed catalog, without the generator: it needs no
        credential, is never unavailable and has no fresher version, so the steps reduce
        to judging once (proven equal to the general path by differential tests)."""
        known = self._judged(route, features, catalog)
        if known is not None:
            return known
        violations = judge(route, features, catalog, self.options)
        return self._conclude(route, headers, decoded, features, catalog, violations)

    def _conclude(self, route: Route, headers: list[tuple[str, str]], decoded: bytes,
                  features: Features, catalog: Catalog, violations: list[Violation]) -> Verdict:
        """The verdict once the catalog has judged the features."""
        main = features.models[0].slug if features.models else None
        entry = catalog.get(main) if main is not None else None
        required = required_tags(features, route)
        if not violations:
            verdict = self._allowed(route, main, entry, required)
            self._remember(route, features, catalog, verdict)
            return verdict
        return annotate(self._decide(route, catalog, violations, decoded, main, entry, required),
                        headers)

    def _judged(self, route: Route, features: Features, catalog: Catalog) -> Verdict | None:
        """The allowed verdict of a request judged before with the same route, models, needs
        and catalog, if its output caps are still within the limits; else None (judge it).

        ``judge`` is a pure function of (route, features, catalog, options) and an allowed
        request's verdict depends on none of the features' paths or wording, so what an
        allowed judgement read is its key: the models, every need's rule fields and the
        caps against the limits remembered with it (differential tests hold it equal)."""
        slot = self._judgements.get(id(catalog))
        if slot is None or slot[0] is not catalog:
            return None
        models = features.models
        if len(models) == 1 and models[0].thinking is None and not features.unknown and \
                not features.stored:  # judgement_key's most common key, built in this frame
            needs = features.needs
            key = (route.protocol, route.name, route.counting, (models[0].slug, models[0].only),
                   need_rules(needs) if needs else ())
        else:
            key = judgement_key(route, features)
        known = None if key is None else slot[1].get(key)
        if known is None:
            return None
        # one limit per model: the key holds one entry per model
        i = 0
        for limit in known[0]:
            if limit is not None:
                for cap in models[i].caps:
                    if cap[1] > limit:
                        return None
            i += 1  # noqa: SIM113 (enumerate costs more on this path)
        return known[1]

    def _remember(self, route: Route, features: Features, catalog: Catalog,
                  verdict: Verdict) -> None:
        key = judgement_key(route, features)
        if key is None:
            return
        limits = tuple(entry.max_output_tokens if (entry := catalog.get(ref.slug)) else None
                       for ref in features.models)
        slot = self._judgements.get(id(catalog))
        if slot is None or slot[0] is not catalog:
            # A few catalogs at a time (one per caller key with a remote catalog): what is
            # remembered must not keep every catalog ever seen alive.
            if len(self._judgements) >= _JUDGED_CATALOGS:
                self._judgements.clear()
            slot = self._judgements[id(catalog)] = (catalog, {})
        if len(slot[1]) >= _JUDGEMENTS:
            slot[1].clear()
        slot[1][key] = (limits, verdict)

    def _allowed(self, route: Route, main: str | None, entry: Any,
                 required: frozenset[str]) -> Verdict:
        """The verdict of an allowed request with no violation. It depends on these four
        values alone and is immutable, so one is kept per combination (like :data:`PASS`);
        a catalog entry that changed is a different entry, so its verdict is rebuilt."""
        key = (route.protocol, route.name, main, required)
        verdict = self._allowed_verdicts.get(key)
        if verdict is None or verdict.model is not entry:
            verdict = Verdict(allowed=True, guarded=True, protocol=route.protocol,
                              route=route.name, model_id=main, model=entry, required=required)
            if len(self._allowed_verdicts) >= _ALLOWED_VERDICTS:
                self._allowed_verdicts.clear()
            self._allowed_verdicts[key] = verdict
        return verdict

    def _decide(self, route: Route, catalog: Catalog, violations: list[Violation],
                decoded: bytes, main: str | None, entry: Any,
                required: frozenset[str]) -> Verdict:
        """Refuse, or forward (rewritten when an action changes the body)."""
        report = self.mode == "report"
        forwarded = report or all(not v.refused for v in violations)
        rewritten: bytes | None = None
        adjustments: tuple[str, ...] = ()
        if forwarded and any(v.action in (STRIP, CLAMP) for v in violations):
            violations, rewritten, adjustments = self._rewrite(route, catalog, violations,
                                                               decoded)
            forwarded = report or all(not v.refused for v in violations)
        refused = [v for v in violations if v.refused]
        _log(route, main, violations, adjustments, forwarded)
        if not forwarded:
            return refusal(route.protocol, route.name, refused[0], model=entry,
                           required=required, violations=tuple(violations), model_id=main)
        return Verdict(allowed=True, guarded=True, protocol=route.protocol, route=route.name,
                       model_id=main, model=entry, required=required,
                       violations=tuple(violations), adjustments=adjustments,
                       rewritten_body=rewritten)

    def _rewrite(self, route: Route, catalog: Catalog, violations: list[Violation],
                 decoded: bytes) -> tuple[list[Violation], bytes | None, tuple[str, ...]]:
        """Apply the strip and clamp actions; what they cannot do is refused after all."""
        plan = rewrite.Plan(
            strip=frozenset(v.capability for v in violations
                            if v.action == STRIP and v.capability is not None),
            clamp=_clamps(violations),
            strip_thinking=self.options.actions.get("thinking") == STRIP
            and rewrite.can_strip(route, "thinking"),
        )
        try:
            done = rewrite.apply(route, decoded, plan)
        except rewrite.Unfit as unfit:
            note = (f"it cannot be lowered: {unfit.path} {unfit.budget} would need at least "
                    f"{unfit.minimum} tokens below the cap; lower or remove the thinking "
                    "budget")
            violations = [_renoted(v, note) if v.action == CLAMP else v for v in violations]
            if not plan.strip:
                return violations, None, ()
            done = rewrite.apply(route, decoded, replace(plan, clamp={}))
        if not self._resolved(route, catalog, done.body):
            logger.error("modelguard: a %s rewrite did not resolve what it was meant to; "
                         "refusing the request instead", route.name)
            return ([replace(v, action=REFUSE) if v.action in (STRIP, CLAMP) else v
                     for v in violations], None, ())
        return violations, done.body, done.adjustments

    def _resolved(self, route: Route, catalog: Catalog, body: bytes) -> bool:
        """Whether a rewritten body passes the check but for what is refused or allowed."""
        try:
            again = judge(route, read_decoded(route, body, self.options), catalog, self.options)
        except BodyError:
            return False
        return all(v.action not in (STRIP, CLAMP) for v in again)

    def _outage(self, route: Route, features: Features, error: CatalogUnavailable) -> Verdict:
        """Report mode: no catalog is recorded and the request forwarded (decisions.md §9)."""
        main = features.models[0].slug if features.models else None
        logger.warning("modelguard: no catalog for a %s request (%s); report mode forwards it",
                       route.protocol, error.message,
                       extra={"modelguard_reason": error.reason})
        return Verdict(allowed=True, guarded=True, protocol=route.protocol, route=route.name,
                       model_id=main, required=required_tags(features, route),
                       violations=(Violation(error.reason, error.message, model=main),))

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

    def notify_sync(self, verdict: Verdict) -> None:
        """:meth:`notify` without an event loop (an async hook runs to completion here)."""
        if not verdict.violations or self.on_violation is None:
            return
        try:
            result = self.on_violation(verdict)
            if inspect.isawaitable(result):
                _run_to_end(result)
        except Exception:
            logger.exception("modelguard: on_violation hook raised")


def _joined(parts: Sequence[bytes]) -> bytes:
    """The body in one piece; ``bytes.join`` copies a large one with the GIL released, so
    joining 32 MiB in a worker thread does not stall the event loop."""
    return parts[0] if len(parts) == 1 else b"".join(parts)


#: Per event loop: the worker threads inspecting large bodies (``inspect_parts``).
_LARGE_LIMITER: RunVar[anyio.CapacityLimiter] = RunVar("modelguard_large_bodies")


def _large_limiter() -> anyio.CapacityLimiter:
    try:
        return _LARGE_LIMITER.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(LARGE_BODY_WORKERS)
        _LARGE_LIMITER.set(limiter)
        return limiter


def _blocking(source: Any, name: str, credential: str | None) -> Any:
    """A catalog source's answer without an event loop: its ``*_sync`` method, else its
    coroutine run to completion on a private loop."""
    method = getattr(source, name + "_sync", None)
    if method is not None:
        return method(credential)
    return _run_to_end(getattr(source, name)(credential))


def _run_to_end(awaitable: Any) -> Any:
    """Run an awaitable from sync code (not from inside a running event loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        if inspect.iscoroutine(awaitable):
            awaitable.close()
        raise RuntimeError("a synchronous check cannot wait for a coroutine inside a running "
                           "event loop; use await guard.check(...) there")

    async def wait() -> Any:
        return await awaitable

    coroutine: Coroutine[Any, Any, Any] = wait()
    return asyncio.run(coroutine)

def _renoted(violation: Violation, note: str) -> Violation:
    """A clamp that cannot apply: refused after all, its message saying why."""
    refused = replace(violation, action=REFUSE, note=note)
    return replace(refused, message=compose([refused]))


def _clamps(violations: list[Violation]) -> dict[str, int]:
    """Body path → the lowest cap a clamp asks for there."""
    caps: dict[str, int] = {}
    for v in violations:
        if v.action == CLAMP and v.path is not None and v.limit is not None:
            caps[v.path] = min(v.limit, caps.get(v.path, v.limit))
    return caps


def _log(route: Route, model: str | None, violations: list[Violation],
         adjustments: tuple[str, ...], forwarded: bool) -> None:
    """INFO lines naming every violation: the refused (or, in report mode, reported) ones,
    and for a forwarded request the ones an action let through."""
    refused = [v for v in violations if v.refused]
    reasons = list(dict.fromkeys(v.reason for v in refused))
    if refused:
        listed = ", ".join(_named(v) for v in refused)
        logger.info("modelguard %s %s request for model %r: %s",
                    "reported" if forwarded else "refused", route.protocol, model, listed,
                    extra={"modelguard_reason": reasons[0], "modelguard_reasons": reasons,
                           "modelguard_path": refused[0].path})
    allowed = [v for v in violations if v.action != REFUSE]
    if allowed and forwarded:
        logger.info("modelguard forwarded %s request for model %r despite %s%s",
                    route.protocol, model, ", ".join(f"{_named(v)} ({v.action})"
                                                     for v in allowed),
                    f"; adjusted {'; '.join(adjustments)}" if adjustments else "",
                    extra={"modelguard_adjustments": list(adjustments)})


def _named(violation: Violation) -> str:
    key = violation.key
    return f"{violation.reason} {key}" if key else violation.reason
