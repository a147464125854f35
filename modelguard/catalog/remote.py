"""``RemoteCatalog``: each caller's catalog, fetched from the gateway and kept fresh.

Freshness (decisions.md §7): an entry is fresh for ``ttl`` seconds; after that it keeps being
served while one background refresh runs, and, if refreshing fails, until ``max_stale`` past
its expiry. A 401/403 takes effect at once and is remembered for ``negative_ttl`` seconds.
Concurrent misses for one key share one upstream request. Raw keys never leave this module's
locals: entries are indexed by a keyed hash.

With ``store=RedisCatalogStore(url)`` the in-process cache stays in front (a fresh entry never
touches the network); misses and refreshes go through Redis first, so replicas share fetched
catalogs, refusals and failures, and one replica at a time refreshes a key (store.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import secrets
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import cachetools
import httpx

from ..errors import Reason
from .model import Catalog, CatalogError, ModelInfo
from .sources import CatalogUnavailable, no_credential
from .store import StoredEntry, StoredState, StoreUnavailable

if TYPE_CHECKING:
    from .store import RedisCatalogStore

__all__ = ["CatalogChange", "RemoteCatalog"]

logger = logging.getLogger("modelguard.catalog")

#: The largest catalog response read; a bigger one is a failed refresh, not a memory problem.
MAX_CATALOG_BYTES = 16 * 1024 * 1024
#: After a failed fetch, a key's next fetch waits this long (a down gateway is not hammered).
RETRY_AFTER = 5.0
_COMPARED = ("owned_by", "family", "capabilities", "context_window", "max_output_tokens",
             "input_modalities", "output_modalities")


@dataclass(frozen=True)
class CatalogChange:
    """What changed in one key's catalog between two refreshes (ids only, never the key)."""

    key_id: str
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]


@dataclass
class _Entry:
    catalog: Catalog | None = None
    fetched_at: float = -math.inf      # last successful fetch
    attempted_at: float = -math.inf    # last fetch of any kind (min_refresh_interval)
    failed_at: float = -math.inf       # last transient failure (RETRY_AFTER)
    failure: str = ""
    denied: CatalogUnavailable | None = None
    denied_until: float = -math.inf
    inflight: asyncio.Task[Catalog] | None = field(default=None, repr=False)


class _Failed(Exception):
    """A transient failure to fetch (timeout, 5xx, 429, malformed)."""


@dataclass
class _Outcome:
    """What one shared fetch found: a catalog, a refusal or a failure (maybe with a stale copy)."""

    catalog: Catalog | None = None
    age: float = 0.0                 # seconds since that catalog was fetched upstream
    denied: CatalogUnavailable | None = None
    denied_for: float = 0.0
    failure: str | None = None
    failure_for: float = RETRY_AFTER
    own: bool = False                # this process made the upstream request


