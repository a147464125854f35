"""RemoteCatalog against a real stand-in gateway (Starlette under uvicorn on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from collections.abc import Iterator

import httpx2
import pytest

from modelguard import CatalogUnavailable, Guard, ModelGuardMiddleware, RemoteCatalog
from modelguard.catalog.remote import RETRY_AFTER

from .conftest import model_entry
from .gateway import ALICE, BOB, TEXT, VISION, FakeClock, Gateway, chat, two_callers

SECRET = "sk-byts-SECRET-7f3a9c1e-do-not-leak"


@pytest.fixture
def gateway() -> Iterator[tuple[Gateway, str]]:
    with two_callers() as served:
        yield served


async def check(guard: Guard, body: bytes, headers: dict[str, str] | None = None,
                target: str = "/v1/chat/completions") -> object:
    return await guard.check("POST", target, headers or {}, body)


# -- scoping and credentials ----------------------------------------------------------------------


async def test_each_key_sees_its_own_catalog_end_to_end(gateway) -> None:
    gw, url = gateway
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["state"]["modelguard"].model_id)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    remote = RemoteCatalog(url)
    guarded = ModelGuardMiddleware(app, catalog=remote)
    transport = httpx2.ASGITransport(app=guarded)
    async with httpx2.AsyncClient(transport=transport, base_url="http://guarded") as client:
        ok = await client.post("/v1/chat/completions", content=chat("vision-model", image=True),
                               headers={"authorization": f"Bearer {ALICE}"})
        refused = await client.post("/v1/chat/completions", content=chat("vision-model"),
                                    headers={"authorization": f"Bearer {BOB}"})
        anonymous = await client.post("/v1/chat/completions", content=chat("text-model"))
    await remote.aclose()
    assert ok.status_code == 200 and seen == ["vision-model"]
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "unsupported_model"
    # Bob's catalog is the only one consulted: no suggestion may leak Alice's models
    assert "vision-model" not in refused.json()["error"]["message"].split("'vision-model'", 1)[1]
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "invalid_api_key"
    assert gw.hits[""] == 0  # no credential: no upstream request
    assert set(gw.auth_headers) == {f"Bearer {ALICE}", f"Bearer {BOB}"}


@pytest.mark.parametrize(("headers", "query", "winner"), [
    ({"x-api-key": ALICE, "authorization": f"Bearer {BOB}"}, "", ALICE),
    ({"authorization": f"Bearer {ALICE}", "x-goog-api-key": BOB}, "", ALICE),
    ({"x-goog-api-key": ALICE}, f"?key={BOB}", ALICE),
    ({}, f"?key={ALICE}", ALICE),
    ({"x-api-key": BOB, "x-goog-api-key": ALICE}, f"?key={ALICE}", BOB),
])
async def test_credential_precedence(gateway, headers, query, winner) -> None:
    _, url = gateway
    remote = RemoteCatalog(url)
    verdict = await check(Guard(remote), chat("vision-model"), headers,
                          "/v1/chat/completions" + query)
    await remote.aclose()
    assert verdict.allowed is (winner == ALICE)


async def test_service_mode_uses_its_own_key_for_everyone(gateway) -> None:
    gw, url = gateway
    remote = RemoteCatalog(url, api_key=ALICE)
    guard = Guard(remote)
    assert (await check(guard, chat("vision-model"), {"authorization": f"Bearer {BOB}"})).allowed
    assert (await check(guard, chat("vision-model"))).allowed  # caller's key not inspected
    await remote.aclose()
    assert gw.hits == {ALICE: 1}


# -- single flight, negative caching --------------------------------------------------------------


async def test_500_concurrent_requests_with_a_new_key_make_one_fetch(gateway) -> None:
    gw, url = gateway
    gw.set_models("*", VISION)
    gw.delay = 0.2
    remote = RemoteCatalog(url)
    guard = Guard(remote)
    headers = {"x-api-key": "sk-byts-brand-new"}
    verdicts = await asyncio.gather(*(check(guard, chat("vision-model"), headers)
                                      for _ in range(500)))
    await remote.aclose()
    assert all(v.allowed for v in verdicts)
    assert gw.hits["sk-byts-brand-new"] == 1


async def test_revoked_key_is_fetched_once_per_negative_ttl(gateway) -> None:
    gw, url = gateway
    clock = FakeClock()
    remote = RemoteCatalog(url, negative_ttl=30, clock=clock)
    guard = Guard(remote)
    headers = {"x-api-key": "sk-byts-revoked"}
    for _ in range(50):
        verdict = await check(guard, chat("text-model"), headers)
        assert verdict.status == 401 and verdict.error["error"]["code"] == "invalid_api_key"
    assert gw.hits["sk-byts-revoked"] == 1
    clock.advance(31)
    for _ in range(50):
        await check(guard, chat("text-model"), headers)
    await remote.aclose()
    assert gw.hits["sk-byts-revoked"] == 2


async def test_revocation_takes_effect_at_once_even_with_a_cached_catalog(gateway) -> None:
    gw, url = gateway
    clock = FakeClock()
    remote = RemoteCatalog(url, ttl=10, clock=clock)
    guard = Guard(remote)
    headers = {"x-api-key": ALICE}
    assert (await check(guard, chat("text-model"), headers)).allowed
    gw.fault = "403"
    clock.advance(11)
    await check(guard, chat("text-model"), headers)  # stale answer; the refresh is refused
    await _settle(remote)
    verdict = await check(guard, chat("text-model"), headers)
    await remote.aclose()
    assert verdict.status == 403
    assert verdict.error["error"]["code"] == "permission_denied"


# -- freshness ------------------------------------------------------------------------------------


async def _settle(remote: RemoteCatalog) -> None:
    """Wait (bounded) for background refreshes to finish."""
    for _ in range(400):
        if not remote._tasks:  # noqa: SLF001
            return
        await asyncio.sleep(0.01)
    raise AssertionError("background refresh did not finish")


async def test_expiry_refetches_once_in_the_background(gateway) -> None:
    gw, url = gateway
    clock = FakeClock()
    remote = RemoteCatalog(url, ttl=300, clock=clock)
    guard = Guard(remote)
    headers = {"x-api-key": ALICE}
    await check(guard, chat("text-model"), headers)
    clock.advance(299)
    await check(guard, chat("text-model"), headers)
    assert gw.hits[ALICE] == 1
    clock.advance(2)
    verdicts = await asyncio.gather(*(check(guard, chat("text-model"), headers)
                                      for _ in range(50)))
    await _settle(remote)
    await remote.aclose()
    assert all(v.allowed for v in verdicts)
    assert gw.hits[ALICE] == 2


async def test_slow_upstream_after_expiry_answers_from_the_stale_entry(gateway) -> None:
    gw, url = gateway
    clock = FakeClock()
    remote = RemoteCatalog(url, ttl=5, clock=clock)
    guard = Guard(remote)
    headers = {"x-api-key": ALICE}
    await check(guard, chat("vision-model", image=True), headers)
    gw.hold = threading.Event()
    gw.hold.set()  # the gateway now stalls until released
    clock.advance(6)
    verdicts = [await check(guard, chat("vision-model", image=True), headers) for _ in range(20)]
    assert all(v.allowed for v in verdicts)  # answered while the refresh is still stalled
    assert remote._tasks  # noqa: SLF001  (the one refresh is still waiting on the gateway)
    gw.hold.clear()
    await _settle(remote)
    await remote.aclose()
    assert gw.hits[ALICE] == 2


async def test_down_upstream_serves_stale_until_max_stale_then_503_then_recovers(gateway) -> None:
    gw, url = gateway
    clock = FakeClock()
    remote = RemoteCatalog(url, ttl=10, max_stale=100, clock=clock)
    guard = Guard(remote)
    headers = {"x-api-key": ALICE}
    assert (await check(guard, chat("text-model"), headers)).allowed
    gw.fault = "500"
    for step in (11, 30, 30, 30):  # up to 101 s old: expired, within max_stale
        clock.advance(step)
        assert (await check(guard, chat("text-model"), headers)).allowed
        await _settle(remote)
    clock.advance(20)  # 121 s: past ttl + max_stale
    verdict = await check(guard, chat("text-model"), headers)
    assert verdict.status == 503
    assert verdict.error["error"]["code"] == "catalog_unavailable"
    retry = dict(verdict.headers)["retry-after"]
    assert retry.isdigit() and 1 <= int(retry) <= RETRY_AFTER
    hits = gw.hits[ALICE]
    for _ in range(20):  # a down gateway is not hammered by every request
        assert (await check(guard, chat("text-model"), headers)).status == 503
    assert gw.hits[ALICE] == hits
    gw.fault = None
    clock.advance(RETRY_AFTER)
    assert (await check(guard, chat("text-model"), headers)).allowed
    await remote.aclose()


@pytest.mark.parametrize("fault", ["500", "429", "html", "truncated", "duplicate", "not_a_list",
                                   "huge"])
async def test_bad_refresh_is_never_applied(gateway, fault) -> None:
    gw, url = gateway
    clock = FakeClock()
    remote = RemoteCatalog(url, ttl=10, clock=clock)
    guard = Guard(remote)
    headers = {"x-api-key": ALICE}
    assert (await check(guard, chat("vision-model", image=True), headers)).allowed
    gw.fault = fault
    clock.advance(11)
    await check(guard, chat("vision-model"), headers)
    await _settle(remote)
    verdict = await check(guard, chat("vision-model", image=True), headers)
    await remote.aclose()
    assert verdict.allowed  # the last good catalog still applies, untouched
    assert gw.hits[ALICE] == 2
    assert sum(remote.fetches.values()) == 2 and remote.fetches["ok"] == 1


async def test_first_fetch_failing_is_503_with_retry_after(gateway) -> None:
    gw, url = gateway
    gw.fault = "html"
    remote = RemoteCatalog(url)
    verdict = await check(Guard(remote), chat("text-model"), {"x-api-key": ALICE},
                          "/v1beta/models/text-model:generateContent")
    await remote.aclose()
    assert verdict.status == 503
    error = verdict.error["error"]
    assert error["status"] == "UNAVAILABLE"
    assert error["details"][0]["reason"] == "CATALOG_UNAVAILABLE"
    assert "retry-after" in dict(verdict.headers)


async def test_model_launched_after_the_last_fetch_works_on_first_use(gateway) -> None:
    gw, url = gateway
    clock = FakeClock()
    remote = RemoteCatalog(url, min_refresh_interval=30, clock=clock)
    guard = Guard(remote)
    headers = {"x-api-key": BOB}
    assert not (await check(guard, chat("brand-new-model"), headers)).allowed
    assert gw.hits[BOB] == 1  # first fetch, within min_refresh_interval: no early refresh
    clock.advance(31)
    gw.set_models(BOB, TEXT, model_entry("brand-new-model", {"streaming"}, "openai"))
    assert (await check(guard, chat("brand-new-model"), headers)).allowed
    assert gw.hits[BOB] == 2
    for _ in range(10):  # unknown slugs cannot force a refresh per request
        await check(guard, chat("still-unknown"), headers)
    await remote.aclose()
    assert gw.hits[BOB] == 2


async def test_changes_between_refreshes_are_reported(gateway, caplog) -> None:
    gw, url = gateway
    clock = FakeClock()
    changes = []
    remote = RemoteCatalog(url, ttl=10, clock=clock, on_change=changes.append)
    guard = Guard(remote)
    headers = {"x-api-key": ALICE}
    await check(guard, chat("text-model"), headers)
    gw.set_models(ALICE, model_entry("text-model", {"streaming", "tool_use"}, "openai",
                                     max_output_tokens=4096),
                  model_entry("new-model", set(), "openai"))
    clock.advance(11)
    with caplog.at_level(logging.INFO, logger="modelguard"):
        await check(guard, chat("text-model"), headers)
        await _settle(remote)
    await remote.aclose()
    assert len(changes) == 1
    change = changes[0]
    assert (change.added, change.removed, change.changed) == (
        ("new-model",), ("vision-model",), ("text-model",))
    assert ALICE not in change.key_id
    assert any("new-model" in r.getMessage() and "vision-model" in r.getMessage()
               for r in caplog.records)


async def test_thousands_of_keys_stay_bounded(gateway) -> None:
    gw, url = gateway
    gw.set_models("*", TEXT)
    remote = RemoteCatalog(url, max_keys=100)
    guard = Guard(remote)
    for start in range(0, 1500, 100):
        await asyncio.gather(*(check(guard, chat("text-model"), {"x-api-key": f"sk-byts-k{i}"})
                               for i in range(start, start + 100)))
    assert len(remote._entries) == 100  # noqa: SLF001
    gc.collect()
    assert len(remote._interned) == 1  # noqa: SLF001  (identical catalogs are shared)
    await remote.aclose()
    assert gw.total_hits() == 1500


# -- lifespan, local listing ----------------------------------------------------------------------


async def _lifespan(app) -> list[dict]:
    sent: list[dict] = []
    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

    async def receive():
        return inbox.pop(0)

    async def send(message):
        sent.append(message)

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    return sent


async def _lifespan_app(scope, receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        else:
            await send({"type": "lifespan.shutdown.complete"})
            return


async def test_service_mode_fetches_at_startup(gateway) -> None:
    gw, url = gateway
    remote = RemoteCatalog(url, api_key=ALICE)
    sent = await _lifespan(ModelGuardMiddleware(_lifespan_app, catalog=remote))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert gw.hits[ALICE] == 1


async def test_service_mode_with_a_bad_key_fails_startup_clearly(gateway, caplog) -> None:
    _, url = gateway
    remote = RemoteCatalog(url, api_key=SECRET)
    with caplog.at_level(logging.DEBUG):
        sent = await _lifespan(ModelGuardMiddleware(_lifespan_app, catalog=remote))
    assert sent[0]["type"] == "lifespan.startup.failed"
    assert "401" in sent[0]["message"] and SECRET not in sent[0]["message"]
    assert any("verify the API key" in r.getMessage() for r in caplog.records)


async def test_serve_models_answers_from_the_cache_with_filters(gateway) -> None:
    gw, url = gateway
    remote = RemoteCatalog(url)

    async def app(scope, receive, send):  # pragma: no cover - must not be reached
        raise AssertionError("listing reached the app")

    guarded = ModelGuardMiddleware(app, catalog=remote, serve_models=True)
    transport = httpx2.ASGITransport(app=guarded)
    async with httpx2.AsyncClient(transport=transport, base_url="http://guarded") as client:
        auth = {"authorization": f"Bearer {ALICE}"}
        full = await client.get("/v1/models", headers=auth)
        vision = await client.get("/v1/models?capability=vision&capability=streaming",
                                  headers=auth)
        family = await client.get("/v1/models?family=OPENAI", headers=auth)
        none = await client.get("/v1/models?capability=vision&capability=tool_use", headers=auth)
        anonymous = await client.get("/v1/models")
    await remote.aclose()
    assert [m["id"] for m in full.json()["data"]] == ["vision-model", "text-model"]
    assert [m["id"] for m in vision.json()["data"]] == ["vision-model"]
    assert len(family.json()["data"]) == 2
    assert none.json() == {"object": "list", "data": []}
    assert anonymous.status_code == 401
    assert gw.hits[ALICE] == 1


# -- secrets --------------------------------------------------------------------------------------


async def test_a_key_never_leaks(gateway, caplog) -> None:
    gw, url = gateway
    clock = FakeClock()
    remote = RemoteCatalog(url, ttl=1, clock=clock)
    guard = Guard(remote)
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        for target, headers in [
            ("/v1/chat/completions", {"authorization": f"Bearer {SECRET}"}),
            (f"/v1beta/models/text-model:generateContent?key={SECRET}", {}),
            ("/v1/messages", {"x-api-key": SECRET}),
        ]:
            verdict = await check(guard, chat("text-model"), headers, target)
            texts += [verdict.body.decode(), repr(verdict), str(verdict.headers)]
        gw.fault = "500"
        clock.advance(100_000)
        verdict = await check(guard, chat("text-model"), {"x-api-key": SECRET})
        texts += [verdict.body.decode(), repr(verdict)]
        try:
            await remote.catalog_for(SECRET)
        except CatalogUnavailable as error:
            texts += [str(error), repr(error)]
        texts += [repr(remote), repr(guard), repr(remote._entries)]  # noqa: SLF001
        texts += list(remote._entries.keys())  # noqa: SLF001
    await remote.aclose()
    texts += [r.getMessage() for r in caplog.records] + [str(r.args) for r in caplog.records]
    assert gw.hits[SECRET] >= 1  # the key was really used
    assert all(SECRET not in text for text in texts)
    assert all("SECRET" not in text for text in texts)
