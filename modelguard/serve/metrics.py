"""Prometheus metrics for ``modelguard serve`` and for apps that mount the middleware themselves
(needs the ``serve`` extra: ``prometheus_client``).

:class:`GuardMetrics` counts verdicts and exposes the catalog's state (age, last refresh, cached
keys); :class:`SidecarMetrics` adds the upstream's (status, latency, errors);
:class:`MetricsMiddleware` is the collector a FastAPI/Starlette app mounts around
:class:`~modelguard.ModelGuardMiddleware` to get the same series.

Every metric lives in a per-app :class:`CollectorRegistry` unless one is passed, never in the
global one by default, so two sidecars in one process (or one per test) count separately.
Label values are bounded: the protocol and outcome are fixed sets, reasons are modelguard's own
tokens, and the client-chosen ``model`` is kept only when it is a model of the catalog
(anything else is ``"other"``). No label ever carries a key.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from ..catalog.sources import StaticSource
from ..verdict import Verdict

__all__ = ["CONTENT_TYPE", "CatalogStats", "GuardMetrics", "MetricsMiddleware",
           "SidecarMetrics", "catalog_stats", "model_label"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
#: The ``protocol`` label of requests the guard does not inspect.
UNGUARDED = "none"
#: The ``model`` label of anything that is not a model of the catalog.
OTHER = "other"
#: Guard time is sub-millisecond when the catalog is cached; a fetch can take seconds.
GUARD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Time to the upstream's response headers: an LLM can think for a minute before answering.
UPSTREAM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    120.0, 300.0, 600.0)
#: The ``modelguard`` key of ``scope["state"]`` where the middleware leaves its verdict.
STATE_KEY = "modelguard"

Scope = dict[str, Any]
Message = dict[str, Any]
ASGIApp = Callable[..., Any]


@dataclass(frozen=True)
class CatalogStats:
    """What the catalog cache holds right now (wall-clock times, seconds)."""

    cached_keys: int
    oldest_age: float | None       # seconds since the oldest cached catalog was fetched/loaded
    last_refresh: float | None     # UNIX time of the most recent successful fetch/load


def catalog_stats(source: object, loaded_at: float | None = None) -> CatalogStats:
    """The cache state of a catalog source, read without touching the network.

    A fixed catalog counts no keys; its age is the time since it was loaded (``loaded_at``).
    A ``RemoteCatalog`` reports its entries (``cache_stats()`` when it has one)."""
    now = time.time()
    if isinstance(source, StaticSource):
        if loaded_at is None:
            return CatalogStats(0, None, None)
        return CatalogStats(0, max(0.0, now - loaded_at), loaded_at)
    own = getattr(source, "cache_stats", None)
    if not callable(own):
        return CatalogStats(0, None, None)
    try:
        return CatalogStats(*own())
    except Exception:  # noqa: BLE001 - a scrape never fails on a cache being changed
        return CatalogStats(0, None, None)


class _CatalogState(Collector):
    """Gauges of the catalog cache, read at scrape time."""

    def __init__(self, source: object, loaded_at: Callable[[], float | None]) -> None:
        self.source = source
        self.loaded_at = loaded_at

    def collect(self) -> Iterator[Metric]:
        stats = catalog_stats(self.source, self.loaded_at())
        yield GaugeMetricFamily(
            "modelguard_catalog_cached_keys",
            "Keys whose catalog is cached (0 for a fixed catalog).", value=stats.cached_keys)
        if stats.oldest_age is not None:
            yield GaugeMetricFamily(
                "modelguard_catalog_age_seconds",
                "Seconds since the oldest cached catalog was fetched (or the file loaded).",
                value=stats.oldest_age)
        if stats.last_refresh is not None:
            yield GaugeMetricFamily(
                "modelguard_catalog_last_refresh_timestamp_seconds",
                "UNIX time of the last successful catalog fetch (or file load).",
                value=stats.last_refresh)

    def describe(self) -> Iterator[Metric]:
        return iter(())


def model_label(verdict: Verdict | None, source: object) -> str:
    """The ``model`` label: a model of the catalog, or ``"other"`` (bounded cardinality)."""
    if verdict is None:
        return OTHER
    if verdict.model is not None:
        return verdict.model.id
    if verdict.model_id is not None and isinstance(source, StaticSource) \
            and verdict.model_id in source.catalog:
        return verdict.model_id
    return OTHER


class _CatalogFetches(Collector):
    """``modelguard_catalog_fetches_total{outcome}`` from ``RemoteCatalog.fetches``."""

    def __init__(self, source: Any) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "modelguard_catalog_fetches",
            "Catalog requests made to the gateway, by outcome (ok, an HTTP status, error, "
            "malformed, too_large).",
            labels=["outcome"],
        )
        for outcome, count in sorted(dict(self.source.fetches).items()):
            family.add_metric([outcome], count)
        yield family

    def describe(self) -> Iterator[Metric]:
        return self.collect()


class _Children:
    """The labelled children of one metric, kept once made: ``labels()`` validates its
    arguments and takes a lock on every call, which a per-request counter need not pay. The
    label values are bounded sets (see the module docstring), and so is this cache."""

    __slots__ = ("children", "metric")

    def __init__(self, metric: Any) -> None:
        self.metric = metric
        self.children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self.children.get(values)
        if child is None:
            child = self.children[values] = self.metric.labels(*values)
        return child


class GuardMetrics:
    """Verdict counters, guard time and catalog gauges, in their own registry."""

    def __init__(self, source: object = None, registry: CollectorRegistry | None = None) -> None:
        self.source = source
        self.registry = registry if registry is not None else CollectorRegistry()
        self._loaded_at: float | None = None
        r = self.registry
        self.requests = Counter(
            "modelguard_requests", "Requests proxied, by protocol and outcome (allowed, "
            "adjusted: forwarded after a configured action, reported, rejected, passthrough, "
            "disconnected).",
            ["protocol", "outcome"], registry=r)
        self.rejections = Counter(
            "modelguard_rejections", "Requests refused by the guard, by protocol, reason and "
            "model (a model of the catalog, else 'other'). A refusal counts once for each "
            "distinct reason it names, so a request refused for an unknown content type and "
            "a missing capability counts under both; modelguard_requests_total{outcome="
            "\"rejected\"} counts requests.",
            ["protocol", "reason", "model"], registry=r)
        self.adjustments = Counter(
            "modelguard_adjustments", "Violations a configured action resolved instead of a "
            "refusal, by key (capability tag or max_tokens) and action (allow: forwarded "
            "unchanged; strip, clamp: forwarded rewritten).",
            ["capability", "action"], registry=r)
        self.guard_seconds = Histogram(
            "modelguard_guard_seconds", "Time spent by the guard on a guarded request (body "
            "read, check, catalog lookup), until it was forwarded or refused.",
            ["protocol"], buckets=GUARD_BUCKETS, registry=r)
        self.route_requests = Counter(
            "modelguard_route_requests", "Guarded requests by route (the route table's "
            "pattern, e.g. /v1/responses) and outcome.",
            ["route", "outcome"], registry=r)
        self.in_flight = Gauge(
            "modelguard_in_flight_requests", "Requests being handled right now.", registry=r)
        self.reloads = Counter(
            "modelguard_catalog_reloads", "Catalog file reloads (SIGHUP), by outcome.",
            ["outcome"], registry=r)
        self._requests = _Children(self.requests)
        self._route_requests = _Children(self.route_requests)
        self._guard_seconds = _Children(self.guard_seconds)
        if source is not None:
            r.register(_CatalogState(source, lambda: self._loaded_at))
        if source is not None and isinstance(getattr(source, "fetches", None), dict):
            r.register(_CatalogFetches(source))

    def catalog_loaded(self) -> None:
        """A fixed catalog was (re)loaded now: its age restarts."""
        self._loaded_at = time.time()

    def observe(self, *, protocol: str | None, outcome: str, reason: str | None,
                verdict: Verdict | None, guard_seconds: float | None,
                route: str | None = None) -> None:
        label = protocol or UNGUARDED
        self._requests(label, outcome).inc()
        if route:
            self._route_requests(route, outcome).inc()
        if outcome == "rejected":
            model = model_label(verdict, self.source)
            reasons = verdict.reasons if verdict is not None and verdict.reasons else ()
            for each in reasons or (reason or "unknown",):
                self.rejections.labels(label, each, model).inc()
        if verdict is not None and outcome != "rejected" \
                and (verdict.violations or verdict.adjustments):
            self.count_adjustments(verdict)
        if protocol is not None and guard_seconds is not None:
            self._guard_seconds(label).observe(guard_seconds)

    def count_adjustments(self, verdict: Verdict) -> None:
        """One count per (key, action) an action applied to in this request (and for a
        thinking request stripped because no budget fitted a clamped cap)."""
        seen = dict.fromkeys((v.key, v.action) for v in verdict.violations
                             if v.action != "refuse" and v.key is not None)
        if "thinking=stripped" in verdict.adjustments:
            seen.setdefault(("thinking", "strip"))
        for key, action in seen:
            self.adjustments.labels(key, action).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class SidecarMetrics(GuardMetrics):
    """:class:`GuardMetrics` plus the upstream's status, latency and errors."""

    def __init__(self, source: object = None, registry: CollectorRegistry | None = None) -> None:
        super().__init__(source, registry)
        r = self.registry
        self.upstream_errors = Counter(
            "modelguard_upstream_errors", "Upstream failures: connect (unreachable, answered "
            "502), timeout (no answer in time: 504, or a stream cut short), broken (the "
            "connection or the HTTP exchange failed: 502, or a stream cut short).",
            ["kind"], registry=r)
        self.upstream_responses = Counter(
            "modelguard_upstream_responses", "Responses from the upstream, by status code.",
            ["code"], registry=r)
        self._upstream_responses = _Children(self.upstream_responses)
        self.upstream_seconds = Histogram(
            "modelguard_upstream_seconds", "Time from forwarding a request to the upstream's "
            "response headers.", buckets=UPSTREAM_BUCKETS, registry=r)
        self.upstream_up = Gauge(
            "modelguard_upstream_up", "1 when the last forwarded request got an answer below "
            "500 from the upstream, 0 when it failed or answered 5xx.", registry=r)
        self.upstream_last_status = Gauge(
            "modelguard_upstream_last_status", "Status of the upstream's last answer (0: none "
            "could be had).", registry=r)

    def upstream_answered(self, status: int, seconds: float) -> None:
        self._upstream_responses(str(status)).inc()
        self.upstream_seconds.observe(seconds)
        self.upstream_last_status.set(status)
        self.upstream_up.set(1 if status < 500 else 0)

    def upstream_failed(self) -> None:
        self.upstream_last_status.set(0)
        self.upstream_up.set(0)


