"""A bounded soak: many concurrent clients, mixed traffic, while the catalog gateway flaps.

Through real uvicorn servers on 127.0.0.1: the stand-in gateway serves the catalog and is
switched between healthy, slow and failing; the guarded app records a digest of every body it
receives. Checked: no 5xx, every allowed request delivered intact, every verdict the one the
catalog in force implies, memory flat after warm-up. ``MODELGUARD_SOAK_REQUESTS`` sets the
size (default 4000; the README's figures come from 20000).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import hashlib
import json
import os
import random
import threading
import time
from collections import Counter
from pathlib import Path

import httpx2

from modelguard import ModelGuardMiddleware, RemoteCatalog

from .conftest import model_entry
from .gateway import Gateway
from .upstream import serve

KEY = "sk-byts-soak-key"
REQUESTS = int(os.environ.get("MODELGUARD_SOAK_REQUESTS", "4000"))
CLIENTS = 32
DEADLINE = float(os.environ.get("MODELGUARD_SOAK_SECONDS", "240"))
BIG_IMAGE = base64.b64encode(random.Random(3).randbytes(2_400_000)).decode()  # ~3.2 MB JSON

#: kind → (weight, expected status, expected token or None)
KINDS = {
    "allowed_text": (50, 200, None),
    "allowed_image": (15, 200, None),
    "unknown_model": (10, 400, "unsupported_model"),
    "missing_capability": (10, 400, "unsupported_capability"),
    "malformed": (8, 400, "invalid_param"),
    "big_allowed": (1, 200, None),
    "big_refused": (1, 400, "unsupported_capability"),
    "unguarded": (5, 200, None),
}


class Recorder:
    """The app behind the guard: keeps a digest of each body, nothing more (memory stays flat)."""

    def __init__(self) -> None:
        self.digests: Counter[str] = Counter()
        self.lock = threading.Lock()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        digest = hashlib.sha256()
        more = True
        while more:
            message = await receive()
            digest.update(message.get("body", b""))
            more = message.get("more_body", False)
        with self.lock:
            self.digests[digest.hexdigest()] += 1
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"ok":true}'})


def build(kind: str, n: int) -> tuple[str, str, bytes]:
    """(method, path, body) for request number ``n`` of ``kind``; every body is unique."""
    tag = {"user_id": f"soak-{n}"}
    image = {"type": "image_url", "image_url": {"url": "https://img.test/a.png"}}
    if kind == "unguarded":
        return "GET", f"/healthz?n={n}", b""
    if kind == "malformed":
        raw = ('{"model":"text-model","model":"vision-model","messages":[],'
               f'"metadata":{{"n":{n}}}}}')
        return "POST", "/v1/chat/completions", raw.encode()
    model, content = {
        "allowed_text": ("text-model", "hello"),
        "allowed_image": ("vision-model", [image]),
        "unknown_model": ("text-model-2", "hello"),
        "missing_capability": ("text-model", [image]),
        "big_allowed": ("vision-model", "big"),
        "big_refused": ("text-model", "big"),
    }[kind]
    if content == "big":
        content = [{"type": "image_url",
                    "image_url": {"url": "data:image/png;base64," + BIG_IMAGE}}]
    body = {"model": model, "messages": [{"role": "user", "content": content}],
            "stream": True, "metadata": tag}
    return "POST", "/v1/chat/completions", json.dumps(body).encode()


def plan(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    kinds, weights = zip(*((k, w) for k, (w, _, _) in KINDS.items()), strict=True)
    return rng.choices(kinds, weights, k=count)


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def flap(gateway: Gateway, stop: asyncio.Event, log: list[str]) -> None:
    """Healthy, slow, failing, healthy, ... until told to stop."""
    states = [(None, 0.0), (None, 0.4), ("500", 0.0), ("429", 0.0), (None, 0.0), ("html", 0.0)]
    i = 0
    while not stop.is_set():
        fault, delay = states[i % len(states)]
        with gateway.lock:
            gateway.fault, gateway.delay = fault, delay
        log.append(f"{fault or 'ok'}+{delay}")
        i += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)
    with gateway.lock:
        gateway.fault, gateway.delay = None, 0.0


async def drive(url: str, kinds: list[str], offset: int, deadline: float) -> dict:
    queue = list(enumerate(kinds, start=offset))
    queue.reverse()
    results: Counter[str] = Counter()
    problems: list[str] = []
    delivered: Counter[str] = Counter()
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    limits = httpx2.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx2.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def worker() -> None:
            while queue and time.monotonic() < deadline:
                n, kind = queue.pop()
                method, path, body = build(kind, n)
                response = await client.request(method, path, content=body, headers=headers)
                _, status, token = KINDS[kind]
                results[f"{kind}:{response.status_code}"] += 1
                if response.status_code >= 500 or response.status_code != status:
                    problems.append(f"{kind} #{n}: {response.status_code} {response.text[:200]}")
                elif token is not None and response.json()["error"]["code"] != token:
                    problems.append(f"{kind} #{n}: token {response.json()['error']['code']}")
                elif status == 200 and method == "POST":
                    delivered[hashlib.sha256(body).hexdigest()] += 1

        await asyncio.gather(*(worker() for _ in range(CLIENTS)))
    return {"results": results, "problems": problems, "delivered": delivered,
            "sent": sum(results.values()), "unsent": len(queue)}


async def test_soak_with_a_flapping_gateway() -> None:
    gateway = Gateway()
    gateway.set_models(KEY, model_entry("vision-model", {"vision", "streaming"}, "openai"),
                       model_entry("text-model", {"streaming"}, "openai"))
    recorder = Recorder()
    remote = RemoteCatalog("http://placeholder", ttl=0.3, max_stale=600,
                           min_refresh_interval=0.3, timeout=2)
    with serve(gateway.app()) as gw:
        remote.base_url = gw.url
        guarded = ModelGuardMiddleware(recorder, catalog=remote)
        with serve(guarded, timeout_keep_alive=300) as app:
            deadline = time.monotonic() + DEADLINE
            warm = await drive(app.url, plan(max(REQUESTS // 5, 200), 1), 10_000_000, deadline)
            assert not warm["problems"], warm["problems"][:5]
            gc.collect()
            rss_before = rss_mib()
            stop = asyncio.Event()
            flaps: list[str] = []
            flapper = asyncio.create_task(flap(gateway, stop, flaps))
            run = await drive(app.url, plan(REQUESTS, 2), 0, deadline)
            stop.set()
            await flapper
            gc.collect()
            rss_after = rss_mib()
    assert run["unsent"] == 0, f"only {run['sent']} of {REQUESTS} sent before the deadline"
    assert not run["problems"], run["problems"][:10]
    assert not any(key.endswith(":500") or ":5" in key for key in run["results"])
    # every allowed request reached the app intact, exactly once
    for digest, count in run["delivered"].items():
        assert recorder.digests[digest] == count
    assert len(flaps) >= 3 and any(f.startswith("500") for f in flaps)
    assert gateway.total_hits() > 3  # the catalog really was refreshed through the flaps
    growth = rss_after - rss_before
    assert growth < 64, f"RSS grew {growth:.1f} MiB after warm-up"
    print(f"\nsoak: {run['sent']} requests, {dict(run['results'])}, gateway states {len(flaps)}, "
          f"catalog fetches {remote.fetches}, RSS {rss_before:.0f} -> {rss_after:.0f} MiB")