class RemoteCatalog:
    """The gateway's ``GET /v1/models``, per caller key (or one ``api_key`` for everyone)."""

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
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        store: RedisCatalogStore | None = None,
    ) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.ttl = ttl
        self.max_stale = max_stale
        self.negative_ttl = negative_ttl
        self.min_refresh_interval = min_refresh_interval
        self.timeout = timeout
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
            #: Gateways never share entries: Redis keys carry a digest of the base URL.
            self._namespace = hashlib.sha256(self.base_url.encode()).hexdigest()[:16]
        self._entries: cachetools.LRUCache[str, _Entry] = cachetools.LRUCache(max_keys)
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
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
        key = self._credential(credential)
        slot = self.key_id(key)
        entry = self._entries.get(slot)
        now = self._clock()
        if entry is None:
            entry = self._entries[slot] = _Entry()
        if entry.denied is not None and now < entry.denied_until:
            raise entry.denied
        if entry.catalog is not None:
            age = now - entry.fetched_at
            if age < self.ttl:
                return entry.catalog
            if age < self.ttl + self.max_stale:
                if now - entry.failed_at >= RETRY_AFTER:
                    self._start(slot, entry, key)
                return entry.catalog
        if now - entry.failed_at < RETRY_AFTER and entry.inflight is None:
            raise self._unavailable(entry, now)
        try:
            return await self._join(slot, entry, key)
        except _Failed:
            raise self._unavailable(entry, self._clock()) from None

    async def refresh_for_unknown(self, credential: str | None) -> Catalog | None:
        """One early refresh per ``min_refresh_interval``, so new models work at once."""
        key = self._credential(credential)
        slot = self.key_id(key)
        entry = self._entries.get(slot)
        if entry is None or self._clock() - entry.attempted_at < self.min_refresh_interval:
            return None
        try:
            return await self._join(slot, entry, key, self.min_refresh_interval)
        except (_Failed, CatalogUnavailable):
            return None

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
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for entry in self._entries.values():
            entry.inflight = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self.store is not None:
            await self.store._release(self)  # noqa: SLF001

    def key_id(self, key: str) -> str:
        """A keyed hash of a key: stable in this process, useless to anyone guessing keys."""
        return hmac.new(self._secret, key.encode("utf-8", "surrogatepass"),
                        hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        mode = "service" if self._api_key is not None else "forwarding"
        return f"RemoteCatalog({self.base_url!r}, mode={mode}, keys={len(self._entries)})"

    # -- fetching -----------------------------------------------------------------------------

    def _credential(self, credential: str | None) -> str:
        key = self._api_key if self._api_key is not None else credential
        if not key:
            raise no_credential()
        return key

    def _unavailable(self, entry: _Entry, now: float) -> CatalogUnavailable:
        wait = max(1, math.ceil(RETRY_AFTER - (now - entry.failed_at)))
        cause = f" Last attempt: {entry.failure}." if entry.failure else ""
        return CatalogUnavailable(
            Reason.UNAVAILABLE,
            "The model catalog is unavailable: the gateway did not answer and no recent copy "
            f"is cached; retry shortly.{cause}",
            retry_after=wait,
        )

    def _start(self, slot: str, entry: _Entry, key: str,
               max_age: float | None = None) -> asyncio.Task[Catalog]:
        if entry.inflight is None:
            if self.store is None:
                work = self._fetch(slot, entry, key)
            else:
                work = self._fetch_shared(slot, entry, key,
                                          self.ttl if max_age is None else max_age)
            task = asyncio.get_running_loop().create_task(work)
            entry.inflight = task
            self._tasks.add(task)
            task.add_done_callback(self._done)
        return entry.inflight

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a background refresh failure is already logged

    async def _join(self, slot: str, entry: _Entry, key: str,
                    max_age: float | None = None) -> Catalog:
        task = self._start(slot, entry, key, max_age)
        return await asyncio.shield(task)

    async def _fetch(self, slot: str, entry: _Entry, key: str) -> Catalog:
        entry.attempted_at = self._clock()
        try:
            catalog = await self._download(key)
        except CatalogUnavailable as denied:  # 401/403: revoked now, remembered briefly
            entry.catalog = None
            entry.denied = denied
            entry.denied_until = self._clock() + self.negative_ttl
            raise
        except _Failed as error:
            entry.failed_at = self._clock()
            entry.failure = str(error)
            logger.warning("modelguard: catalog refresh failed for key %s: %s", slot[:12], error)
            raise
        finally:
            entry.inflight = None
        self._accept(slot, entry, catalog, self._clock())
        return catalog

    # -- through the shared store ----------------------------------------------------------------

    async def _fetch_shared(self, slot: str, entry: _Entry, key: str, max_age: float) -> Catalog:
        """Like :meth:`_fetch`, but another replica's fetch (within ``max_age``), refusal or
        failure counts, and only one replica at a time asks the gateway for this key."""
        entry.attempted_at = self._clock()
        try:
            outcome = await self._shared_outcome(slot, entry, key, max_age)
        finally:
            entry.inflight = None
        self._follow_secret(slot, entry, key)  # a write may have found a newer shared secret
        now = self._clock()
        if outcome.denied is not None:
            entry.catalog = None
            entry.denied = outcome.denied
            entry.denied_until = now + outcome.denied_for
            raise outcome.denied
        if outcome.failure is None:
            assert outcome.catalog is not None
            self._accept(slot, entry, outcome.catalog, now - outcome.age)
            return outcome.catalog
        # A failure: the newest good copy anyone has keeps serving (stale-if-error).
        if outcome.catalog is not None and (
                entry.catalog is None or now - outcome.age > entry.fetched_at):
            self._accept(slot, entry, outcome.catalog, now - outcome.age)
        entry.failed_at = now - max(0.0, RETRY_AFTER - outcome.failure_for)
        entry.failure = outcome.failure
        if outcome.own:
            logger.warning("modelguard: catalog refresh failed for key %s: %s", slot[:12],
                           outcome.failure)
        if entry.catalog is not None and now - entry.fetched_at < self.ttl + self.max_stale:
            return entry.catalog
        raise _Failed(outcome.failure)

    async def _shared_outcome(self, slot: str, entry: _Entry, key: str,
                              max_age: float) -> _Outcome:
        store = self.store
        assert store is not None
        store._attach(self)  # noqa: SLF001  (again, if this catalog was closed and reused)
        try:
            await store.ensure_secret()
        except StoreUnavailable:
            return await self._local_outcome(key)
        kid = self._follow_secret(slot, entry, key)
        ns = self._namespace
        hold = 2 * self.timeout + 1  # the lock outlives one upstream request
        deadline = time.monotonic() + hold + 1
        pause = 0.01
        while True:
            try:
                found = await self._usable(await store.read(ns, kid), max_age)
                if found is not None:
                    return found
                token = await store.lock(ns, kid, hold)
                if token is not None:
                    try:  # checked again: the previous holder may have just finished
                        state = await store.read(ns, kid)
                        found = await self._usable(state, max_age)
                        if found is not None:
                            return found
                        return await self._fetch_and_share(ns, kid, key, state)
                    finally:
                        await store.unlock(ns, kid, token)
            except StoreUnavailable:
                return await self._local_outcome(key)
            if time.monotonic() >= deadline:  # the holder vanished: stop waiting for it
                return await self._local_outcome(key)
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, 0.1)

    async def _usable(self, state: StoredState, max_age: float) -> _Outcome | None:
        """What Redis has that answers this fetch, or None (then someone must fetch)."""
        stored = state.entry
        if stored is not None and stored.state != "ok":
            self._share("denied")
            return _Outcome(denied=_refused(int(stored.state)), denied_for=stored.expires_in)
        if stored is not None and stored.age < max_age:
            catalog = await self._stored_catalog(stored)
            if catalog is not None:
                self._share("hit")
                return _Outcome(catalog=catalog, age=stored.age)
        if state.failure is not None:  # another replica just failed: do not hammer upstream
            self._share("failed")
            return _Outcome(catalog=await self._stale_copy(stored),
                            age=stored.age if stored is not None else 0.0,
                            failure=state.failure, failure_for=state.failure_expires_in)
        return None

    async def _stale_copy(self, stored: StoredEntry | None) -> Catalog | None:
        if stored is None or stored.state != "ok" or stored.age >= self.ttl + self.max_stale:
            return None
        return await self._stored_catalog(stored)

    async def _stored_catalog(self, stored: StoredEntry) -> Catalog | None:
        """The catalog an entry points at (None if its payload is gone or damaged)."""
        assert self.store is not None
        try:
            digest = bytes.fromhex(stored.digest)
        except ValueError:
            return None
        catalog = self._interned.get(digest)
        if catalog is not None:
            return catalog
        raw = await self.store.payload(stored.digest)
        if raw is None or hashlib.sha256(raw).digest() != digest:
            return None
        try:
            return self._intern(raw, digest)
        except CatalogError:
            return None

    async def _fetch_and_share(self, ns: str, kid: str, key: str,
                               state: StoredState) -> _Outcome:
        """This replica holds the lock: ask the gateway, then tell the others."""
        assert self.store is not None
        try:
            raw = await self._download_raw(key)
            digest = hashlib.sha256(raw).digest()
            catalog = self._parse(raw, digest)
        except CatalogUnavailable as denied:
            status = 401 if denied.reason == Reason.UNAUTHENTICATED else 403
            await self.store.put_denied(ns, kid, status, time.time(), self.negative_ttl)
            self._share("fetched")
            return _Outcome(denied=denied, denied_for=self.negative_ttl)
        except _Failed as error:
            await self.store.put_failure(ns, kid, str(error), RETRY_AFTER)
            self._share("fetched")
            try:
                stale = await self._stale_copy(state.entry)
            except StoreUnavailable:
                stale = None
            age = state.entry.age if state.entry is not None else 0.0
            return _Outcome(catalog=stale, age=age, failure=str(error), own=True)
        await self.store.put_catalog(ns, kid, digest.hex(), raw, time.time(),
                                     self.ttl + self.max_stale)
        self._share("fetched")
        return _Outcome(catalog=catalog)

    async def _local_outcome(self, key: str) -> _Outcome:
        """Redis is unavailable: fetch as a lone process would."""
        self._share("local")
        try:
            return _Outcome(catalog=await self._download(key))
        except CatalogUnavailable as denied:
            return _Outcome(denied=denied, denied_for=self.negative_ttl)
        except _Failed as error:
            return _Outcome(failure=str(error), own=True)

    def _follow_secret(self, slot: str, entry: _Entry, key: str) -> str:
        """Adopt the store's secret; if that changed the key id, file the entry under both."""
        self._adopt_secret()
        kid = self.key_id(key)
        if kid != slot and kid not in self._entries:
            self._entries[kid] = entry
        return kid

    def _adopt_secret(self) -> None:
        """Hash keys with the store's secret once it is known (it may arrive late)."""
        secret = self.store.secret if self.store is not None else None
        if secret is not None and secret != self._secret:
            self._secret = secret

    def _share(self, outcome: str) -> None:
        self.shared[outcome] = self.shared.get(outcome, 0) + 1

    def _accept(self, slot: str, entry: _Entry, catalog: Catalog, fetched_at: float) -> None:
        previous = entry.catalog
        entry.catalog = catalog
        entry.fetched_at = fetched_at
        entry.failed_at = -math.inf
        entry.denied = None
        if previous is not None and previous is not catalog:
            self._report_changes(slot, previous, catalog)

    async def _download(self, key: str) -> Catalog:
        raw = await self._download_raw(key)
        return self._parse(raw)

    async def _download_raw(self, key: str) -> bytes:
        client = self._http()
        url = f"{self.base_url}/v1/models"
        try:
            async with client.stream("GET", url, headers={"authorization": f"Bearer {key}"}) as r:
                status = r.status_code
                if status in (401, 403):
                    self._count(str(status))
                    raise _refused(status)
                if status != 200:
                    self._count(str(status))
                    raise _Failed(f"HTTP {status}")
                raw = await _read_capped(r)
                if raw is None:
                    self._count("too_large")
                    raise _Failed(f"catalog response over {MAX_CATALOG_BYTES} bytes")
        except httpx.HTTPError as error:
            self._count("error")
            raise _Failed(type(error).__name__) from None
        return raw

    def _parse(self, raw: bytes, digest: bytes | None = None) -> Catalog:
        try:
            catalog = self._intern(raw, digest)
        except CatalogError as error:
            self._count("malformed")
            raise _Failed(str(error)[:200]) from None
        self._count("ok")
        return catalog

    def _intern(self, raw: bytes, digest: bytes | None = None) -> Catalog:
        digest = hashlib.sha256(raw).digest() if digest is None else digest
        catalog = self._interned.get(digest)
        if catalog is None:
            catalog = Catalog.from_bytes(raw)
            self._interned[digest] = catalog
        return catalog

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout), transport=self._transport,
                follow_redirects=False, headers={"accept": "application/json"},
            )
        return self._client

    def _count(self, outcome: str) -> None:
        self.fetches[outcome] = self.fetches.get(outcome, 0) + 1

    def _report_changes(self, slot: str, old: Catalog, new: Catalog) -> None:
        change = diff(slot[:12], old, new)
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


async def _read_capped(response: httpx.Response) -> bytes | None:
    """The body, or None when it is larger than any sane catalog."""
    chunks = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_CATALOG_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
