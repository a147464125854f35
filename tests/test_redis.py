"""The shared catalog cache on a real ``redis-server`` (started here on 127.0.0.1), with the
stand-in gateway, in one process (several RemoteCatalogs = several replicas) and in a fleet of
worker processes."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import select
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from modelguard import Guard, RedisCatalogStore, RemoteCatalog
from modelguard.catalog.remote import RETRY_AFTER
from modelguard.catalog.store import SECRET_ENV

from .conftest import model_entry
from .gateway import Gateway
from .redis_server import REDIS_SERVER, Fleet, RedisServer
from .upstream import serve

if REDIS_SERVER is None:
    pytest.skip("redis-server is not on PATH (Debian: apt-get install -y redis-server); the "
                "shared-cache tests need a real Redis", allow_module_level=True)

SECRET = "sk-byts-SECRET-5b1e0c77-never-in-redis"
ALICE, BOB = "sk-byts-alice-0001", "sk-byts-bob-0002"
VISION = model_entry("vision-model", {"vision", "streaming"}, "openai", max_output_tokens=4096)
TEXT = model_entry("text-model", {"streaming"}, "openai", max_output_tokens=4096)
KEY_SECRET = "a-test-secret-of-32-characters!!"
STORE_LOG = "modelguard.store"

# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def redis_url(redis_server: RedisServer, monkeypatch) -> str:
    with contextlib.closing(redis_server.client()) as client:
        client.flushall()
    monkeypatch.delenv(SECRET_ENV, raising=False)
    return redis_server.url


@pytest.fixture
def spare_redis() -> Iterator[RedisServer]:
    """A server of the test's own (not started): to kill, pause or start late."""
    server = RedisServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def gateway() -> Iterator[tuple[Gateway, str]]:
    gw = Gateway()
    for key in (ALICE, BOB, SECRET):
        gw.set_models(key, VISION, TEXT)
    with serve(gw.app()) as served:
        yield gw, served.url


def chat(model: str) -> bytes:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]}).encode()


async def status(remote: RemoteCatalog, key: str, model: str = "text-model") -> int:
    verdict = await Guard(remote).check("POST", "/v1/chat/completions", {"x-api-key": key},
                                        chat(model))
    return 200 if verdict.allowed else verdict.status


def store_logs(caplog) -> Counter[str]:
    return Counter(r.levelname for r in caplog.records if r.name == STORE_LOG
                   and ("failed (" in r.getMessage() or "resumed" in r.getMessage()))


async def settle(remote: RemoteCatalog) -> None:
    """Wait (bounded) for background refreshes to finish."""
    for _ in range(500):
        if not remote._tasks:  # noqa: SLF001
            return
        await asyncio.sleep(0.01)
    raise AssertionError("background refresh did not finish")


async def close(*remotes: RemoteCatalog) -> None:
    for remote in remotes:
        await remote.aclose()


# -- packaging ------------------------------------------------------------------------------------


