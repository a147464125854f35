"""A stand-in ByteSpike gateway: per-key catalogs on ``GET /v1/models``, a hit counter and
switchable faults, as a real Starlette app (served by uvicorn in the tests)."""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .conftest import model_entry

#: Faults the gateway can be switched to (per key or for everyone).
FAULTS = ("500", "401", "403", "429", "html", "truncated", "duplicate", "not_a_list", "huge")


@dataclass
class Gateway:
    """``catalogs`` maps a key to its model entries; ``"*"`` serves any other key."""

    catalogs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    fault: str | None = None
    delay: float = 0.0
    #: While set, every catalog request waits (bounded) until it is cleared.
    hold: threading.Event | None = None
    hits: Counter[str] = field(default_factory=Counter)
    auth_headers: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/models", self._models, methods=["GET"])])

    def set_models(self, key: str, *entries: dict[str, Any]) -> None:
        with self.lock:
            self.catalogs[key] = list(entries)

    def total_hits(self) -> int:
        with self.lock:
            return sum(self.hits.values())

    async def _models(self, request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        key = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else ""
        with self.lock:
            self.hits[key] += 1
            self.auth_headers.append(auth)
            fault, delay, hold = self.fault, self.delay, self.hold
            data = copy.deepcopy(self.catalogs.get(key, self.catalogs.get("*")))
        if hold is not None:
            await _wait(hold)
        if delay:
            await _sleep(delay)
        if fault == "500":
            return JSONResponse({"error": "boom"}, status_code=500)
        if fault == "429":
            return JSONResponse({"error": "slow down"}, status_code=429)
        if fault == "401" or data is None or not key:
            return JSONResponse({"type": "error", "error": {"type": "authentication_error",
                                                            "message": "invalid key"}}, 401)
        if fault == "403":
            return JSONResponse({"type": "error", "error": {"type": "permission_error",
                                                            "message": "no models"}}, 403)
        if fault == "html":
            return Response("<html><body>Bad gateway</body></html>", media_type="text/html")
        payload = {"object": "list", "data": data}
        if fault == "duplicate" and data:
            payload["data"] = data + [data[0]]
        if fault == "not_a_list":
            payload["data"] = {"oops": True}
        body = json.dumps(payload).encode()
        if fault == "truncated":
            body = body[: len(body) // 2]
        if fault == "huge":
            filler = [model_entry(f"filler-{i}-" + "x" * 200, set()) for i in range(70_000)]
            body = json.dumps({"object": "list", "data": filler}).encode()
        return Response(body, media_type="application/json")


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


async def _wait(event: threading.Event) -> None:
    deadline = time.monotonic() + 10
    while event.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(0.005)


class FakeClock:
    """A monotonic clock the test moves by hand (freshness is tested without sleeping)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# -- two callers of one stand-in gateway (shared by the remote-catalog tests) -----------------

#: Alice may use both models, Bob the text one only.
ALICE, BOB = "sk-byts-alice-0001", "sk-byts-bob-0002"
VISION = model_entry("vision-model", {"vision", "streaming"}, "openai", max_output_tokens=4096)
TEXT = model_entry("text-model", {"streaming"}, "openai", max_output_tokens=4096)


@contextmanager
def two_callers() -> Iterator[tuple[Gateway, str]]:
    """A served stand-in gateway where Alice sees VISION and TEXT, Bob TEXT; and its URL."""
    from .upstream import serve

    gw = Gateway()
    gw.set_models(ALICE, VISION, TEXT)
    gw.set_models(BOB, TEXT)
    with serve(gw.app()) as served:
        yield gw, served.url


def chat(model: str, image: bool = False) -> bytes:
    """A chat body for ``model``, with an image part when ``image``."""
    content: object = "hi"
    if image:
        content = [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]
    return json.dumps({"model": model, "messages": [{"role": "user", "content": content}]}).encode()