class MetricsMiddleware:
    """Pure ASGI collector around :class:`~modelguard.ModelGuardMiddleware`: the sidecar's
    verdict counters and catalog gauges for an app that mounts the guard itself.

    Mount it outside the guard (in Starlette, add it after the guard:
    ``app.add_middleware(ModelGuardMiddleware, ...)``, then
    ``app.add_middleware(MetricsMiddleware)``).
    It reads the verdict the guard leaves in ``scope["state"]["modelguard"]`` and answers
    ``GET path`` (``/metrics``; ``None`` to serve it elsewhere from ``.metrics.render()``).
    ``source`` is the guard's catalog source (found by itself when the guard is directly
    inside). Guard time is observed for refusals only (a forwarded request's guard time is
    not visible from outside the guard).
    """

    def __init__(self, app: ASGIApp, *, path: str | None = "/metrics",
                 registry: CollectorRegistry | None = None, source: object = None) -> None:
        self.app = app
        self.path = path
        if source is None:
            guard = getattr(app, "guard", None)
            source = getattr(guard, "source", None)
        self.metrics = GuardMetrics(source, registry)
        self.metrics.catalog_loaded()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.path is not None and scope.get("path") == self.path \
                and scope.get("method") in ("GET", "HEAD"):
            body = self.metrics.render()
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", CONTENT_TYPE.encode("latin-1")),
                (b"content-length", str(len(body)).encode("ascii")),
                (b"cache-control", b"no-store")]})
            await send({"type": "http.response.body",
                        "body": body if scope["method"] == "GET" else b""})
            return
        start = time.perf_counter()
        answered: list[float] = []

        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start" and not answered:
                answered.append(time.perf_counter() - start)
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, watched)
        finally:
            self.metrics.in_flight.dec()
            verdict = (scope.get("state") or {}).get(STATE_KEY)
            self._count(verdict if isinstance(verdict, Verdict) else None,
                        answered[0] if answered else None)

    def _count(self, verdict: Verdict | None, answered_after: float | None) -> None:
        if verdict is None or not verdict.guarded:
            self.metrics.observe(protocol=None, outcome="passthrough", reason=None,
                                 verdict=None, guard_seconds=None)
            return
        if verdict.allowed:
            outcome = "reported" if verdict.violations else "allowed"
            self.metrics.observe(protocol=verdict.protocol, outcome=outcome, reason=None,
                                 verdict=verdict, guard_seconds=None)
            return
        self.metrics.observe(protocol=verdict.protocol, outcome="rejected",
                             reason=verdict.reason, verdict=verdict,
                             guard_seconds=answered_after)