def test_modelguard_imports_without_redis_and_names_the_extra() -> None:
    code = (
        "import sys\n"
        "import modelguard\n"
        "from modelguard import RedisCatalogStore\n"
        "assert 'redis' not in sys.modules, 'importing modelguard imported redis'\n"
        "sys.modules['redis'] = None\n"
        "try:\n"
        "    RedisCatalogStore('redis://127.0.0.1:1/0')\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert "modelguard-gateway[redis]" in out.stdout


# -- secrets and key ids --------------------------------------------------------------------------


async def test_argument_and_env_secret_give_one_key_id_and_share(gateway, redis_url,
                                                                 monkeypatch) -> None:
    gw, url = gateway
    by_argument = RedisCatalogStore(redis_url, secret=KEY_SECRET)
    one, two = RemoteCatalog(url, store=by_argument), RemoteCatalog(url, store=by_argument)
    assert one.key_id(ALICE) == two.key_id(ALICE)
    assert one.key_id(ALICE) == hmac.new(KEY_SECRET.encode(), ALICE.encode(),
                                         hashlib.sha256).hexdigest()
    monkeypatch.setenv(SECRET_ENV, KEY_SECRET)
    by_env = RedisCatalogStore(redis_url)
    assert by_env.secret_source == "environment" and not by_env.shared_secret
    replica = RemoteCatalog(url, store=by_env)
    assert replica.key_id(ALICE) == one.key_id(ALICE)
    assert RemoteCatalog(url).key_id(ALICE) != one.key_id(ALICE)  # no store: its own secret

    assert await status(one, ALICE) == 200
    assert await status(replica, ALICE, "vision-model") == 200
    await close(one, two, replica)
    assert gw.hits[ALICE] == 1
    assert one.shared == {"fetched": 1} and replica.shared == {"hit": 1}
    assert replica.fetches == {}
    with contextlib.closing(RedisServer.client_for(redis_url)) as client:
        assert client.get("modelguard:secret") is None  # nothing secret lives in Redis

    with pytest.raises(ValueError, match="too short"):
        RedisCatalogStore(redis_url, secret="short")


async def test_shared_secret_is_created_once_and_read_by_every_replica(gateway,
                                                                       redis_url) -> None:
    gw, url = gateway
    first, second = RedisCatalogStore(redis_url), RedisCatalogStore(redis_url)
    assert first.shared_secret and first.secret is None
    one, two = RemoteCatalog(url, store=first), RemoteCatalog(url, store=second)
    await one.startup()
    await two.startup()
    assert one.key_id(BOB) == two.key_id(BOB)
    with contextlib.closing(RedisServer.client_for(redis_url)) as client:
        stored = client.get("modelguard:secret")
    assert stored == first.secret == second.secret and len(stored) >= 32
    # ...which is why it is weaker: whoever reads Redis can test a guessed key against the ids
    assert one.key_id(BOB) == hmac.new(stored, BOB.encode(), hashlib.sha256).hexdigest()

    assert await status(one, BOB) == 200
    assert await status(two, BOB) == 200
    await close(one, two)
    assert gw.hits[BOB] == 1


async def test_replicas_converge_on_one_secret_after_redis_loses_it(gateway, redis_url,
                                                                    redis_server) -> None:
    gw, url = gateway
    old = RemoteCatalog(url, store=RedisCatalogStore(redis_url))
    await old.startup()
    with contextlib.closing(redis_server.client()) as client:
        client.flushall()  # a restart without persistence
    new = RemoteCatalog(url, store=RedisCatalogStore(redis_url))
    await new.startup()  # creates another secret
    assert old.key_id(ALICE) != new.key_id(ALICE)
    assert await status(old, ALICE) == 200  # its write reads the current secret back
    assert await status(new, ALICE) == 200
    assert old.key_id(BOB) == new.key_id(BOB)
    assert await status(old, BOB) == 200
    assert await status(new, BOB) == 200
    await close(old, new)
    assert gw.hits[BOB] == 1  # sharing again


async def test_a_late_secret_still_finds_the_first_entry(gateway, redis_url) -> None:
    """Without startup(), the shared secret arrives with the first miss: no double fetch."""
    gw, url = gateway
    one = RemoteCatalog(url, store=RedisCatalogStore(redis_url))
    assert await status(one, ALICE) == 200
    assert await status(one, ALICE, "vision-model") == 200
    await close(one)
    assert gw.hits[ALICE] == 1


# -- the lock -------------------------------------------------------------------------------------


async def test_lock_is_exclusive_expires_and_is_released_only_by_its_owner(redis_url) -> None:
    store = RedisCatalogStore(redis_url, secret=KEY_SECRET)
    token = await store.lock("ns", "kid", 5)
    assert token is not None
    assert await store.lock("ns", "kid", 5) is None
    with contextlib.closing(RedisServer.client_for(redis_url)) as client:
        assert 0 < client.pttl("modelguard:lock:ns:kid") <= 5000
        await store.unlock("ns", "kid", "not-the-owner")
        assert client.get("modelguard:lock:ns:kid") == token.encode()
        await store.unlock("ns", "kid", token)
        assert client.exists("modelguard:lock:ns:kid") == 0
    await store.aclose()


# -- what is shared -------------------------------------------------------------------------------


async def test_a_fresh_local_entry_never_touches_redis(gateway, redis_url) -> None:
    _, url = gateway
    store = RedisCatalogStore(redis_url, secret=KEY_SECRET)
    remote = RemoteCatalog(url, store=store)
    calls = 0
    real = store._call  # noqa: SLF001

    async def counted(op):
        nonlocal calls
        calls += 1
        return await real(op)

    store._call = counted  # noqa: SLF001
    assert await status(remote, ALICE) == 200
    before = calls
    assert before > 0
    for _ in range(100):
        assert await status(remote, ALICE) == 200
    await close(remote)
    assert calls == before


async def test_refusals_are_shared_for_negative_ttl(gateway, redis_url) -> None:
    gw, url = gateway
    revoked = "sk-byts-revoked-9"
    one = RemoteCatalog(url, negative_ttl=30, store=RedisCatalogStore(redis_url))
    two = RemoteCatalog(url, negative_ttl=30, store=RedisCatalogStore(redis_url))
    assert await status(one, revoked) == 401
    assert await status(two, revoked) == 401
    gw.fault = "403"
    assert await status(two, BOB) == 403
    assert await status(one, BOB) == 403
    await close(one, two)
    assert gw.hits[revoked] == 1 and gw.hits[BOB] == 1
    assert two.shared["denied"] == 1 and one.shared["denied"] == 1
    with contextlib.closing(RedisServer.client_for(redis_url)) as client:
        names = [n for n in client.scan_iter("modelguard:catalog:*")]
        states = sorted(client.hget(n, "state") for n in names)
        assert states == [b"401", b"403"]
        assert all(0 < client.pttl(n) <= 30_000 for n in names)


async def test_a_new_replica_gets_the_stale_copy_when_the_gateway_fails(gateway,
                                                                       redis_url) -> None:
    gw, url = gateway
    settings = {"ttl": 0.3, "max_stale": 60}
    first = RemoteCatalog(url, store=RedisCatalogStore(redis_url), **settings)
    assert await status(first, ALICE) == 200
    await asyncio.sleep(0.4)  # the shared entry is now stale
    gw.fault = "500"
    second = RemoteCatalog(url, store=RedisCatalogStore(redis_url), **settings)
    third = RemoteCatalog(url, store=RedisCatalogStore(redis_url), **settings)
    assert await status(second, ALICE) == 200  # tried the gateway once, served the stale copy
    assert await status(third, ALICE) == 200   # saw that failure: no second try
    assert await status(third, ALICE, "vision-model") == 200
    await close(first, second, third)
    assert gw.hits[ALICE] == 2
    assert second.shared == {"fetched": 1} and third.shared == {"failed": 1}
    with contextlib.closing(RedisServer.client_for(redis_url)) as client:
        failed = list(client.scan_iter("modelguard:failed:*"))
        assert len(failed) == 1 and 0 < client.pttl(failed[0]) <= RETRY_AFTER * 1000


async def test_an_unknown_model_refresh_is_shared(gateway, redis_url) -> None:
    gw, url = gateway
    settings = {"ttl": 300, "min_refresh_interval": 1.0}
    one = RemoteCatalog(url, store=RedisCatalogStore(redis_url), **settings)
    two = RemoteCatalog(url, store=RedisCatalogStore(redis_url), **settings)
    assert await status(one, BOB) == 200 and await status(two, BOB) == 200
    gw.set_models(BOB, TEXT, model_entry("launched-model", set(), "openai"))
    await asyncio.sleep(1.1)  # min_refresh_interval since the last fetch
    assert await status(one, BOB, "launched-model") == 200  # early refresh, shared
    assert await status(two, BOB, "launched-model") == 200  # read it: no second fetch
    await close(one, two)
    assert gw.hits[BOB] == 2


async def test_two_gateways_never_share_an_entry(redis_url) -> None:
    gw_a, gw_b = Gateway(), Gateway()
    gw_a.set_models(ALICE, TEXT)
    gw_b.set_models(ALICE, VISION)
    store = RedisCatalogStore(redis_url, secret=KEY_SECRET)
    with serve(gw_a.app()) as a, serve(gw_b.app()) as b:
        remote_a, remote_b = RemoteCatalog(a.url, store=store), RemoteCatalog(b.url, store=store)
        assert await status(remote_a, ALICE) == 200
        assert await status(remote_b, ALICE) == 400  # B's catalog has no text-model
        assert await status(remote_b, ALICE, "vision-model") == 200
        await close(remote_a, remote_b)
    assert gw_a.hits[ALICE] == 1 and gw_b.hits[ALICE] == 1


async def test_no_command_sent_to_redis_carries_a_raw_key(gateway, redis_url,
                                                          redis_server) -> None:
    """MONITOR sees every command: ok, refused, failed and stale paths, both secret kinds."""
    cli = shutil.which("redis-cli")
    if cli is None:
        pytest.skip("redis-cli is not on PATH")
    gw, url = gateway
    with subprocess.Popen([cli, "-h", "127.0.0.1", "-p", str(redis_server.port), "monitor"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as monitor:
        try:
            assert monitor.stdout is not None
            ready, _, _ = select.select([monitor.stdout], [], [], 10)
            assert ready and monitor.stdout.readline().strip() == b"OK"
            for secret in (None, KEY_SECRET):
                remotes = [RemoteCatalog(url, ttl=0.2, negative_ttl=0.2,
                                         store=RedisCatalogStore(redis_url, secret=secret))
                           for _ in range(2)]
                gw.fault = None
                for remote in remotes:
                    assert await status(remote, SECRET) == 200
                    assert await status(remote, f"{SECRET}-revoked") == 401
                await asyncio.sleep(0.3)
                gw.fault = "500"
                for remote in remotes:
                    assert await status(remote, SECRET) == 200
                    await settle(remote)  # the refresh failed, and said so in Redis
                await close(*remotes)
            with contextlib.closing(RedisServer.client_for(redis_url)) as client:
                client.echo("end-of-test")  # the last command: read the monitor up to it
            seen = b""
            deadline = time.monotonic() + 10
            while b"end-of-test" not in seen and time.monotonic() < deadline:
                ready, _, _ = select.select([monitor.stdout], [], [], 0.5)
                if ready:
                    seen += os.read(monitor.stdout.fileno(), 1 << 16)
        finally:
            monitor.terminate()
            monitor.communicate(timeout=10)
    assert b"end-of-test" in seen and b'"HSET"' in seen.upper()
    assert SECRET.encode() not in seen
    assert b"sk-byts" not in seen


# -- Redis trouble never fails a request ----------------------------------------------------------


async def test_redis_down_at_start_then_back(gateway, spare_redis, caplog) -> None:
    gw, url = gateway
    options = {"timeout": 0.2, "retry_interval": 0.2}
    one = RemoteCatalog(url, store=RedisCatalogStore(spare_redis.url, **options))
    two = RemoteCatalog(url, store=RedisCatalogStore(spare_redis.url, **options))
    with caplog.at_level(logging.INFO, logger="modelguard"):
        await one.startup()  # logged, not fatal
        for _ in range(20):
            assert await status(one, ALICE) == 200
            assert await status(two, ALICE) == 200
        assert gw.hits[ALICE] == 2  # each replica fetched on its own
        assert one.shared == {"local": 1}
        spare_redis.start()
        await asyncio.sleep(0.3)  # past retry_interval
        assert await status(one, BOB) == 200
        assert await status(two, BOB) == 200
    await close(one, two)
    assert gw.hits[BOB] == 1  # sharing resumed
    assert store_logs(caplog) == {"WARNING": 2, "INFO": 2}  # once per replica, each way


async def test_hung_redis_times_out_and_sharing_resumes(gateway, spare_redis, caplog) -> None:
    gw, url = gateway
    spare_redis.start()
    options = {"secret": KEY_SECRET, "timeout": 0.2, "retry_interval": 0.2}
    one = RemoteCatalog(url, store=RedisCatalogStore(spare_redis.url, **options))
    two = RemoteCatalog(url, store=RedisCatalogStore(spare_redis.url, **options))
    with caplog.at_level(logging.INFO, logger="modelguard"):
        assert await status(one, ALICE) == 200
        assert await status(two, ALICE) == 200
        spare_redis.pause()
        try:
            results = await asyncio.gather(*(status(r, BOB) for r in (one, two)
                                             for _ in range(50)))
            results += await asyncio.gather(*(status(r, SECRET) for r in (one, two)))
        finally:
            spare_redis.resume()
        assert set(results) == {200}
        await asyncio.sleep(0.3)
        gw.set_models("sk-byts-carol", TEXT)
        assert await status(one, "sk-byts-carol") == 200
        assert await status(two, "sk-byts-carol") == 200
    await close(one, two)
    assert gw.hits[ALICE] == 1 and gw.hits[BOB] == 2 and gw.hits["sk-byts-carol"] == 1
    assert store_logs(caplog) == {"WARNING": 2, "INFO": 2}


# -- a fleet of worker processes ------------------------------------------------------------------

FLEET_TTL = 2.0
FLEET_REMOTE = {"ttl": FLEET_TTL, "max_stale": 60, "negative_ttl": 30, "timeout": 5}
FLEET_STORE = {"timeout": 0.3, "retry_interval": 0.5}
FLEET_KEYS: list[str] = []


@pytest.fixture(scope="module")
def fleet() -> Iterator[tuple[Fleet, Gateway, RedisServer]]:
    gw = Gateway()
    server = RedisServer().start()
    try:
        with serve(gw.app()) as served:
            workers = Fleet(4, served.url, server.url, remote=FLEET_REMOTE, store=FLEET_STORE)
            try:
                yield workers, gw, server
            finally:
                workers.close()
    finally:
        server.close()


def fleet_key(name: str) -> str:
    key = f"sk-byts-fleet-{name}-{len(FLEET_KEYS)}"
    FLEET_KEYS.append(key)
    return key


def test_fleet_brand_new_key_costs_one_fetch(fleet) -> None:
    workers, gw, _ = fleet
    key = fleet_key("new")
    gw.set_models(key, VISION, TEXT)
    gw.delay = 0.3  # the fetch is in flight while every worker asks
    try:
        answers = workers.call("burst", key, "vision-model", 200)
    finally:
        gw.delay = 0.0
    assert answers == [{200: 200}] * 4
    assert gw.hits[key] == 1
    counters = workers.call("counters")
    assert sum(c["shared"].get("fetched", 0) for c in counters) == 1
    assert len(set(workers.call("key_id", key))) == 1  # one key id across processes


def test_fleet_refreshes_once_after_expiry_and_a_removed_model_goes_everywhere(fleet) -> None:
    workers, gw, _ = fleet
    key = fleet_key("expiry")
    gw.set_models(key, VISION, TEXT)
    assert workers.call("burst", key, "vision-model", 20) == [{200: 20}] * 4
    assert gw.hits[key] == 1
    gw.set_models(key, TEXT)  # vision-model is withdrawn upstream
    time.sleep(FLEET_TTL + 0.3)  # every worker's entry is now stale
    workers.call("burst", key, "text-model", 5)  # stale answers, background refreshes
    workers.call("settle")
    assert gw.hits[key] == 2  # one refresh across the fleet
    assert workers.call("burst", key, "vision-model", 5) == [{400: 5}] * 4
    assert workers.call("burst", key, "text-model", 5) == [{200: 5}] * 4
    assert gw.hits[key] == 2


def test_fleet_shares_a_refusal(fleet) -> None:
    workers, gw, _ = fleet
    key = fleet_key("revoked")  # unknown to the gateway: 401
    assert workers.call("burst", key, "text-model", 50) == [{401: 50}] * 4
    assert gw.hits[key] == 1


def test_fleet_writes_no_raw_key_to_redis(fleet) -> None:
    workers, gw, server = fleet
    key = fleet_key("scan")
    gw.set_models(key, TEXT)
    workers.call("burst", key, "text-model", 10)
    dump = server.dump()
    names = {name.split(b":")[1] for name in dump}
    assert names <= {b"secret", b"catalog", b"payload"}  # no lock, no failure left over
    blob = repr(dump).encode()
    assert FLEET_KEYS and all(k.encode() not in blob for k in FLEET_KEYS)
    assert b"sk-byts" not in blob
    with contextlib.closing(server.client()) as client:
        for name, value in dump.items():
            if name.startswith(b"modelguard:catalog:"):
                limit = (60 + FLEET_TTL) if value[b"state"] == b"ok" else 30
                assert 0 < client.pttl(name) <= limit * 1000
                if value[b"state"] == b"ok":
                    assert dump[b"modelguard:payload:" + value[b"digest"]]
            elif name.startswith(b"modelguard:payload:"):
                assert client.pttl(name) > 0
            else:
                assert name == b"modelguard:secret" and client.pttl(name) == -1


def test_fleet_survives_redis_killed_mid_run_and_resumes_sharing(fleet) -> None:
    workers, gw, server = fleet
    gw.set_models("*", TEXT)  # every key from here on is valid
    try:
        workers.send("run_for", 1.5, fleet_key("outage"), "text-model")
        time.sleep(0.5)
        server.kill()
        runs = workers.collect()
        for run in runs:
            assert set(run["statuses"]) == {200}  # no failed request
        counters = workers.call("counters")
        assert all(c["shared"].get("local", 0) > 0 for c in counters)  # fetched on their own
        server.start()  # same port, empty (no persistence): the secret is gone too
        time.sleep(FLEET_STORE["retry_interval"] + 0.3)
        key = fleet_key("after")
        assert workers.call("burst", key, "text-model", 50) == [{200: 50}] * 4
        assert gw.hits[key] == 1  # sharing resumed
        assert len(set(workers.call("key_id", key))) == 1
        with contextlib.closing(server.client()) as client:
            assert client.exists("modelguard:secret")  # re-created by the first write
    finally:
        with gw.lock:
            gw.catalogs.pop("*", None)
    for records in workers.call("logs"):
        levels = Counter(level for name, level, message in records if name == STORE_LOG
                         and ("failed (" in message or "resumed" in message))
        assert levels == {"WARNING": 1, "INFO": 1}  # once each way, not once per request
