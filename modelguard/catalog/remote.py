"""``RemoteCatalog``: each caller's catalog, fetched from the gateway and kept fresh.

Freshness (decisions.md §7) is decided in one place, the pure state machine of
:mod:`.freshness`; this module is the I/O around it. An entry is fresh for ``ttl`` seconds;
after that it keeps being served while one background refresh runs, and, if refreshing fails,
until ``max_stale`` past its expiry. A 401/403 takes effect at once and is remembered for
``negative_ttl`` seconds. Concurrent misses for one key share one upstream request, across
coroutines and threads alike. Raw keys never leave this module's locals: entries are indexed
by a keyed hash.

One instance serves async callers (``await catalog_for(...)``) and sync callers
(``catalog_for_sync(...)``, a blocking fetch) from one cache. A fetch is described once, as a
generator of the I/O it needs (fetch.py), and run here by a thin async or sync driver. Two
tiers behind the in-process cache (a fresh entry never touches the network): this process
alone, or ``store=RedisCatalogStore(url)``, where misses and refreshes go through Redis first,
so replicas share fetched catalogs, refusals and failures, and one replica at a time refreshes
a key (store.py).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import hmac
import logging
import secrets
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, NamedTuple

import cachetools
import httpx2

from .._resume import resume
from ..errors import Reason
from .fetch import Alone, Download, Fetch, Got, Reader, Sleep, ThroughRedis, Tier
from .freshness import (
    FETCH,
    NOTHING,
    REFRESH,
    REFUSE,
    RETRY_AFTER,
    SERVE,
    SERVE_AND_REFRESH,
    UNAVAILABLE,
    Abandoned,
    Action,
    FetchStarted,
    KeyState,
    Lookup,
    Resolved,
    Rules,
    UnknownModel,
    step,
)
from .model import Catalog, CatalogError, ModelInfo
from .sources import CatalogUnavailable, no_credential
from .store import StoreUnavailable

if TYPE_CHECKING:
    from .store import RedisCatalogStore

__all__ = ["RETRY_AFTER", "CatalogChange", "RemoteCatalog"]

logger = logging.getLogger("modelguard.catalog")

_COMPARED = ("owned_by", "family", "capabilities", "context_window", "max_output_tokens",
             "input_modalities", "output_modalities")
_LOOKUP, _UNKNOWN, _STARTED, _ABANDONED = Lookup(), UnknownModel(), FetchStarted(), Abandoned()
_NEW = KeyState()
_NOTHING = Action(NOTHING)


@dataclass(frozen=True)
class CatalogChange:
    """What changed in one key's catalog between two refreshes (ids only, never the key)."""

    key_id: str
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]


