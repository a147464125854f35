"""The guard inside the client, side by side in one run (ratios, never asserted).

- one SDK-shaped request through ``httpx2.Client`` to a loopback stand-in, without and with
  ``GuardTransport`` (sync) and ``AsyncGuardTransport`` (async), catalog fetched once;
- the same with an in-process upstream (``httpx2.MockTransport``): the guard's own cost
  without the network;
- ``await Guard.check`` next to ``Guard.check_sync`` with a warm ``RemoteCatalog``.

Usage: ``python benchmarks/client.py [--requests N]`` (from the project root).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx2  # noqa: E402

from modelguard import AsyncGuardTransport, Guard, GuardTransport, RemoteCatalog  # noqa: E402
from tests.conftest import model_entry  # noqa: E402
from tests.upstream import StandIn, serve  # noqa: E402

CATALOG = {"object": "list", "data": [model_entry("text-model", {"streaming"}, "openai")]}
BODY = json.dumps({"model": "text-model", "messages": [{"role": "user", "content": "hi"}]})
HEADERS = {"authorization": "Bearer sk-bench", "content-type": "application/json"}
ROUNDS = 3


def best(samples: list[float]) -> float:
    return min(samples)


def sync_requests(url: str, client: httpx2.Client, count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        client.post(url + "/v1/chat/completions", content=BODY, headers=HEADERS).read()
    return (time.perf_counter() - start) / count


async def async_requests(url: str, client: httpx2.AsyncClient, count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        response = await client.post(url + "/v1/chat/completions", content=BODY,
                                     headers=HEADERS)
        await response.aread()
    return (time.perf_counter() - start) / count


async def checks(guard: Guard, count: int) -> tuple[float, float]:
    body = BODY.encode()
    start = time.perf_counter()
    for _ in range(count):
        await guard.check("POST", "/v1/chat/completions", HEADERS, body)
    async_time = (time.perf_counter() - start) / count
    start = time.perf_counter()
    for _ in range(count):
        guard.check_sync("POST", "/v1/chat/completions", HEADERS, body)
    return async_time, (time.perf_counter() - start) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    count = max(1, min(parser.parse_args().requests, 20_000))
    rows: dict[str, list[float]] = {}
    with serve(StandIn(models=CATALOG).app) as server:
        url = server.url
        remote = RemoteCatalog(url)
        with httpx2.Client() as plain, \
                httpx2.Client(transport=GuardTransport(remote)) as guarded:
            for client in (plain, guarded):
                sync_requests(url, client, 10)  # warm: connections, the catalog
            for _ in range(ROUNDS):
                rows.setdefault("sync: httpx2.Client", []).append(
                    sync_requests(url, plain, count))
                rows.setdefault("sync: + GuardTransport", []).append(
                    sync_requests(url, guarded, count))
        inner = httpx2.MockTransport(lambda request: httpx2.Response(200, content=b"{}"))
        with httpx2.Client(transport=inner) as plain, \
                httpx2.Client(transport=GuardTransport(remote, transport=inner)) as guarded:
            for _ in range(ROUNDS):
                rows.setdefault("in-process: MockTransport", []).append(
                    sync_requests(url, plain, count * 10))
                rows.setdefault("in-process: + GuardTransport", []).append(
                    sync_requests(url, guarded, count * 10))

        async def run_async() -> None:
            async with httpx2.AsyncClient() as plain, \
                    httpx2.AsyncClient(transport=AsyncGuardTransport(remote)) as guarded:
                for client in (plain, guarded):
                    await async_requests(url, client, 10)
                for _ in range(ROUNDS):
                    rows.setdefault("async: httpx2.AsyncClient", []).append(
                        await async_requests(url, plain, count))
                    rows.setdefault("async: + AsyncGuardTransport", []).append(
                        await async_requests(url, guarded, count))
                guard = Guard(remote)
                for _ in range(ROUNDS):
                    a, s = await checks(guard, count * 10)
                    rows.setdefault("await Guard.check", []).append(a)
                    rows.setdefault("Guard.check_sync", []).append(s)
            await remote.aclose()

        asyncio.run(run_async())
    pairs = [("sync: httpx2.Client", "sync: + GuardTransport"),
             ("async: httpx2.AsyncClient", "async: + AsyncGuardTransport"),
             ("in-process: MockTransport", "in-process: + GuardTransport"),
             ("await Guard.check", "Guard.check_sync")]
    print(f"{count} requests per round, best of {ROUNDS} rounds (loopback, 127.0.0.1)")
    for base, other in pairs:
        b, o = best(rows[base]), best(rows[other])
        print(f"  {base:30s} {b * 1e6:9.1f} us   {other:30s} {o * 1e6:9.1f} us   "
              f"ratio {o / b:5.2f}")


if __name__ == "__main__":
    main()
