"""``RedisCatalogStore``: one catalog cache shared by every replica, in Redis.

``RemoteCatalog(base_url, store=RedisCatalogStore(url))`` keeps its in-process cache and puts
Redis behind it: a replica that misses (or whose entry went stale) first reads what another
replica fetched, and only one replica at a time asks the gateway for one key (a short lock per
key id). Everything in Redis is indexed by the same HMAC key id the replicas use locally, so
the secret for that HMAC has to be the same everywhere: ``secret=``, else the environment
variable ``MODELGUARD_KEY_SECRET``, else a random secret that the first replica creates in
Redis (``SET NX``) and every other replica reads.

Layout (``prefix`` defaults to ``modelguard:``; ``ns`` is a digest of the gateway's base URL,
so two gateways never share entries; ``kid`` is the HMAC-SHA256 key id, hex):

- ``{prefix}secret`` – the shared random secret (only without ``secret=`` / the env variable)
- ``{prefix}catalog:{ns}:{kid}`` – hash ``state`` (``ok``, ``401`` or ``403``), ``fetched_at``
  (wall clock, seconds), ``digest`` (sha256 of the payload, hex); expires ``ttl + max_stale``
  after the fetch (``negative_ttl`` for a refusal)
- ``{prefix}payload:{digest}`` – the raw ``GET /v1/models`` body, shared by every key id whose
  catalog is byte-identical; expires with the newest entry that points at it
- ``{prefix}lock:{ns}:{kid}`` – the refresh lock: a random token, ``SET NX PX``; released only
  by its owner (compare-and-delete in Lua)
- ``{prefix}failed:{ns}:{kid}`` – the last transient failure (no key in it), kept for
  ``RETRY_AFTER`` seconds so a down gateway gets one request per key, not one per replica

Redis is an optimisation, never a dependency of a request: every call is bounded by
``timeout``; when Redis fails the store says so once (WARNING), answers "unavailable" without
touching the network for ``retry_interval`` seconds, and the replica fetches on its own; the
first call that works again logs once (INFO) and sharing resumes.

``redis`` (the ``modelguard-gateway[redis]`` extra) is imported only when a store is created.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar
from urllib.parse import urlsplit

from .._resume import resume

__all__ = ["SECRET_ENV", "RedisCatalogStore", "StoreUnavailable"]

logger = logging.getLogger("modelguard.store")

#: The environment variable holding the HMAC secret for key ids.
SECRET_ENV = "MODELGUARD_KEY_SECRET"
#: The shortest secret accepted (bytes): a short one could be found by trying.
MIN_SECRET_BYTES = 16
#: The longest expiry written (Redis takes milliseconds as a 64-bit integer; a year is plenty).
_MAX_EXPIRY_MS = 365 * 24 * 3600 * 1000

#: Marks the end of a write pipeline that re-asserted the shared secret.
_REASSERTED = b"modelguard-secret-checked"

_UNLOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""

T = TypeVar("T")

#: One Redis command: method name, positional and keyword arguments (as redis-py takes them).
_Command: TypeAlias = tuple[str, tuple[Any, ...], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class _Pipe:
    """One round trip: commands sent as one pipeline (a MULTI/EXEC one if ``transaction``)."""

    transaction: bool
    commands: tuple[_Command, ...]


#: A store operation described once, without I/O: a generator that yields the round trips it
#: needs and receives each one's results (or has StoreUnavailable thrown in). ``run`` executes
#: it on the async client, ``run_sync`` on the blocking one.
Op: TypeAlias = Generator[_Pipe, Any, T]


def _cmd(name: str, *args: Any, **kwargs: Any) -> _Command:
    return name, args, kwargs


class StoreUnavailable(Exception):
    """Redis did not answer (or is being left alone after failing): fetch locally."""


@dataclass(frozen=True)
class StoredEntry:
    """One key id's shared entry, as read."""

    state: str            # "ok", "401" or "403"
    fetched_at: float     # wall clock of the upstream fetch
    digest: str           # payload sha256, hex ("" for a refusal)
    expires_in: float     # seconds until Redis drops it

    @property
    def age(self) -> float:
        return max(0.0, time.time() - self.fetched_at)


