"""The catalog cache rules of decisions.md §7 as a pure state machine: no I/O, no clock.

In the spirit of h11: ``step(rules, state, event, now)`` returns the key's new state and the
one action its caller must take. The caller (``RemoteCatalog``, async or sync, with or without
a shared store) owns the I/O: it fetches when told to, and feeds what the fetch found back in
as a :class:`Resolved` event. Because the rules live here once, every path — async and sync,
local and through Redis — applies exactly the same ones, and they are tested as a table of
(state, event, clock) cases.

States are immutable; ``catalog`` is opaque here (any object standing for a catalog).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

__all__ = [
    "FETCH", "NOTHING", "REFRESH", "REFUSE", "SERVE", "SERVE_AND_REFRESH", "UNAVAILABLE",
    "Abandoned", "Action", "FetchStarted", "KeyState", "Lookup", "Resolved", "Rules",
    "UnknownModel", "step",
]

#: After a failed fetch, a key's next fetch waits this long (a down gateway is not hammered).
RETRY_AFTER = 5.0

# actions
SERVE = "serve"                          # answer with ``catalog``
SERVE_AND_REFRESH = "serve_and_refresh"  # answer with ``catalog``; start a background fetch
FETCH = "fetch"                          # nothing usable: join the fetch in flight or start one
REFRESH = "refresh"                      # an early refresh is due (unknown model): fetch
NOTHING = "nothing"                      # no early refresh is due
REFUSE = "refuse"                        # the key was refused (``status`` 401/403)
UNAVAILABLE = "unavailable"              # 503 with ``retry_after``; ``failure`` says why


@dataclass(frozen=True, slots=True)
class Rules:
    """The durations of §7, in seconds."""

    ttl: float = 300
    max_stale: float = 3600
    negative_ttl: float = 30
    min_refresh_interval: float = 30
    retry_after: float = RETRY_AFTER


@dataclass(frozen=True, slots=True)
class KeyState:
    """What is known about one key. ``-inf`` stands for "never"."""

    catalog: Any = None
    fetched_at: float = -math.inf    # when ``catalog`` was fetched upstream
    attempted_at: float = -math.inf  # last fetch of any kind (min_refresh_interval)
    failed_at: float = -math.inf     # last transient failure (back-off)
    failure: str = ""
    denied: int | None = None        # 401 or 403 while a refusal is remembered
    denied_until: float = -math.inf
    fetching: bool = False           # a fetch for this key is in flight


# -- events -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lookup:
    """A request needs this key's catalog."""


@dataclass(frozen=True, slots=True)
class UnknownModel:
    """The catalog lacks the requested model: is an early refresh due?"""


@dataclass(frozen=True, slots=True)
class FetchStarted:
    """The caller started a fetch for this key."""


@dataclass(frozen=True, slots=True)
class Abandoned:
    """The fetch in flight was cancelled before it found anything (shutdown)."""


@dataclass(frozen=True, slots=True)
class Resolved:
    """What a fetch found: a catalog, a refusal, or a failure (maybe with a stale copy).

    ``age`` is how old ``catalog`` already was (a copy another replica fetched);
    ``denied_for``/``failure_for`` how long a refusal or failure is to be remembered.
    """

    catalog: Any = None
    age: float = 0.0
    denied: int | None = None
    denied_for: float = 0.0
    failure: str | None = None
    failure_for: float | None = None  # None: the whole back-off (``Rules.retry_after``)


Event = Lookup | UnknownModel | FetchStarted | Abandoned | Resolved


class Action(NamedTuple):
    """What the caller must do (a tuple: built on every lookup, so it must be cheap)."""

    kind: str
    catalog: Any = None
    status: int | None = None
    retry_after: int = 0
    failure: str = ""
    #: The catalog this fetch replaced (the caller reports what changed), else None.
    replaced: Any = None


_FETCH = Action(FETCH)
_REFRESH = Action(REFRESH)
_NOTHING = Action(NOTHING)


def step(rules: Rules, state: KeyState, event: Event, now: float) -> tuple[KeyState, Action]:
    """The key's next state and what to do, for one event at time ``now``."""
    if isinstance(event, Lookup):
        return state, _lookup(rules, state, now)
    if isinstance(event, UnknownModel):
        due = now - state.attempted_at >= rules.min_refresh_interval
        return state, _REFRESH if due else _NOTHING
    if isinstance(event, FetchStarted):
        return replace(state, attempted_at=now, fetching=True), _FETCH
    if isinstance(event, Abandoned):
        return replace(state, fetching=False), _unavailable(rules, state, now)
    if isinstance(event, Resolved):
        return _resolved(rules, state, event, now)
    raise TypeError(f"not a freshness event: {event!r}")


def _lookup(rules: Rules, state: KeyState, now: float) -> Action:
    if state.denied is not None and now < state.denied_until:
        return Action(REFUSE, status=state.denied)
    backing_off = now - state.failed_at < rules.retry_after
    if state.catalog is not None:
        age = now - state.fetched_at
        if age < rules.ttl:
            return Action(SERVE, state.catalog)
        if age < rules.ttl + rules.max_stale:  # stale-while-revalidate / stale-if-error
            refresh = not backing_off and not state.fetching
            return Action(SERVE_AND_REFRESH if refresh else SERVE, state.catalog)
    if backing_off and not state.fetching:
        return _unavailable(rules, state, now)
    return _FETCH


def _resolved(rules: Rules, state: KeyState, found: Resolved,
              now: float) -> tuple[KeyState, Action]:
    state = replace(state, fetching=False)
    if found.denied is not None:  # revoked now, remembered briefly
        state = replace(state, catalog=None, denied=found.denied,
                        denied_until=now + found.denied_for)
        return state, Action(REFUSE, status=found.denied)
    replaced = None
    fetched_at = now - found.age
    if found.catalog is not None and (found.failure is None or state.catalog is None
                                      or fetched_at > state.fetched_at):
        previous = state.catalog
        if previous is not None and previous is not found.catalog:
            replaced = previous
        state = replace(state, catalog=found.catalog, fetched_at=fetched_at,
                        failed_at=-math.inf, failure="", denied=None)
    if found.failure is None:
        return state, Action(SERVE, state.catalog, replaced=replaced)
    # a failure: the newest good copy keeps serving until max_stale past its expiry
    failure_for = rules.retry_after if found.failure_for is None else found.failure_for
    state = replace(state, failed_at=now - max(0.0, rules.retry_after - failure_for),
                    failure=found.failure)
    if state.catalog is not None and now - state.fetched_at < rules.ttl + rules.max_stale:
        return state, Action(SERVE, state.catalog, replaced=replaced)
    return state, _unavailable(rules, state, now)


def _unavailable(rules: Rules, state: KeyState, now: float) -> Action:
    remaining = rules.retry_after - max(0.0, now - state.failed_at)  # clocks may disagree
    wait = max(1, math.ceil(remaining)) if math.isfinite(remaining) else 1
    return Action(UNAVAILABLE, retry_after=wait, failure=state.failure)
