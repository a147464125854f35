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
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

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
        ConnectionPool.from_url(url)  # a bad URL fails here, not on a request
        self.url = url
        self.prefix = prefix
        self.timeout = timeout
        self.retry_interval = retry_interval
        self._where = _redacted(url)
        self._secret, self.secret_source = _configured_secret(secret)
        self._client: Any = None
        self._unlock: Any = None
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
        if self._secret is None:
            await self._load_shared_secret()
        assert self._secret is not None
        return self._secret

    def key_id(self, key: str) -> str:
        """HMAC-SHA256 of a key under the store's secret (hex); needs :meth:`ensure_secret`."""
        if self._secret is None:
            raise StoreUnavailable("the shared secret has not been read from Redis yet")
        return _hmac(self._secret, key)

    async def _load_shared_secret(self) -> None:
        name = self.prefix + "secret"
        candidate = secrets.token_hex(32).encode()

        async def op(client: Any) -> Any:
            async with client.pipeline(transaction=True) as pipe:
                pipe.set(name, candidate, nx=True)
                pipe.get(name)
                return await pipe.execute()

        created, value = await self._call(op)
        self._adopt_secret(value, created=bool(created))

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
        entry_key, failed_key = self._name("catalog", ns, kid), self._name("failed", ns, kid)

        async def op(client: Any) -> Any:
            async with client.pipeline(transaction=False) as pipe:
                pipe.hgetall(entry_key)
                pipe.pttl(entry_key)
                pipe.get(failed_key)
                pipe.pttl(failed_key)
                return await pipe.execute()

        fields, entry_ms, failure, failure_ms = await self._call(op)
        entry = _parse_entry(fields, entry_ms)
        text = failure.decode("utf-8", "replace") if isinstance(failure, bytes) else None
        return StoredState(entry, text, max(0, failure_ms or 0) / 1000)

    async def payload(self, digest: str) -> bytes | None:
        value = await self._call(lambda client: client.get(self._name("payload", digest)))
        return value if isinstance(value, bytes) else None

    # -- the refresh lock ------------------------------------------------------------------------

    async def lock(self, ns: str, kid: str, seconds: float) -> str | None:
        """A token if this caller now holds the key id's refresh lock, else None."""
        token = secrets.token_hex(16)
        name = self._name("lock", ns, kid)
        got = await self._call(lambda client: client.set(name, token, nx=True,
                                                          px=_ms(seconds)))
        return token if got else None

    async def unlock(self, ns: str, kid: str, token: str) -> None:
        """Release the lock if this token still holds it; never raises (it expires anyway)."""
        name = self._name("lock", ns, kid)
        with contextlib.suppress(StoreUnavailable):
            await self._call(lambda client: self._unlock(keys=[name], args=[token],
                                                         client=client))

    # -- writing (never raises: a write that fails only means the next replica fetches) -----

    async def put_catalog(self, ns: str, kid: str, digest: str, raw: bytes,
                          fetched_at: float, expires_in: float) -> bool:
        entry_key, payload_key = self._name("catalog", ns, kid), self._name("payload", digest)
        ms = _ms(expires_in)

        async def op(client: Any) -> Any:
            have_payload = await client.pexpire(payload_key, ms)
            async with client.pipeline(transaction=True) as pipe:
                if not have_payload:
                    pipe.set(payload_key, raw, px=ms)
                pipe.delete(entry_key)
                pipe.hset(entry_key, mapping={"state": "ok", "digest": digest,
                                              "fetched_at": repr(fetched_at)})
                pipe.pexpire(entry_key, ms)
                pipe.delete(self._name("failed", ns, kid))
                self._reassert_secret(pipe)
                return await pipe.execute()

        return await self._write(op)

    async def put_denied(self, ns: str, kid: str, status: int, fetched_at: float,
                         expires_in: float) -> bool:
        entry_key = self._name("catalog", ns, kid)

        async def op(client: Any) -> Any:
            async with client.pipeline(transaction=True) as pipe:
                pipe.delete(entry_key)
                pipe.hset(entry_key, mapping={"state": str(status), "digest": "",
                                              "fetched_at": repr(fetched_at)})
                pipe.pexpire(entry_key, _ms(expires_in))
                pipe.delete(self._name("failed", ns, kid))
                self._reassert_secret(pipe)
                return await pipe.execute()

        return await self._write(op)

    async def put_failure(self, ns: str, kid: str, failure: str, expires_in: float) -> bool:
        name = self._name("failed", ns, kid)

        async def op(client: Any) -> Any:
            async with client.pipeline(transaction=True) as pipe:
                pipe.set(name, failure[:200], px=_ms(expires_in))
                self._reassert_secret(pipe)
                return await pipe.execute()

        return await self._write(op)

    def _reassert_secret(self, pipe: Any) -> None:
        """With a shared secret, every write also puts it back if Redis lost it (restart
        without persistence, eviction, flush) and reads which one is current."""
        if self.shared_secret and self._secret is not None:
            name = self.prefix + "secret"
            pipe.set(name, self._secret, nx=True)
            pipe.get(name)
            pipe.echo(_REASSERTED)

    async def _write(self, op: Callable[[Any], Awaitable[Any]]) -> bool:
        try:
            results = await self._call(op)
        except StoreUnavailable:
            return False
        if len(results) >= 2 and results[-1] == _REASSERTED:
            try:
                self._adopt_secret(results[-2])
            except StoreUnavailable:
                return False
        return True

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

    async def aclose(self) -> None:
        """Close the connections (a later call opens new ones)."""
        client, self._client, self._unlock = self._client, None, None
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

    # -- every call goes through here ------------------------------------------------------------

    async def _call(self, op: Callable[[Any], Awaitable[T]]) -> T:
        if not self._up and time.monotonic() < self._retry_at:
            raise StoreUnavailable("Redis failed recently")
        epoch = self._epoch  # a call that began before the last up/down change cannot undo it
        try:
            async with asyncio.timeout(self.timeout):
                result = await op(self._connection())
        except Exception as error:  # noqa: BLE001 - whatever Redis does, the request goes on
            if epoch == self._epoch:
                self._down(error)
            raise StoreUnavailable(type(error).__name__) from None
        if not self._up and epoch == self._epoch:
            self._up = True
            self._epoch += 1
            logger.info("modelguard: Redis at %s answers again; sharing catalogs resumed",
                        self._where)
        return result

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
            self._unlock = self._client.register_script(_UNLOCK)
            self._loop = loop
        return self._client

    def _name(self, kind: str, *parts: str) -> str:
        return f"{self.prefix}{kind}:{':'.join(parts)}"


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
