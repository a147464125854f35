"""Prometheus metrics for ``modelguard serve`` (needs the ``serve`` extra: ``prometheus_client``).

Every metric lives in a per-app :class:`CollectorRegistry`, never in the global one, so two
sidecars in one process (or one per test) count separately. Label values are bounded: the
protocol and outcome are fixed sets, reasons are modelguard's own tokens, and the client-chosen
``model`` is kept only when it is a model of the catalog (anything else is ``"other"``). No
label ever carries a key.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from ..catalog.sources import StaticSource
from ..verdict import Verdict

__all__ = ["CONTENT_TYPE", "SidecarMetrics", "model_label"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
#: The ``protocol`` label of requests the guard does not inspect.
UNGUARDED = "none"
#: The ``model`` label of anything that is not a model of the catalog.
OTHER = "other"
#: Guard time is sub-millisecond when the catalog is cached; a fetch can take seconds.
GUARD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


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


class SidecarMetrics:
    """The sidecar's counters, histogram and gauge, in their own registry."""

    def __init__(self, source: object = None, registry: CollectorRegistry | None = None) -> None:
        self.source = source
        self.registry = registry if registry is not None else CollectorRegistry()
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
        self.upstream_errors = Counter(
            "modelguard_upstream_errors", "Upstream failures: connect (unreachable, answered "
            "502), timeout (no answer in time: 504, or a stream cut short), broken (the "
            "connection failed: 502, or a stream cut short).",
            ["kind"], registry=r)
        self.in_flight = Gauge(
            "modelguard_in_flight_requests", "Requests being proxied right now.", registry=r)
        if source is not None and isinstance(getattr(source, "fetches", None), dict):
            r.register(_CatalogFetches(source))

    def observe(self, *, protocol: str | None, outcome: str, reason: str | None,
                verdict: Verdict | None, guard_seconds: float | None) -> None:
        label = protocol or UNGUARDED
        self.requests.labels(label, outcome).inc()
        if outcome == "rejected":
            model = model_label(verdict, self.source)
            reasons = verdict.reasons if verdict is not None and verdict.reasons else ()
            for each in reasons or (reason or "unknown",):
                self.rejections.labels(label, each, model).inc()
        if verdict is not None and outcome != "rejected":
            self.count_adjustments(verdict)
        if protocol is not None and guard_seconds is not None:
            self.guard_seconds.labels(label).observe(guard_seconds)

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