class _Flight:
    """One fetch in flight for one key; every caller that needs it waits on ``future``."""

    __slots__ = ("future", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.future: concurrent.futures.Future[Action] = concurrent.futures.Future()
        self.future.set_running_or_notify_cancel()  # a waiter giving up cannot cancel it
        self.loop = loop  # the event loop running it (None: a thread)


class CacheStats(NamedTuple):
    """What the catalog cache holds right now (``last_refresh`` is a UNIX time)."""

    cached_keys: int
    oldest_age: float | None
    last_refresh: float | None


class _Slot:
    """One key's cache entry: its freshness state and the fetch in flight, if any."""

    __slots__ = ("flight", "state")

    def __init__(self) -> None:
        self.state = _NEW
        self.flight: _Flight | None = None

    def __repr__(self) -> str:
        state = self.state
        return (f"<entry catalog={'yes' if state.catalog is not None else 'no'} "
                f"denied={state.denied} fetching={state.fetching}>")


class _Plan(NamedTuple):
    """What one call must do after consulting the state machine."""

    key: str
    slot_id: str
    slot: _Slot
    action: Action
    flight: _Flight | None = None
    mine: bool = False  # this caller starts the flight


class RemoteCatalog:
    """The gateway's ``GET /v1/models``, per caller key (or one ``api_key`` for everyone).

    Async callers use :meth:`catalog_for`, sync callers :meth:`catalog_for_sync`; both share
    one cache and one fetch per key. ``transport`` replaces the HTTP transport (an httpx2
    ``AsyncBaseTransport`` for async fetches, a ``BaseTransport`` for blocking ones, or one
    object that is both, like ``httpx2.MockTransport``).
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        ttl: float = 300,
        max_stale: float = 3600,
        negative_ttl: float = 30,
        min_refresh_interval: float = 30,
        max_keys: int = 10_000,
        timeout: float = 10,
        on_change: Callable[[CatalogChange], Any] | None = None,
        transport: httpx2.AsyncBaseTransport | httpx2.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        store: RedisCatalogStore | None = None,
        failure_backoff: float = RETRY_AFTER,
    ) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        if not failure_backoff > 0:
            raise ValueError("failure_backoff must be a positive number of seconds")
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.ttl = ttl
        self.max_stale = max_stale
        self.negative_ttl = negative_ttl
        self.min_refresh_interval = min_refresh_interval
        self.timeout = timeout
        #: After a failed fetch, a key is not fetched again for this long (callers get 503
        #: with Retry-After meanwhile, unless a stale copy still serves).
        self.failure_backoff = failure_backoff
        self.rules = Rules(ttl, max_stale, negative_ttl, min_refresh_interval, failure_backoff)
        self.on_change = on_change
        self._transport = transport
        self._clock = clock
        self._secret = secrets.token_bytes(32)
        #: Shared cache behind the local one (None: this process only).
        self.store = store
        if store is not None:
            store._attach(self)  # noqa: SLF001
            if store.secret is not None:
                self._secret = store.secret
        #: Guards the entries and flights (callers may be coroutines and threads at once).
        self._lock = threading.Lock()
        self._entries: cachetools.LRUCache[str, _Slot] = cachetools.LRUCache(max_keys)
        #: Where fetches go: this process alone, or Redis first (fetch.py).
        self._tier: Tier = Alone(self) if store is None else ThroughRedis(self, store)
        self._client: httpx2.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._sync_client: httpx2.Client | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        #: Fetches in flight: asyncio tasks, and futures of background threads.
        self._tasks: set[Any] = set()
        #: Identical payloads (many keys of one routing group) share one Catalog object.
        self._interned: weakref.WeakValueDictionary[bytes, Catalog] = (
            weakref.WeakValueDictionary())
        #: Upstream requests made, by outcome (for tests, logs and metrics).
        self.fetches: dict[str, int] = {}
        #: With a store: how misses and refreshes were answered ("hit": a catalog another
        #: replica fetched, "denied"/"failed": a refusal or failure another replica saw,
        #: "fetched": fetched here and shared, "local": fetched here, Redis unavailable).
        self.shared: dict[str, int] = {}

    # -- the CatalogSource interface ------------------------------------------------------

    @property
    def needs_credential(self) -> bool:
        """Forwarding mode: the caller's own key selects (and fetches) the catalog."""
        return self._api_key is None

    async def catalog_for(self, credential: str | None) -> Catalog:
        plan = self._consult(credential, _LOOKUP, asyncio.get_running_loop())
        if plan.action.kind in (SERVE, SERVE_AND_REFRESH):
            if plan.mine:
                self._launch(plan)
            return plan.action.catalog
        if plan.action.kind != FETCH:
            return _answer(plan.action)
        if plan.mine:
            self._launch(plan)
        return _answer(await self._wait(plan))

    def catalog_for_sync(self, credential: str | None) -> Catalog:
        """:meth:`catalog_for` for code without an event loop: blocks while it fetches."""
        plan = self._consult(credential, _LOOKUP)
        if plan.action.kind in (SERVE, SERVE_AND_REFRESH):
            if plan.mine:
                self._launch_thread(plan)
            return plan.action.catalog
        if plan.action.kind != FETCH:
            return _answer(plan.action)
        return _answer(self._fly_sync(plan) if plan.mine else self._wait_sync(plan))

    async def refresh_for_unknown(self, credential: str | None) -> Catalog | None:
        """One early refresh per ``min_refresh_interval``, so new models work at once."""
        plan = self._consult(credential, _UNKNOWN, asyncio.get_running_loop())
        if plan.action.kind != REFRESH:
            return None
        if plan.mine:
            self._launch(plan)
        action = await self._wait(plan)
        return action.catalog if action.kind == SERVE else None

    def refresh_for_unknown_sync(self, credential: str | None) -> Catalog | None:
        """:meth:`refresh_for_unknown` for code without an event loop."""
        plan = self._consult(credential, _UNKNOWN)
        if plan.action.kind != REFRESH:
            return None
        action = self._fly_sync(plan) if plan.mine else self._wait_sync(plan)
        return action.catalog if action.kind == SERVE else None

    # -- lifecycle ----------------------------------------------------------------------------

    async def startup(self) -> None:
        """Service mode: fetch now, so a refused key is reported at boot, not on a request.

        With a store, also read (or create) the shared key secret now; Redis being down is
        logged and not fatal."""
        if self.store is not None:
            try:
                await self.store.ensure_secret()
            except StoreUnavailable:
                pass
            else:
                self._adopt_secret()
        if self._api_key is None:
            return
        try:
            await self.catalog_for(None)
        except CatalogUnavailable as error:
            if error.reason != Reason.UNAVAILABLE:
                raise
            logger.warning("modelguard: catalog not reachable at startup (%s); will retry on "
                           "demand", error.message)

    async def aclose(self) -> None:
        """Stop the fetches of this event loop and close the connections."""
        loop = asyncio.get_running_loop()
        tasks = [t for t in list(self._tasks)
                 if isinstance(t, asyncio.Task) and t.get_loop() is loop]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        client, self._client = self._client, None
        if client is not None and self._client_loop is loop:
            await client.aclose()
        self._close_sync_parts()
        if self.store is not None:
            await self.store._release(self)  # noqa: SLF001

    def close(self) -> None:
        """Close the blocking side (threads, connections); for sync-only users."""
        self._close_sync_parts()
        if self.store is not None:
            self.store._release_sync(self)  # noqa: SLF001

    def _close_sync_parts(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        client, self._sync_client = self._sync_client, None
        if client is not None:
            client.close()

    def cache_stats(self) -> CacheStats:
        """What the cache holds now, for metrics: cached keys, the oldest catalog's age and
        the wall-clock time of the newest fetch (read without touching the network)."""
        now, wall = self._clock(), time.time()
        with self._lock:
            fetched = [slot.state.fetched_at for slot in self._entries.values()
                       if slot.state.catalog is not None]
        if not fetched:
            return CacheStats(0, None, None)
        ages = [max(0.0, now - at) for at in fetched]
        return CacheStats(len(fetched), max(ages), wall - min(ages))

    def key_id(self, key: str) -> str:
        """A keyed hash of a key: stable in this process, useless to anyone guessing keys."""
        return hmac.new(self._secret, key.encode("utf-8", "surrogatepass"),
                        hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        mode = "service" if self._api_key is not None else "forwarding"
        return f"RemoteCatalog({self.base_url!r}, mode={mode}, keys={len(self._entries)})"

    # -- consulting the state machine ----------------------------------------------------------

    def _credential(self, credential: str | None) -> str:
        key = self._api_key if self._api_key is not None else credential
        if not key:
            raise no_credential()
        return key

    def _consult(self, credential: str | None, event: Lookup | UnknownModel,
                 loop: asyncio.AbstractEventLoop | None = None) -> _Plan:
        """Feed one event to the key's state; start a flight if the answer needs one
        (``loop``: the event loop that will run it; None for a thread)."""
        key = self._credential(credential)
        slot_id = self.key_id(key)
        with self._lock:
            slot = self._entries.get(slot_id)
            if slot is None:
                if event is _UNKNOWN:  # nothing fetched yet: nothing to refresh early
                    return _Plan(key, slot_id, _Slot(), _NOTHING)
                slot = self._entries[slot_id] = _Slot()
            now = self._clock()
            slot.state, action = step(self.rules, slot.state, event, now)
            if action.kind not in (FETCH, REFRESH, SERVE_AND_REFRESH):
                return _Plan(key, slot_id, slot, action)
            if slot.flight is not None:
                return _Plan(key, slot_id, slot, action, slot.flight)
            slot.state, _ = step(self.rules, slot.state, _STARTED, now)
            slot.flight = _Flight(loop)
            return _Plan(key, slot_id, slot, action, slot.flight, mine=True)

    def _settle(self, plan: _Plan, event: Resolved | Abandoned) -> Action:
        """Apply what a flight found (or that it was abandoned) and release its waiters."""
        with self._lock:
            slot = plan.slot
            slot.state, action = step(self.rules, slot.state, event, self._clock())
            if slot.flight is plan.flight:
                slot.flight = None
        if action.replaced is not None:
            self._report_changes(plan.slot_id, action.replaced, action.catalog)
        assert plan.flight is not None
        if not plan.flight.future.done():
            plan.flight.future.set_result(action)
        return action

    # -- async shell ----------------------------------------------------------------------------

    def _launch(self, plan: _Plan) -> None:
        task = asyncio.get_running_loop().create_task(self._fly(plan))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: Any) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a background refresh failure is already logged

    async def _fly(self, plan: _Plan) -> Action:
        try:
            found = await self._drive(self._procedure(plan))
        except BaseException as error:
            self._abandon(plan, error)
            raise
        return self._settle(plan, found)

    def _abandon(self, plan: _Plan, error: BaseException) -> None:
        """A fetch that ended without an answer: its waiters get 503, a bug is logged."""
        if not isinstance(error, (asyncio.CancelledError, KeyboardInterrupt, SystemExit)):
            logger.error("modelguard: catalog fetch for key %s failed unexpectedly",
                         plan.slot_id[:12], exc_info=error)
        self._settle(plan, _ABANDONED)

    async def _wait(self, plan: _Plan) -> Action:
        assert plan.flight is not None
        return await asyncio.wrap_future(plan.flight.future)

    async def _drive(self, fetch: Fetch) -> Resolved:
        try:
            done, need = resume(fetch)
            while not done:
                try:
                    if isinstance(need, Download):
                        value, failed = await self._download(need.key), False
                    elif isinstance(need, Sleep):
                        value, failed = await asyncio.sleep(need.seconds), False
                    else:
                        assert self.store is not None
                        value, failed = await self.store.run(need), False
                except StoreUnavailable as error:
                    value, failed = error, True
                done, need = resume(fetch, value, failed)
            return need
        finally:
            fetch.close()

    async def _download(self, key: str) -> Got:
        reader = Reader()
        try:
            async with self._http().stream("GET", f"{self.base_url}/v1/models",
                                           headers=_auth(key)) as response:
                if response.status_code == 200:
                    async for chunk in response.aiter_bytes():
                        if not reader.add(chunk):
                            break
                got = reader.result(response.status_code)
        except httpx2.HTTPError as error:
            got = Got(failure=type(error).__name__, count="error")
        return self._counted(got)

    def _http(self) -> httpx2.AsyncClient:
        """The async client of the running event loop (a client's connections belong to
        the loop that opened them; a catalog may outlive one ``asyncio.run``)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            transport = self._transport
            self._client = httpx2.AsyncClient(
                timeout=httpx2.Timeout(self.timeout),
                transport=transport if isinstance(transport, httpx2.AsyncBaseTransport)
                else None,
                follow_redirects=False, headers={"accept": "application/json"},
            )
            self._client_loop = loop
        return self._client

    # -- sync shell -----------------------------------------------------------------------------

    def _launch_thread(self, plan: _Plan) -> None:
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=4, thread_name_prefix="modelguard-refresh")
            pool = self._pool
        try:
            future = pool.submit(self._fly_sync, plan)
        except RuntimeError:  # closed meanwhile
            self._settle(plan, _ABANDONED)
            return
        self._tasks.add(future)
        future.add_done_callback(self._done)

    def _fly_sync(self, plan: _Plan) -> Action:
        try:
            found = self._drive_sync(self._procedure(plan))
        except BaseException as error:
            self._abandon(plan, error)
            raise
        return self._settle(plan, found)

    def _wait_sync(self, plan: _Plan) -> Action:
        flight = plan.flight
        assert flight is not None
        if flight.loop is not None and flight.loop is _running_loop():
            # The flight runs on the event loop this thread is blocking: waiting for it would
            # never end. Fetch once more here instead (not shared; an edge case).
            return self._settle_unshared(plan, self._drive_sync(self._procedure(plan)))
        try:
            return flight.future.result(timeout=3 * self.timeout + 5)
        except concurrent.futures.TimeoutError:
            with self._lock:
                return step(self.rules, plan.slot.state, _ABANDONED, self._clock())[1]

    def _settle_unshared(self, plan: _Plan, found: Resolved) -> Action:
        with self._lock:
            fetching = plan.slot.state.fetching
            state, action = step(self.rules, plan.slot.state, found, self._clock())
            plan.slot.state = replace(state, fetching=fetching)
        return action

    def _drive_sync(self, fetch: Fetch) -> Resolved:
        try:
            done, need = resume(fetch)
            while not done:
                try:
                    if isinstance(need, Download):
                        value, failed = self._download_sync(need.key), False
                    elif isinstance(need, Sleep):
                        value, failed = time.sleep(need.seconds), False
                    else:
                        assert self.store is not None
                        value, failed = self.store.run_sync(need), False
                except StoreUnavailable as error:
                    value, failed = error, True
                done, need = resume(fetch, value, failed)
            return need
        finally:
            fetch.close()

    def _download_sync(self, key: str) -> Got:
        reader = Reader()
        try:
            with self._http_sync().stream("GET", f"{self.base_url}/v1/models",
                                          headers=_auth(key)) as response:
                if response.status_code == 200:
                    for chunk in response.iter_bytes():
                        if not reader.add(chunk):
                            break
                got = reader.result(response.status_code)
        except httpx2.HTTPError as error:
            got = Got(failure=type(error).__name__, count="error")
        return self._counted(got)

    def _http_sync(self) -> httpx2.Client:
        client = self._sync_client
        if client is None:
            with self._lock:
                if self._sync_client is None:
                    transport = self._transport
                    self._sync_client = httpx2.Client(
                        timeout=httpx2.Timeout(self.timeout),
                        transport=transport if isinstance(transport, httpx2.BaseTransport)
                        else None,
                        follow_redirects=False, headers={"accept": "application/json"},
                    )
                client = self._sync_client
        return client

    # -- what a fetch does (described in fetch.py; the drivers above do the I/O) ----------------

    def _procedure(self, plan: _Plan) -> Fetch:
        max_age = self.min_refresh_interval if plan.action.kind == REFRESH else self.ttl
        return self._tier.fetch(plan.key, plan.slot_id, plan.slot, max_age)

    def _resolve(self, got: Got, slot_id: str) -> tuple[Resolved, bytes | None]:
        """A download as the state machine's event (and the digest of an accepted payload);
        a failure is logged here, once, by the process that made the request."""
        if got.denied is not None:
            return Resolved(denied=got.denied, denied_for=self.negative_ttl), None
        failure, digest, catalog = got.failure, None, None
        if failure is None:
            assert got.raw is not None
            digest = hashlib.sha256(got.raw).digest()
            try:
                catalog = self._intern(got.raw, digest)
            except CatalogError as error:
                failure = str(error)[:200]
            self._count("malformed" if failure is not None else "ok")
        if failure is not None:
            logger.warning("modelguard: catalog refresh failed for key %s: %s", slot_id[:12],
                           failure)
            return Resolved(failure=failure, failure_for=self.failure_backoff), None
        return Resolved(catalog=catalog), digest

    def _counted(self, got: Got) -> Got:
        if got.count is not None:
            self._count(got.count)
        return got

    def _follow_secret(self, slot_id: str, slot: _Slot, key: str) -> str:
        """Adopt the store's secret; if that changed the key id, file the entry under both."""
        self._adopt_secret()
        kid = self.key_id(key)
        with self._lock:
            if kid != slot_id and kid not in self._entries:
                self._entries[kid] = slot
        return kid

    def _adopt_secret(self) -> None:
        """Hash keys with the store's secret once it is known (it may arrive late)."""
        secret = self.store.secret if self.store is not None else None
        if secret is not None and secret != self._secret:
            self._secret = secret

    def _share(self, outcome: str) -> None:
        with self._lock:
            self.shared[outcome] = self.shared.get(outcome, 0) + 1

    # -- payloads ---------------------------------------------------------------------------------

    def _intern(self, raw: bytes, digest: bytes | None = None) -> Catalog:
        digest = hashlib.sha256(raw).digest() if digest is None else digest
        catalog = self._interned.get(digest)
        if catalog is None:
            catalog = Catalog.from_bytes(raw)
            self._interned[digest] = catalog
        return catalog

    def _count(self, outcome: str) -> None:
        with self._lock:
            self.fetches[outcome] = self.fetches.get(outcome, 0) + 1

    def _report_changes(self, slot_id: str, old: Catalog, new: Catalog) -> None:
        change = diff(slot_id[:12], old, new)
        if not (change.added or change.removed or change.changed):
            return
        logger.info("modelguard: catalog changed for key %s: added=%s removed=%s changed=%s",
                    change.key_id, list(change.added), list(change.removed),
                    list(change.changed))
        if self.on_change is not None:
            try:
                self.on_change(change)
            except Exception:
                logger.exception("modelguard: on_change hook raised")


def diff(key_id: str, old: Catalog, new: Catalog) -> CatalogChange:
    before, after = set(old.ids), set(new.ids)
    changed = tuple(sorted(
        mid for mid in before & after if _facts(old.get(mid)) != _facts(new.get(mid))
    ))
    return CatalogChange(key_id, tuple(sorted(after - before)), tuple(sorted(before - after)),
                         changed)


def _facts(entry: ModelInfo | None) -> tuple[Any, ...]:
    return tuple(getattr(entry, name) for name in _COMPARED)


def _refused(status: int) -> CatalogUnavailable:
    if status == 401:
        return CatalogUnavailable(Reason.UNAUTHENTICATED, (
            "The gateway refused this API key (401): it is missing, wrong or revoked."))
    return CatalogUnavailable(Reason.FORBIDDEN, (
        "The gateway accepted this API key but grants it no models (403)."))




def _answer(action: Action) -> Catalog:
    """The catalog a settled action serves, or the refusal it stands for."""
    if action.kind in (SERVE, SERVE_AND_REFRESH):
        return action.catalog
    if action.kind == REFUSE:
        assert action.status is not None
        raise _refused(action.status)
    assert action.kind == UNAVAILABLE, action
    cause = f" Last attempt: {action.failure}." if action.failure else ""
    raise CatalogUnavailable(
        Reason.UNAVAILABLE,
        "The model catalog is unavailable: the gateway did not answer and no recent copy "
        f"is cached; retry shortly.{cause}",
        retry_after=action.retry_after,
    )


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
