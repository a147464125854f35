"""How one catalog fetch goes, described once as a generator of the I/O it needs.

``RemoteCatalog`` runs these descriptions with an async driver or a blocking one; they yield
:class:`Download` (ask the gateway), :class:`Sleep` (wait for another replica), or a Redis
operation of :class:`~.store.RedisCatalogStore` (``*_op``), receive each one's result
(``StoreUnavailable`` is thrown in), and return what they found as a
:class:`~.freshness.Resolved` event. Two implementations of one interface:

- :class:`Alone`: this process only; every fetch asks the gateway.
- :class:`ThroughRedis`: Redis behind the in-process cache; another replica's fetch, refusal
  or failure counts, and one replica at a time asks the gateway for a key (a short lock).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from .freshness import Resolved
from .model import Catalog, CatalogError
from .store import StoredEntry, StoredState, StoreUnavailable

if TYPE_CHECKING:
    from .remote import RemoteCatalog
    from .store import RedisCatalogStore

__all__ = ["MAX_CATALOG_BYTES", "Alone", "Download", "Fetch", "Got", "Reader", "Sleep",
           "ThroughRedis", "Tier"]

#: The largest catalog response read; a bigger one is a failed refresh, not a memory problem.
MAX_CATALOG_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Download:
    """I/O request: ``GET {base_url}/v1/models`` with this key; answered with a :class:`Got`."""

    key: str


@dataclass(frozen=True, slots=True)
class Sleep:
    """I/O request: pause (waiting for another replica's fetch)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Got:
    """What one download found: the raw body, a refusal, or a failure."""

    raw: bytes | None = None
    denied: int | None = None
    failure: str | None = None
    #: The ``fetches`` counter to bump (a payload is counted once parsed: "ok"/"malformed").
    count: str | None = None


#: A fetch: yields Download, Sleep or a store operation; returns a Resolved event.
Fetch: TypeAlias = Generator[Any, Any, Resolved]


class Tier(Protocol):
    """Where a key's fetch goes."""

    def fetch(self, key: str, slot_id: str, slot: Any, max_age: float) -> Fetch:
        """``max_age``: how old a copy another replica fetched may be to count as fresh."""
        ...


class Alone:
    """This process only: ask the gateway."""

    def __init__(self, owner: RemoteCatalog) -> None:
        self.owner = owner

    def fetch(self, key: str, slot_id: str, slot: Any, max_age: float) -> Fetch:
        got = yield Download(key)
        return self.owner._resolve(got, slot_id)[0]  # noqa: SLF001


class ThroughRedis:
    """Redis behind the in-process cache, shared by every replica (store.py)."""

    def __init__(self, owner: RemoteCatalog, store: RedisCatalogStore) -> None:
        self.owner = owner
        self.store = store
        #: Gateways never share entries: Redis keys carry a digest of the base URL.
        self.namespace = hashlib.sha256(owner.base_url.encode()).hexdigest()[:16]

    def fetch(self, key: str, slot_id: str, slot: Any, max_age: float) -> Fetch:
        """Another replica's fetch (within ``max_age``), refusal or failure counts, and only
        one replica at a time asks the gateway for this key."""
        found = yield from self._through_store(key, slot_id, slot, max_age)
        self.owner._follow_secret(slot_id, slot, key)  # a write may have found a newer secret
        return found

    def _through_store(self, key: str, slot_id: str, slot: Any, max_age: float) -> Fetch:
        store = self.store
        store._attach(self.owner)  # noqa: SLF001  (again, if the catalog was closed and reused)
        try:
            yield store.ensure_secret_op()
        except StoreUnavailable:
            return (yield from self._alone(key, slot_id))
        kid = self.owner._follow_secret(slot_id, slot, key)
        ns = self.namespace
        hold = 2 * self.owner.timeout + 1  # the lock outlives one upstream request
        deadline = time.monotonic() + hold + 1
        pause = 0.01
        while True:
            try:
                found = yield from self._usable((yield store.read_op(ns, kid)), max_age)
                if found is not None:
                    return found
                token = yield store.lock_op(ns, kid, hold)
            except StoreUnavailable:
                return (yield from self._alone(key, slot_id))
            if token is not None:
                try:  # checked again: the previous holder may have just finished
                    state = yield store.read_op(ns, kid)
                    found = yield from self._usable(state, max_age)
                    if found is None:
                        found = yield from self._fetch_and_share(ns, kid, key, slot_id, state)
                except StoreUnavailable:
                    found = None
                yield store.unlock_op(ns, kid, token)
                return found if found is not None else (yield from self._alone(key, slot_id))
            if time.monotonic() >= deadline:  # the holder vanished: stop waiting for it
                return (yield from self._alone(key, slot_id))
            yield Sleep(pause)
            pause = min(pause * 1.5, 0.1)

    def _usable(self, state: StoredState, max_age: float) -> Generator[Any, Any,
                                                                        Resolved | None]:
        """What Redis has that answers this fetch, or None (then someone must fetch)."""
        stored = state.entry
        if stored is not None and stored.state != "ok":
            self.owner._share("denied")
            return Resolved(denied=int(stored.state), denied_for=stored.expires_in)
        if stored is not None and stored.age < max_age:
            catalog = yield from self._stored_catalog(stored)
            if catalog is not None:
                self.owner._share("hit")
                return Resolved(catalog=catalog, age=stored.age)
        if state.failure is not None:  # another replica just failed: do not hammer upstream
            self.owner._share("failed")
            return Resolved(catalog=(yield from self._stale_copy(stored)),
                            age=stored.age if stored is not None else 0.0,
                            failure=state.failure, failure_for=state.failure_expires_in)
        return None

    def _stale_copy(self, stored: StoredEntry | None) -> Generator[Any, Any, Catalog | None]:
        owner = self.owner
        if stored is None or stored.state != "ok" or stored.age >= owner.ttl + owner.max_stale:
            return None
        return (yield from self._stored_catalog(stored))

    def _stored_catalog(self, stored: StoredEntry) -> Generator[Any, Any, Catalog | None]:
        """The catalog an entry points at (None if its payload is gone or damaged)."""
        try:
            digest = bytes.fromhex(stored.digest)
        except ValueError:
            return None
        catalog = self.owner._interned.get(digest)
        if catalog is not None:
            return catalog
        raw = yield self.store.payload_op(stored.digest)
        if raw is None or hashlib.sha256(raw).digest() != digest:
            return None
        try:
            return self.owner._intern(raw, digest)
        except CatalogError:
            return None

    def _fetch_and_share(self, ns: str, kid: str, key: str, slot_id: str,
                         state: StoredState) -> Fetch:
        """This replica holds the lock: ask the gateway, then tell the others."""
        got = yield Download(key)
        found, digest = self.owner._resolve(got, slot_id)
        self.owner._share("fetched")
        if found.denied is not None:
            yield self.store.put_denied_op(ns, kid, found.denied, time.time(),
                                           self.owner.negative_ttl)
            return found
        if found.failure is not None:
            yield self.store.put_failure_op(ns, kid, found.failure, self.owner.failure_backoff)
            try:
                stale = yield from self._stale_copy(state.entry)
            except StoreUnavailable:
                stale = None
            age = state.entry.age if state.entry is not None else 0.0
            return Resolved(catalog=stale, age=age, failure=found.failure,
                            failure_for=self.owner.failure_backoff)
        assert got.raw is not None and digest is not None
        yield self.store.put_catalog_op(ns, kid, digest.hex(), got.raw, time.time(),
                                        self.owner.ttl + self.owner.max_stale)
        return found

    def _alone(self, key: str, slot_id: str) -> Fetch:
        """Redis is unavailable: fetch as a lone process would."""
        self.owner._share("local")
        return (yield from Alone(self.owner).fetch(key, slot_id, None, 0.0))


class Reader:
    """Collects a catalog response, up to :data:`MAX_CATALOG_BYTES`."""

    __slots__ = ("chunks", "over", "size")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.over = False

    def add(self, chunk: bytes) -> bool:
        """Keep a chunk; False once the body is larger than any sane catalog."""
        self.size += len(chunk)
        if self.size > MAX_CATALOG_BYTES:
            self.over = True
            return False
        self.chunks.append(chunk)
        return True

    def result(self, status: int) -> Got:
        if status in (401, 403):
            return Got(denied=status, count=str(status))
        if status != 200:
            return Got(failure=f"HTTP {status}", count=str(status))
        if self.over:
            return Got(failure=f"catalog response over {MAX_CATALOG_BYTES} bytes",
                       count="too_large")
        return Got(raw=b"".join(self.chunks))
