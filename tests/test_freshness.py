"""The catalog cache rules (decisions.md §7) as a pure function: a table of (state, event,
clock) cases, and properties over arbitrary ones. No I/O, no clock, no RemoteCatalog."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelguard.catalog.freshness import (
    FETCH,
    NOTHING,
    REFRESH,
    REFUSE,
    SERVE,
    SERVE_AND_REFRESH,
    UNAVAILABLE,
    Abandoned,
    FetchStarted,
    KeyState,
    Lookup,
    Resolved,
    Rules,
    UnknownModel,
    step,
)

RULES = Rules(ttl=10, max_stale=100, negative_ttl=30, min_refresh_interval=30, retry_after=5)
OLD, NEW, SHARED = object(), object(), object()  # catalogs are opaque to the rules
NEVER = -math.inf

NONE = KeyState()
HAVE = KeyState(catalog=OLD, fetched_at=0.0, attempted_at=0.0)  # fetched at t=0
FAILING = replace(HAVE, failed_at=112.0, failure="HTTP 500")
DENIED = KeyState(denied=401, denied_until=30.0, attempted_at=0.0)

# (name, state, event, now, expected action fields, expected state fields)
CASES = [
    # -- lookups
    ("first use fetches", NONE, Lookup(), 0.0, {"kind": FETCH}, {}),
    ("fresh is served", HAVE, Lookup(), 9.99, {"kind": SERVE, "catalog": OLD}, {}),
    ("expired: stale-while-revalidate", HAVE, Lookup(), 10.0,
     {"kind": SERVE_AND_REFRESH, "catalog": OLD}, {}),
    ("expired, a refresh already runs", replace(HAVE, fetching=True), Lookup(), 50.0,
     {"kind": SERVE, "catalog": OLD}, {}),
    ("expired, refresh failed 2 s ago: no new try yet", replace(HAVE, failed_at=48.0),
     Lookup(), 50.0, {"kind": SERVE, "catalog": OLD}, {}),
    ("expired, back-off over: refresh again", replace(HAVE, failed_at=45.0), Lookup(), 50.0,
     {"kind": SERVE_AND_REFRESH, "catalog": OLD}, {}),
    ("last instant of max_stale", HAVE, Lookup(), 109.99,
     {"kind": SERVE_AND_REFRESH, "catalog": OLD}, {}),
    ("past max_stale: must fetch", HAVE, Lookup(), 110.0, {"kind": FETCH}, {}),
    ("past max_stale, failing: 503 with the rest of the back-off", FAILING, Lookup(), 113.0,
     {"kind": UNAVAILABLE, "retry_after": 4, "failure": "HTTP 500"}, {}),
    ("past max_stale, failing, a fetch runs: join it", replace(FAILING, fetching=True),
     Lookup(), 113.0, {"kind": FETCH}, {}),
    ("past max_stale, back-off over", FAILING, Lookup(), 117.0, {"kind": FETCH}, {}),
    ("refusal remembered", DENIED, Lookup(), 29.99, {"kind": REFUSE, "status": 401}, {}),
    ("refusal forgotten after negative_ttl", DENIED, Lookup(), 30.0, {"kind": FETCH}, {}),
    ("first failure with nothing cached", KeyState(failed_at=0.0, failure="timeout"),
     Lookup(), 0.5, {"kind": UNAVAILABLE, "retry_after": 5}, {}),
    # -- unknown models
    ("unknown model, never fetched", NONE, UnknownModel(), 0.0, {"kind": REFRESH}, {}),
    ("unknown model within min_refresh_interval", HAVE, UnknownModel(), 29.99,
     {"kind": NOTHING}, {}),
    ("unknown model after min_refresh_interval", HAVE, UnknownModel(), 30.0,
     {"kind": REFRESH}, {}),
    ("the interval counts from a failed attempt too", replace(HAVE, attempted_at=25.0),
     UnknownModel(), 50.0, {"kind": NOTHING}, {}),
    # -- starting and abandoning
    ("fetch started", HAVE, FetchStarted(), 12.0, {"kind": FETCH},
     {"attempted_at": 12.0, "fetching": True, "catalog": OLD}),
    ("fetch abandoned", replace(HAVE, fetching=True), Abandoned(), 12.0,
     {"kind": UNAVAILABLE}, {"fetching": False, "catalog": OLD}),
    # -- outcomes
    ("new catalog replaces the old (reported)", replace(HAVE, fetching=True),
     Resolved(catalog=NEW), 12.0, {"kind": SERVE, "catalog": NEW, "replaced": OLD},
     {"catalog": NEW, "fetched_at": 12.0, "failed_at": NEVER, "fetching": False}),
    ("identical catalog: nothing to report", HAVE, Resolved(catalog=OLD), 12.0,
     {"kind": SERVE, "catalog": OLD, "replaced": None}, {"fetched_at": 12.0}),
    ("success clears a failure", replace(FAILING, fetching=True), Resolved(catalog=NEW), 113.0,
     {"kind": SERVE, "catalog": NEW}, {"failed_at": NEVER, "failure": ""}),
    ("another replica's copy keeps its age", NONE, Resolved(catalog=SHARED, age=4.0), 20.0,
     {"kind": SERVE, "catalog": SHARED}, {"fetched_at": 16.0}),
    ("revoked: takes effect at once, cached catalog dropped", HAVE,
     Resolved(denied=403, denied_for=30.0), 12.0, {"kind": REFUSE, "status": 403},
     {"catalog": None, "denied": 403, "denied_until": 42.0}),
    ("shared refusal keeps its remaining time", NONE, Resolved(denied=401, denied_for=7.0),
     12.0, {"kind": REFUSE, "status": 401}, {"denied_until": 19.0}),
    ("refresh fails within max_stale: stale-if-error", HAVE, Resolved(failure="HTTP 500"),
     50.0, {"kind": SERVE, "catalog": OLD},
     {"failed_at": 50.0, "failure": "HTTP 500", "fetched_at": 0.0}),
    ("refresh fails past max_stale: 503", HAVE, Resolved(failure="HTTP 500"), 110.0,
     {"kind": UNAVAILABLE, "retry_after": 5, "failure": "HTTP 500"}, {"failed_at": 110.0}),
    ("first fetch fails: 503", NONE, Resolved(failure="malformed"), 0.0,
     {"kind": UNAVAILABLE, "retry_after": 5}, {"catalog": None, "failed_at": 0.0}),
    ("another replica's failure: back off only for its remaining time", NONE,
     Resolved(failure="HTTP 502", failure_for=2.0), 10.0, {"kind": UNAVAILABLE, "retry_after": 2},
     {"failed_at": 7.0}),
    ("failure with a newer stale copy from another replica", NONE,
     Resolved(catalog=SHARED, age=20.0, failure="HTTP 500"), 50.0,
     {"kind": SERVE, "catalog": SHARED}, {"catalog": SHARED, "fetched_at": 30.0,
                                          "failed_at": 50.0}),
    ("failure with an older copy than ours keeps ours", replace(HAVE, fetched_at=40.0),
     Resolved(catalog=SHARED, age=20.0, failure="HTTP 500"), 50.0,
     {"kind": SERVE, "catalog": OLD}, {"catalog": OLD, "fetched_at": 40.0}),
    ("failure with a copy too old to serve", NONE,
     Resolved(catalog=SHARED, age=115.0, failure="HTTP 500"), 200.0,
     {"kind": UNAVAILABLE}, {"catalog": SHARED}),
]


@pytest.mark.parametrize(("state", "event", "now", "action", "after"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_table(state: KeyState, event: object, now: float, action: dict, after: dict) -> None:
    new_state, got = step(RULES, state, event, now)  # type: ignore[arg-type]
    for name, value in action.items():
        assert getattr(got, name) == value, (name, got)
    for name, value in after.items():
        assert getattr(new_state, name) == value, (name, new_state)
    if isinstance(event, (Lookup, UnknownModel)):
        assert new_state is state  # asking never changes what is known


def test_not_an_event() -> None:
    with pytest.raises(TypeError):
        step(RULES, NONE, "lookup", 0.0)  # type: ignore[arg-type]


# -- properties -------------------------------------------------------------------------------

times = st.floats(min_value=0, max_value=10_000, allow_nan=False)
maybe_times = st.one_of(st.just(NEVER), times)
states = st.builds(
    KeyState,
    catalog=st.sampled_from([None, OLD]),
    fetched_at=times,
    attempted_at=maybe_times,
    failed_at=maybe_times,
    failure=st.sampled_from(["", "HTTP 500"]),
    denied=st.sampled_from([None, 401, 403]),
    denied_until=maybe_times,
    fetching=st.booleans(),
)
rules = st.builds(Rules, ttl=st.floats(0.5, 1000), max_stale=st.floats(0, 5000),
                  negative_ttl=st.floats(0.5, 100), min_refresh_interval=st.floats(0, 100),
                  retry_after=st.floats(0.5, 60))


@given(rules, states, times)
def test_lookup_never_serves_past_max_stale_nor_during_a_refusal(r: Rules, state: KeyState,
                                                                 now: float) -> None:
    _, action = step(r, state, Lookup(), now)
    denied = state.denied is not None and now < state.denied_until
    if action.kind in (SERVE, SERVE_AND_REFRESH):
        assert not denied
        assert action.catalog is state.catalog is not None
        assert now - state.fetched_at < r.ttl + r.max_stale
    if action.kind == SERVE_AND_REFRESH:
        assert not state.fetching and now - state.failed_at >= r.retry_after
    if action.kind == UNAVAILABLE:
        assert not state.fetching and isinstance(action.retry_after, int)
        assert 1 <= action.retry_after <= max(1, math.ceil(r.retry_after))
    assert (action.kind == REFUSE) == denied


@given(rules, states, times, st.sampled_from(["ok", "denied", "failed"]))
def test_a_resolved_fetch_always_answers_and_ends_the_flight(r: Rules, state: KeyState,
                                                             now: float, outcome: str) -> None:
    event = {"ok": Resolved(catalog=NEW), "denied": Resolved(denied=401, denied_for=5.0),
             "failed": Resolved(failure="x")}[outcome]
    new_state, action = step(r, state, event, now)
    assert not new_state.fetching
    assert action.kind in (SERVE, REFUSE, UNAVAILABLE)
    if outcome == "ok":
        assert action.catalog is NEW and new_state.fetched_at == now
    if outcome == "denied":
        assert new_state.catalog is None
    if outcome == "failed":
        assert new_state.catalog is state.catalog and new_state.failed_at == now
