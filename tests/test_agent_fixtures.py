"""The request bodies the coding-agent CLIs really sent (tests/fixtures/agents, captured by
tests/fixtures/capture_agents.py): no false refusal on a catalog that has what they use, byte for
byte through the middleware, and the documented catalog's refusals for what they always send."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelguard import Catalog, Guard, ModelGuardMiddleware

from .clients.catalogs import catalog_path
from .upstream import StandIn

FIXTURES = Path(__file__).parent / "fixtures" / "agents"
RECORDS = sorted(FIXTURES.glob("*.json"))
CLIENTS = {"claude", "gemini", "codex", "qwen"}
SCENES = {"first-turn", "read-file", "read-image"}


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def target(record: dict[str, Any]) -> str:
    return record["path"] + ("?" + record["query"] if record["query"] else "")


@pytest.fixture(scope="module")
def capture_guard() -> Guard:
    return Guard(Catalog.from_file(catalog_path("capture")))


def test_every_client_and_scene_was_captured() -> None:
    seen = {(load(p)["client"], load(p)["scene"]) for p in RECORDS}
    assert seen == {(c, s) for c in CLIENTS for s in SCENES}


@pytest.mark.parametrize("path", RECORDS, ids=[p.stem for p in RECORDS])
def test_record_shape_and_fake_key(path: Path) -> None:
    record = load(path)
    assert set(record) >= {"client", "method", "path", "headers", "body"}
    assert json.loads(record["body"])  # the exact text sent, a JSON object
    secrets = [record["headers"].get(h, "") for h in ("x-api-key", "authorization",
                                                      "x-goog-api-key")]
    assert any(secrets) and all(s.endswith("sk-byts-modelguard-test-0000000000000000")
                                for s in secrets if s)


@pytest.mark.parametrize("path", RECORDS, ids=[p.stem for p in RECORDS])
def test_no_false_refusal(path: Path, capture_guard: Guard) -> None:
    record = load(path)
    verdict = asyncio.run(capture_guard.check(record["method"], target(record),
                                              record["headers"], record["body"].encode()))
    assert verdict.allowed, verdict.body


def test_images_read_back_by_the_agents_need_vision(capture_guard: Guard) -> None:
    """The image turns carry the picture where each agent puts it, and the guard sees it."""
    for path in RECORDS:
        record = load(path)
        if record["scene"] != "read-image" or not any(
                marker in record["body"] for marker in ("iVBOR", "/9j/")):
            continue
        verdict = asyncio.run(capture_guard.check(record["method"], target(record),
                                                  record["headers"], record["body"].encode()))
        if verdict.guarded:
            assert "vision" in verdict.required, path.name


@pytest.mark.parametrize("path", RECORDS, ids=[p.stem for p in RECORDS])
async def test_forwarded_byte_for_byte_through_the_middleware(path: Path) -> None:
    record = load(path)
    upstream = StandIn()
    app = ModelGuardMiddleware(upstream.app, Catalog.from_file(catalog_path("capture")))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        response = await client.post(target(record), headers=record["headers"],
                                     content=record["body"].encode())
    assert response.status_code != 400, response.text  # the stand-in may not know /v1/responses
    assert len(upstream.requests) == 1
    assert upstream.requests[-1].body == record["body"].encode()


#: What the documented catalog (the bundled snapshot) refuses in each agent's first turn, on the
#: model of that vendor an agent user would pick, and why.
DOCUMENTED_REFUSALS = {
    "claude": ("claude-sonnet-4-6", "max_tokens_exceeded"),  # max_tokens 32000 > 8192
    "qwen": ("deepseek-v4-pro", "max_tokens_exceeded"),  # max_tokens 32768 > 8192
    "gemini": ("gemini-2-5-pro", "unsupported_model"),  # not in the documented catalog
}


@pytest.mark.parametrize("client", sorted(DOCUMENTED_REFUSALS))
def test_documented_catalog_refuses_what_agents_always_send(client: str) -> None:
    model, reason = DOCUMENTED_REFUSALS[client]
    record = load(FIXTURES / f"{client}-first-turn-0.json")
    body = json.loads(record["body"])
    path = record["path"]
    if "model" in body:
        body["model"] = model
    else:
        path = path.replace("gemini-3-1-pro", model)
    verdict = asyncio.run(Guard(Catalog.default()).check(
        "POST", path + "?" + record["query"], record["headers"], json.dumps(body).encode()))
    assert not verdict.allowed and verdict.reason == reason
