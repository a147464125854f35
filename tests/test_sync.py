"""Synchronous use: ``Guard.check_sync``, ``RemoteCatalog`` from threads (alone, next to async
callers, through Redis), and ``root_path`` on both checks. Against the real stand-in gateway
(uvicorn on 127.0.0.1) and, for the shared cache, a real ``redis-server``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from modelguard import Catalog, CatalogUnavailable, Guard, RedisCatalogStore, RemoteCatalog
from modelguard.catalog.store import SECRET_ENV

from .conftest import catalog_of, model_entry
from .gateway import ALICE, BOB, TEXT, VISION, FakeClock, Gateway, chat, two_callers
from .redis_server import REDIS_SERVER, RedisServer

CHAT = "/v1/chat/completions"


@pytest.fixture
def gateway() -> Iterator[tuple[Gateway, str]]:
    with two_callers() as served:
        yield served


def check(guard: Guard, key: str | None, body: bytes, target: str = CHAT):
    return guard.check_sync("POST", target, {"x-api-key": key} if key else {}, body)


def wait_idle(remote: RemoteCatalog) -> None:
    """Wait (bounded) until no background refresh runs."""
    deadline = time.monotonic() + 10
    while remote._tasks and time.monotonic() < deadline:  # noqa: SLF001
        time.sleep(0.01)
    assert not remote._tasks  # noqa: SLF001


# -- single flight across threads -----------------------------------------------------------------


def test_check_sync_from_ten_threads_with_a_new_key_makes_one_fetch(gateway) -> None:
    gw, url = gateway
    gw.set_models("*", VISION)
    gw.delay = 0.3  # the fetch is still in flight while every thread asks
    remote = RemoteCatalog(url)
    guard = Guard(remote)
    start = threading.Barrier(10)

    def one(_: int):
        start.wait(timeout=10)
        return check(guard, "sk-byts-brand-new", chat("vision-model", image=True))

    with ThreadPoolExecutor(10) as pool:
        verdicts = list(pool.map(one, range(10)))
    remote.close()
    assert all(v.allowed and v.guarded for v in verdicts)
    assert gw.hits["sk-byts-brand-new"] == 1
    assert remote.fetches == {"ok": 1}


async def test_threads_and_coroutines_share_one_fetch_and_one_cache(gateway) -> None:
    gw, url = gateway
    gw.delay = 0.3
    remote = RemoteCatalog(url)
    guard = Guard(remote)
    body = chat("vision-model", image=True)
    headers = {"x-api-key": ALICE}
    coroutines = [guard.check("POST", CHAT, headers, body) for _ in range(20)]
    threads = [asyncio.to_thread(guard.check_sync, "POST", CHAT, headers, body)
               for _ in range(5)]
    verdicts = await asyncio.gather(*coroutines, *threads)
    assert all(v.allowed for v in verdicts)
    assert gw.hits[ALICE] == 1
    # the sync side answers from what the async side fetched, and the other way round
    gw.delay = 0.0
    assert (await asyncio.to_thread(check, guard, BOB, chat("text-model"))).allowed
    assert (await guard.check("POST", CHAT, {"x-api-key": BOB}, chat("text-model"))).allowed
    await remote.aclose()
    assert gw.hits[BOB] == 1


# -- the rules of §7, from sync code ---------------------------------------------------------------


def test_sync_expiry_serves_stale_and_refreshes_once_in_the_background(gateway) -> None:
    gw, url = gateway
    clock = FakeClock()
    remote = RemoteCatalog(url, ttl=10, clock=clock)
    guard = Guard(remote)
    assert check(guard, ALICE, chat("vision-model", image=True)).allowed
    gw.set_models(ALICE, TEXT)  # vision-model withdrawn upstream
    clock.advance(11)
    gw.hold = threading.Event()
    gw.hold.set()  # the refresh stalls until released
    verdicts = [check(guard, ALICE, chat("vision-model", image=True)) for _ in range(20)]
    assert all(v.allowed for v in verdicts)  # served stale while the refresh waits
    gw.hold.clear()
    wait_idle(remote)
    refreshed = check(guard, ALICE, chat("vision-model", image=True))
    remote.close()
    assert gw.hits[ALICE] == 2
    assert refreshed.status == 400 and refreshed.reason == "unsupported_model"


def test_sync_revoked_key_is_refused_and_remembered(gateway) -> None:
    gw, url = gateway
    clock = FakeClock()
    remote = RemoteCatalog(url, negative_ttl=30, clock=clock)
    guard = Guard(remote)
    for _ in range(20):
        verdict = check(guard, "sk-byts-revoked", chat("text-model"))
        assert verdict.status == 401 and verdict.error["error"]["code"] == "invalid_api_key"
    assert gw.hits["sk-byts-revoked"] == 1
    clock.advance(31)
    check(guard, "sk-byts-revoked", chat("text-model"))
    remote.close()
    assert gw.hits["sk-byts-revoked"] == 2


def test_sync_outage_is_503_with_retry_after_then_recovers(gateway) -> None:
    gw, url = gateway
    clock = FakeClock()
    remote = RemoteCatalog(url, clock=clock, failure_backoff=2)
    guard = Guard(remote)
    gw.fault = "500"
    first = check(guard, ALICE, chat("text-model"), "/v1/messages")
    assert first.status == 503 and dict(first.headers)["retry-after"] == "2"
    assert first.error["error"]["type"] == "api_error"
    for _ in range(10):  # not hammered during the back-off
        assert check(guard, ALICE, chat("text-model")).status == 503
    assert gw.hits[ALICE] == 1
    gw.fault = None
    clock.advance(2)
    assert check(guard, ALICE, chat("text-model")).allowed
    remote.close()
    assert gw.hits[ALICE] == 2


def test_sync_new_model_triggers_one_early_refresh(gateway) -> None:
    gw, url = gateway
    clock = FakeClock()
    remote = RemoteCatalog(url, min_refresh_interval=30, clock=clock)
    guard = Guard(remote)
    assert not check(guard, BOB, chat("brand-new-model")).allowed
    clock.advance(31)
    gw.set_models(BOB, TEXT, model_entry("brand-new-model", set(), "openai"))
    assert check(guard, BOB, chat("brand-new-model")).allowed
    for _ in range(5):
        check(guard, BOB, chat("still-unknown"))
    remote.close()
    assert gw.hits[BOB] == 2


def test_sync_service_mode_uses_its_own_key(gateway) -> None:
    gw, url = gateway
    remote = RemoteCatalog(url, api_key=ALICE)
    guard = Guard(remote)
    assert check(guard, None, chat("vision-model", image=True)).allowed
    assert check(guard, BOB, chat("vision-model", image=True)).allowed
    assert remote.catalog_for_sync(None).get("vision-model") is not None
    remote.close()
    assert gw.hits == {ALICE: 1}


def test_sync_without_a_key_is_401_and_nothing_is_fetched(gateway) -> None:
    gw, url = gateway
    remote = RemoteCatalog(url)
    verdict = check(Guard(remote), None, chat("text-model"))
    remote.close()
    assert verdict.status == 401 and gw.total_hits() == 0
    with pytest.raises(CatalogUnavailable):
        remote.catalog_for_sync(None)


# -- Guard.check_sync semantics --------------------------------------------------------------------


def test_check_sync_gives_checks_verdicts(default_catalog: Catalog) -> None:
    guard = Guard(default_catalog)
    bodies = [
        ("/v1/messages", {"model": "claude-sonnet-4-6", "max_tokens": 100,
                          "messages": [{"role": "user", "content": "hi"}]}),
        ("/v1/messages", {"model": "claude-sonnet-4-6", "max_tokens": 10**6,
                          "messages": [{"role": "user", "content": "hi"}]}),
        ("/v1/chat/completions", {"model": "gpt-5.4", "messages": []}),
        ("/v1beta/models/nope:generateContent", {"contents": []}),
        ("/v1/files", {"anything": True}),
    ]
    for target, doc in bodies:
        body = json.dumps(doc).encode()
        sync = guard.check_sync("POST", target, {}, body)
        expected = asyncio.run(guard.check("POST", target, {}, body))
        assert (sync.allowed, sync.status, sync.body, sync.guarded, sync.reason) == (
            expected.allowed, expected.status, expected.body, expected.guarded, expected.reason)
    assert guard.check_sync("POST", "/v1/messages", {}, b"{not json").status == 400


def test_check_sync_calls_sync_and_async_hooks(default_catalog: Catalog) -> None:
    seen: list[str] = []

    async def async_hook(verdict) -> None:
        seen.append("async:" + verdict.reason)

    body = json.dumps({"model": "nope", "messages": []}).encode()
    Guard(default_catalog, on_violation=lambda v: seen.append("sync:" + v.reason)).check_sync(
        "POST", CHAT, {}, body)
    Guard(default_catalog, on_violation=async_hook).check_sync("POST", CHAT, {}, body)
    assert seen == ["sync:unsupported_model", "async:unsupported_model"]


def test_check_sync_runs_an_async_only_catalog_source() -> None:
    class OnlyAsync:
        needs_credential = False

        async def catalog_for(self, credential):
            await asyncio.sleep(0)
            return catalog_of(TEXT)

        async def refresh_for_unknown(self, credential):
            return None

    guard = Guard(OnlyAsync())
    assert guard.check_sync("POST", CHAT, {}, chat("text-model")).allowed
    assert guard.check_sync("POST", CHAT, {}, chat("other")).reason == "unsupported_model"


# -- root_path -------------------------------------------------------------------------------------


@pytest.mark.parametrize("sync", [False, True])
def test_root_path_on_both_checks(default_catalog: Catalog, sync: bool) -> None:
    guard = Guard(default_catalog)
    body = json.dumps({"model": "nope", "messages": []}).encode()

    def run(target: str, **kwargs):
        if sync:
            return guard.check_sync("POST", target, {}, body, **kwargs)
        return asyncio.run(guard.check("POST", target, {}, body, **kwargs))

    unguarded = run("/llm/v1/chat/completions")
    assert unguarded.allowed and not unguarded.guarded  # the prefix hides the route
    assert run("/llm/v1/chat/completions", root_path="/llm").reason == "unsupported_model"
    assert run("/llm/v1/chat/completions?x=1", root_path="/llm").status == 400
    assert run("/v1/chat/completions", root_path="/llm").status == 400  # mounted or not
    assert run("/other/v1/chat/completions", root_path="/llm").guarded is False
    # root_path=None: whatever the prefix, a path ending in a guarded route is guarded
    for target in ("/gw/v1/chat/completions", "/a/b/v1/messages", "/gw/openai/chat/completions",
                   "/x/v1beta/models/nope:generateContent", "/gw/%76%31/chat/completions",
                   "/gw//v1/./chat/completions/"):
        assert run(target, root_path=None).status == 400, target
    for target in ("/gw/v1/files", "/gw/v1/chat/completions/extra", "/gw/v1/models"):
        assert run(target, root_path=None).guarded is False, target


# -- through Redis ---------------------------------------------------------------------------------

redis_only = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not on PATH")


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not on PATH")
    server = RedisServer().start()
    try:
        yield server.url
    finally:
        server.close()


@redis_only
def test_sync_replicas_share_through_redis(gateway, redis_url, monkeypatch) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    with contextlib.closing(RedisServer.client_for(redis_url)) as client:
        client.flushall()
    gw, url = gateway
    gw.set_models("*", TEXT)
    gw.delay = 0.2
    replicas = [RemoteCatalog(url, store=RedisCatalogStore(redis_url)) for _ in range(3)]
    start = threading.Barrier(9)

    def one(index: int) -> bool:
        start.wait(timeout=10)
        return check(Guard(replicas[index % 3]), "sk-byts-shared", chat("text-model")).allowed

    with ThreadPoolExecutor(9) as pool:
        assert all(pool.map(one, range(9)))
    assert gw.hits["sk-byts-shared"] == 1  # one fetch across replicas and threads
    assert sum(r.shared.get("fetched", 0) for r in replicas) == 1
    assert sum(r.shared.get("hit", 0) for r in replicas) == 2
    # a refusal is shared too, and an async replica reads what sync ones wrote
    with gw.lock:
        gw.catalogs.pop("*")
    assert check(Guard(replicas[0]), "sk-byts-revoked", chat("text-model")).status == 401
    assert check(Guard(replicas[1]), "sk-byts-revoked", chat("text-model")).status == 401

    async def async_replica() -> tuple[int, int]:
        remote = RemoteCatalog(url, store=RedisCatalogStore(redis_url))
        guard = Guard(remote)
        ok = await guard.check("POST", CHAT, {"x-api-key": "sk-byts-shared"}, chat("text-model"))
        denied = await guard.check("POST", CHAT, {"x-api-key": "sk-byts-revoked"},
                                   chat("text-model"))
        await remote.aclose()
        return (200 if ok.allowed else ok.status), denied.status

    assert asyncio.run(async_replica()) == (200, 401)
    for remote in replicas:
        remote.close()
    assert gw.hits["sk-byts-shared"] == 1 and gw.hits["sk-byts-revoked"] == 1


@redis_only
def test_sync_fetches_alone_when_redis_is_down(gateway) -> None:
    gw, url = gateway
    dead = RedisServer()  # never started: nothing listens there
    try:
        store = RedisCatalogStore(dead.url, secret="x" * 32, timeout=0.2)
        remote = RemoteCatalog(url, store=store)
        assert check(Guard(remote), ALICE, chat("text-model")).allowed
        assert check(Guard(remote), ALICE, chat("text-model")).allowed  # cached locally
        remote.close()
    finally:
        dead.close()
    assert gw.hits[ALICE] == 1 and remote.shared == {"local": 1}


def test_one_catalog_outlives_event_loops_and_serves_threads_in_between(gateway) -> None:
    """asyncio.run twice (each loop gets its own connections), sync calls in between."""
    gw, url = gateway
    clock = FakeClock()
    remote = RemoteCatalog(url, ttl=10, clock=clock)
    guard = Guard(remote)

    async def once(key: str) -> bool:
        verdict = await guard.check("POST", CHAT, {"x-api-key": key}, chat("text-model"))
        for _ in range(500):  # let a background refresh finish on this loop (bounded)
            if not remote._tasks:  # noqa: SLF001
                break
            await asyncio.sleep(0.01)
        return verdict.allowed

    assert asyncio.run(once(ALICE))
    assert check(guard, BOB, chat("text-model")).allowed
    clock.advance(11)  # both expired: the next lookups fetch again, on a new loop and a thread
    assert asyncio.run(once(BOB))
    assert check(guard, ALICE, chat("text-model")).allowed
    wait_idle(remote)
    remote.close()
    assert gw.hits[ALICE] >= 1 and gw.hits[BOB] >= 1
    assert remote.fetches.get("error", 0) == 0 and remote.fetches.get("ok", 0) >= 3
