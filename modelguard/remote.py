"""``RemoteCatalog``: each caller's catalog, fetched from the gateway and kept fresh.

Freshness (decisions.md §7): an entry is fresh for ``ttl`` seconds; after that it keeps being
served while one background refresh runs, and, if refreshing fails, until ``max_stale`` past
its expiry. A 401/403 takes effect at once and is remembered for ``negative_ttl`` seconds.
Concurrent misses for one key share one upstream request. Raw keys never leave this module's
locals: entries are indexed by a keyed hash.
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
from typing import Any

import cachetools
import httpx

from .catalog import Catalog, CatalogError, ModelInfo
from .errors import Reason
from .sources import CatalogUnavailable

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
        self._entries: cachetools.LRUCache[str, _Entry] = cachetools.LRUCache(max_keys)
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Identical payloads (many keys of one routing group) share one Catalog object.
        self._interned: weakref.WeakValueDictionary[bytes, Catalog] = (
            weakref.WeakValueDictionary())
        #: Upstream requests made, by outcome (for tests, logs and metrics).
        self.fetches: dict[str, int] = {}

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
            return await self._join(slot, entry, key)
        except (_Failed, CatalogUnavailable):
            return None

    # -- lifecycle ----------------------------------------------------------------------------

    async def startup(self) -> None:
        """Service mode: fetch now, so a refused key is reported at boot, not on a request."""
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
            raise CatalogUnavailable(
                Reason.UNAUTHENTICATED,
                "No API key: send it as x-api-key, Authorization: Bearer, x-goog-api-key or "
                "?key=.",
            )
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

    def _start(self, slot: str, entry: _Entry, key: str) -> asyncio.Task[Catalog]:
        if entry.inflight is None:
            task = asyncio.get_running_loop().create_task(self._fetch(slot, entry, key))
            entry.inflight = task
            self._tasks.add(task)
            task.add_done_callback(self._done)
        return entry.inflight

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a background refresh failure is already logged

    async def _join(self, slot: str, entry: _Entry, key: str) -> Catalog:
        task = self._start(slot, entry, key)
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
        previous = entry.catalog
        entry.catalog = catalog
        entry.fetched_at = self._clock()
        entry.failed_at = -math.inf
        entry.denied = None
        if previous is not None and previous is not catalog:
            self._report_changes(slot, previous, catalog)
        return catalog

    async def _download(self, key: str) -> Catalog:
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
        try:
            catalog = self._intern(raw)
        except CatalogError as error:
            self._count("malformed")
            raise _Failed(str(error)[:200]) from None
        self._count("ok")
        return catalog

    def _intern(self, raw: bytes) -> Catalog:
        digest = hashlib.sha256(raw).digest()
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