@dataclass(frozen=True)
class StoredState:
    """What Redis knows about one key id: its entry and a recent failure, if any."""

    entry: StoredEntry | None
    failure: str | None
    failure_expires_in: float


class RedisCatalogStore:
    """Fetched catalogs shared between processes through Redis.

    ``url``: a redis-py URL (``redis://[[user]:[password]@]host:port/db``, ``rediss://`` for
    TLS, ``unix://``). ``secret``: the HMAC secret for key ids (str or bytes, at least 16
    bytes); default ``$MODELGUARD_KEY_SECRET``, else a random secret shared through Redis.
    ``prefix``: namespace for every Redis key. ``timeout``: the bound on each Redis call
    (seconds). ``retry_interval``: after Redis fails, how long replicas fetch on their own
    before trying Redis again.
    """

    def __init__(
        self,
        url: str,
        *,
        secret: str | bytes | None = None,
        prefix: str = "modelguard:",
        timeout: float = 0.5,
        retry_interval: float = 5.0,
    ) -> None:
        try:
            import redis
            from redis.asyncio import ConnectionPool, Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
            from redis.retry import Retry as SyncRetry
        except ImportError as error:
            raise ImportError(
                "RedisCatalogStore needs the Redis client: install the extra with "
                "pip install 'modelguard-gateway[redis]'"
            ) from error
        major = str(getattr(redis, "__version__", "0")).split(".", 1)[0]
        if not major.isdigit() or int(major) < 5:
            raise ImportError(
                f"RedisCatalogStore needs redis>=5 (found {redis.__version__}): "
                "pip install -U 'modelguard-gateway[redis]'"
            )
        if timeout <= 0 or retry_interval < 0:
            raise ValueError("timeout must be positive and retry_interval not negative")
        self._redis_class = Redis
        self._no_retry = lambda: Retry(NoBackoff(), 0)
        self._sync_redis_class = redis.Redis
        self._no_sync_retry = lambda: SyncRetry(NoBackoff(), 0)
        ConnectionPool.from_url(url)  # a bad URL fails here, not on a request
        self.url = url
        self.prefix = prefix
        self.timeout = timeout
        self.retry_interval = retry_interval
        self._where = _redacted(url)
        self._secret, self.secret_source = _configured_secret(secret)
        self._client: Any = None
        self._sync_client: Any = None
        self._guard = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._up = True
        self._epoch = 0
        self._retry_at = -math.inf
        self._owners: set[int] = set()

    # -- the secret and key ids --------------------------------------------------------------

    @property
    def secret(self) -> bytes | None:
        """The HMAC secret, or None while a shared secret has not been read from Redis yet."""
        return self._secret

    @property
    def shared_secret(self) -> bool:
        """True when the secret is the random one kept in Redis (see the README: weaker)."""
        return self.secret_source == "shared"

    async def ensure_secret(self) -> bytes:
        """The secret; a shared one is created (``SET NX``) or read once. StoreUnavailable."""
        return await self.run(self.ensure_secret_op())

    def ensure_secret_op(self) -> Op[bytes]:
        if self._secret is None:
            name = self.prefix + "secret"
            candidate = secrets.token_hex(32).encode()
            created, value = yield _Pipe(True, (_cmd("set", name, candidate, nx=True),
                                                _cmd("get", name)))
            self._adopt_secret(value, created=bool(created))
        assert self._secret is not None
        return self._secret

    def key_id(self, key: str) -> str:
        """HMAC-SHA256 of a key under the store's secret (hex); needs :meth:`ensure_secret`."""
        if self._secret is None:
            raise StoreUnavailable("the shared secret has not been read from Redis yet")
        return _hmac(self._secret, key)

    def _adopt_secret(self, value: Any, *, created: bool = False) -> None:
        if not isinstance(value, bytes) or len(value) < 32:
            self._down(ValueError(f"{self.prefix}secret in Redis is not a usable secret"))
            raise StoreUnavailable("bad shared secret")
        if value == self._secret:
            return
        if self._secret is not None:
            logger.info("modelguard: the shared key secret in Redis at %s changed (was Redis "
                        "flushed or restarted?); adopting it, cached key ids start over",
                        self._where)
        elif created:
            logger.info("modelguard: created a random key secret in Redis at %s; set %s for "
                        "a secret Redis does not hold", self._where, SECRET_ENV)
        self._secret = value

    # -- reading -------------------------------------------------------------------------------

    async def read(self, ns: str, kid: str) -> StoredState:
        """The entry and any recent failure for one key id (one round trip)."""
        return await self.run(self.read_op(ns, kid))

    def read_op(self, ns: str, kid: str) -> Op[StoredState]:
        entry_key, failed_key = self._name("catalog", ns, kid), self._name("failed", ns, kid)
        fields, entry_ms, failure, failure_ms = yield _Pipe(False, (
            _cmd("hgetall", entry_key), _cmd("pttl", entry_key),
            _cmd("get", failed_key), _cmd("pttl", failed_key)))
        entry = _parse_entry(fields, entry_ms)
        text = failure.decode("utf-8", "replace") if isinstance(failure, bytes) else None
        return StoredState(entry, text, max(0, failure_ms or 0) / 1000)

    async def payload(self, digest: str) -> bytes | None:
        return await self.run(self.payload_op(digest))

    def payload_op(self, digest: str) -> Op[bytes | None]:
        (value,) = yield _Pipe(False, (_cmd("get", self._name("payload", digest)),))
        return value if isinstance(value, bytes) else None

    # -- the refresh lock ------------------------------------------------------------------------

    async def lock(self, ns: str, kid: str, seconds: float) -> str | None:
        """A token if this caller now holds the key id's refresh lock, else None."""
        return await self.run(self.lock_op(ns, kid, seconds))

    def lock_op(self, ns: str, kid: str, seconds: float) -> Op[str | None]:
        token = secrets.token_hex(16)
        name = self._name("lock", ns, kid)
        (got,) = yield _Pipe(False, (_cmd("set", name, token, nx=True, px=_ms(seconds)),))
        return token if got else None

    async def unlock(self, ns: str, kid: str, token: str) -> None:
        """Release the lock if this token still holds it; never raises (it expires anyway)."""
        await self.run(self.unlock_op(ns, kid, token))

    def unlock_op(self, ns: str, kid: str, token: str) -> Op[None]:
        name = self._name("lock", ns, kid)
        with contextlib.suppress(StoreUnavailable):
            yield _Pipe(False, (_cmd("eval", _UNLOCK, 1, name, token),))

    # -- writing (never raises: a write that fails only means the next replica fetches) -----

    async def put_catalog(self, ns: str, kid: str, digest: str, raw: bytes,
                          fetched_at: float, expires_in: float) -> bool:
        return await self.run(self.put_catalog_op(ns, kid, digest, raw, fetched_at, expires_in))

    def put_catalog_op(self, ns: str, kid: str, digest: str, raw: bytes,
                       fetched_at: float, expires_in: float) -> Op[bool]:
        entry_key, payload_key = self._name("catalog", ns, kid), self._name("payload", digest)
        ms = _ms(expires_in)
        try:
            (have_payload,) = yield _Pipe(False, (_cmd("pexpire", payload_key, ms),))
        except StoreUnavailable:
            return False
        commands = [] if have_payload else [_cmd("set", payload_key, raw, px=ms)]
        commands += [
            _cmd("delete", entry_key),
            _cmd("hset", entry_key, mapping={"state": "ok", "digest": digest,
                                             "fetched_at": repr(fetched_at)}),
            _cmd("pexpire", entry_key, ms),
            _cmd("delete", self._name("failed", ns, kid)),
        ]
        return (yield from self._write(commands))

    async def put_denied(self, ns: str, kid: str, status: int, fetched_at: float,
                         expires_in: float) -> bool:
        return await self.run(self.put_denied_op(ns, kid, status, fetched_at, expires_in))

    def put_denied_op(self, ns: str, kid: str, status: int, fetched_at: float,
                      expires_in: float) -> Op[bool]:
        entry_key = self._name("catalog", ns, kid)
        return (yield from self._write([
            _cmd("delete", entry_key),
            _cmd("hset", entry_key, mapping={"state": str(status), "digest": "",
                                             "fetched_at": repr(fetched_at)}),
            _cmd("pexpire", entry_key, _ms(expires_in)),
            _cmd("delete", self._name("failed", ns, kid)),
        ]))

    async def put_failure(self, ns: str, kid: str, failure: str, expires_in: float) -> bool:
        return await self.run(self.put_failure_op(ns, kid, failure, expires_in))

    def put_failure_op(self, ns: str, kid: str, failure: str, expires_in: float) -> Op[bool]:
        name = self._name("failed", ns, kid)
        return (yield from self._write([_cmd("set", name, failure[:200],
                                             px=_ms(expires_in))]))

    def _write(self, commands: list[_Command]) -> Op[bool]:
        """One transaction; with a shared secret it also puts the secret back if Redis lost
        it (restart without persistence, eviction, flush) and reads which one is current."""
        reassert = self.shared_secret and self._secret is not None
        if reassert:
            name = self.prefix + "secret"
            commands += [_cmd("set", name, self._secret, nx=True), _cmd("get", name),
                         _cmd("echo", _REASSERTED)]
        try:
            results = yield _Pipe(True, tuple(commands))
        except StoreUnavailable:
            return False
        if reassert and len(results) >= 2 and results[-1] == _REASSERTED:
            try:
                self._adopt_secret(results[-2])
            except StoreUnavailable:
                return False
        return True

    # -- running operations: one description, an async and a sync runner --------------------

    async def run(self, op: Op[T]) -> T:
        """Run one operation on the async client (each round trip through :meth:`_call`)."""
        done, pipe = resume(op)
        while not done:
            try:
                value, failed = await self._call(pipe), False
            except StoreUnavailable as error:
                value, failed = error, True
            done, pipe = resume(op, value, failed)
        return pipe

    def run_sync(self, op: Op[T]) -> T:
        """Run one operation on the blocking client (each round trip through
        :meth:`_call_sync`); safe from many threads at once."""
        done, pipe = resume(op)
        while not done:
            try:
                value, failed = self._call_sync(pipe), False
            except StoreUnavailable as error:
                value, failed = error, True
            done, pipe = resume(op, value, failed)
        return pipe

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """False from a failed Redis call until the next one that works."""
        return self._up

    def _attach(self, owner: object) -> None:
        self._owners.add(id(owner))

    async def _release(self, owner: object) -> None:
        self._owners.discard(id(owner))
        if not self._owners:
            await self.aclose()

    def _release_sync(self, owner: object) -> None:
        self._owners.discard(id(owner))
        if not self._owners:
            self.close()

    def close(self) -> None:
        """Close the blocking client's connections (a later call opens new ones)."""
        with self._guard:
            client, self._sync_client = self._sync_client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    async def aclose(self) -> None:
        """Close the connections (a later call opens new ones)."""
        self.close()
        client, self._client = self._client, None
        loop, self._loop = self._loop, None
        if client is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not loop:
            return  # that loop is gone; its sockets went with it
        try:
            close = getattr(client, "aclose", None) or client.close
            await close()
        except Exception:  # noqa: BLE001 - closing a broken connection is not news
            pass

    def __repr__(self) -> str:
        return (f"RedisCatalogStore({self._where!r}, prefix={self.prefix!r}, "
                f"secret={self.secret_source})")

    # -- every round trip goes through here --------------------------------------------------------

    async def _call(self, pipe: _Pipe) -> list[Any]:
        epoch = self._before()
        try:
            async with asyncio.timeout(self.timeout):
                async with self._connection().pipeline(transaction=pipe.transaction) as batch:
                    _queue(batch, pipe)
                    result = await batch.execute()
        except Exception as error:  # noqa: BLE001 - whatever Redis does, the request goes on
            self._failed(epoch, error)
            raise StoreUnavailable(type(error).__name__) from None
        self._succeeded(epoch)
        return result

    def _call_sync(self, pipe: _Pipe) -> list[Any]:
        epoch = self._before()
        try:  # bounded by the client's socket timeouts
            with self._sync_connection().pipeline(transaction=pipe.transaction) as batch:
                _queue(batch, pipe)
                result = batch.execute()
        except Exception as error:  # noqa: BLE001 - whatever Redis does, the request goes on
            self._failed(epoch, error)
            raise StoreUnavailable(type(error).__name__) from None
        self._succeeded(epoch)
        return result

    def _before(self) -> int:
        if not self._up and time.monotonic() < self._retry_at:
            raise StoreUnavailable("Redis failed recently")
        return self._epoch  # a call that began before the last up/down change cannot undo it

    def _failed(self, epoch: int, error: BaseException) -> None:
        with self._guard:
            if epoch == self._epoch:
                self._down(error)

    def _succeeded(self, epoch: int) -> None:
        if self._up:
            return
        with self._guard:
            if not self._up and epoch == self._epoch:
                self._up = True
                self._epoch += 1
                logger.info("modelguard: Redis at %s answers again; sharing catalogs resumed",
                            self._where)

    def _down(self, error: BaseException) -> None:
        self._retry_at = time.monotonic() + self.retry_interval
        if self._up:
            self._up = False
            self._epoch += 1
            detail = str(error).splitlines()[0][:160] if str(error) else ""
            logger.warning(
                "modelguard: Redis at %s failed (%s%s); catalogs are fetched by each replica "
                "on its own until it answers again", self._where, type(error).__name__,
                f": {detail}" if detail else "")

    def _connection(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = self._redis_class.from_url(
                self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout,
                retry=self._no_retry(),
            )
            self._loop = loop
        return self._client

    def _sync_connection(self) -> Any:
        client = self._sync_client
        if client is None:
            with self._guard:
                if self._sync_client is None:
                    self._sync_client = self._sync_redis_class.from_url(
                        self.url, socket_timeout=self.timeout,
                        socket_connect_timeout=self.timeout, retry=self._no_sync_retry(),
                    )
                client = self._sync_client
        return client

    def _name(self, kind: str, *parts: str) -> str:
        return f"{self.prefix}{kind}:{':'.join(parts)}"


def _queue(batch: Any, pipe: _Pipe) -> None:
    for name, args, kwargs in pipe.commands:
        getattr(batch, name)(*args, **kwargs)


# -- helpers -------------------------------------------------------------------------------------


def _hmac(secret: bytes, key: str) -> str:
    return hmac.new(secret, key.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def _configured_secret(secret: str | bytes | None) -> tuple[bytes | None, str]:
    source = "argument"
    if secret is None:
        secret = os.environ.get(SECRET_ENV)
        source = "environment"
        if secret is None:
            return None, "shared"
    value = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if len(value) < MIN_SECRET_BYTES:
        where = "secret=" if source == "argument" else SECRET_ENV
        raise ValueError(f"{where} is too short: use at least {MIN_SECRET_BYTES} random bytes "
                         "(e.g. python -c 'import secrets; print(secrets.token_hex(32))')")
    return value, source


def _parse_entry(fields: Any, expires_ms: Any) -> StoredEntry | None:
    if not fields or not isinstance(expires_ms, int) or expires_ms == -2:
        return None
    try:
        state = fields[b"state"].decode()
        fetched_at = float(fields[b"fetched_at"])
        digest = fields.get(b"digest", b"").decode()
    except (KeyError, ValueError, UnicodeDecodeError):
        return None
    if state not in ("ok", "401", "403") or not math.isfinite(fetched_at):
        return None
    if state == "ok" and len(digest) != 64:
        return None
    remaining = math.inf if expires_ms < 0 else expires_ms / 1000
    return StoredEntry(state, fetched_at, digest, remaining)


def _ms(seconds: float) -> int:
    if not seconds > 0:
        return 1
    return int(min(math.ceil(seconds * 1000), _MAX_EXPIRY_MS))


def _redacted(url: str) -> str:
    """The URL without credentials or query (for logs and reprs)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "redis"
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    return f"{parts.scheme}://{host}{port}{parts.path}"
