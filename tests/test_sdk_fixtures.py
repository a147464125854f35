"""Bodies captured from the official SDKs: each needs exactly its recorded tags.

For every fixture and every tag it needs, a model with all tags passes and a model lacking just
that tag is refused with the protocol's envelope, naming the tag and the recorded path.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest

from modelguard import Guard

from .conftest import ALL_TAGS, SDK_FIXTURES, catalog_of, load_fixture, model_entry

VENDOR = {"anthropic": "anthropic", "openai": "openai", "gemini": "google"}


def _target(fx: dict, model: str) -> str:
    path = fx["path"]
    if fx["protocol"] == "gemini":
        version, rest = path.split("/models/", 1)
        method = rest.rsplit(":", 1)[1]
        path = f"{version}/models/{quote(model)}:{method}"
    return path + (f"?{fx['query']}" if fx["query"] else "")


def _body(fx: dict, model: str) -> bytes:
    body = dict(fx["body"])
    if fx["protocol"] != "gemini":
        body["model"] = model
    return json.dumps(body).encode()


async def _check(fx: dict, tags: set[str]) -> object:
    model = "model-under-test"
    catalog = catalog_of(model_entry(model, tags, owned_by=VENDOR[fx["protocol"]]),
                         model_entry("everything", set(ALL_TAGS), VENDOR[fx["protocol"]]))
    guard = Guard(catalog)
    return await guard.check(fx["method"], _target(fx, model), fx["headers"], _body(fx, model))


def _error_fields(fx: dict, verdict) -> tuple[str, str | None, str | None]:
    """(token, path, capability) read back from the envelope the client would see."""
    doc = json.loads(verdict.body)
    if fx["protocol"] == "anthropic":
        assert doc["type"] == "error"
        return doc["error"]["type"], None, None
    if fx["protocol"] == "openai":
        return doc["error"]["code"], doc["error"]["param"], None
    detail = doc["error"]["details"][0]
    assert doc["error"]["status"] == "INVALID_ARGUMENT"
    meta = detail["metadata"]
    return detail["reason"], meta.get("path"), meta.get("capability")


IDS = [p.stem for p in SDK_FIXTURES]


@pytest.mark.parametrize("path", SDK_FIXTURES, ids=IDS)
async def test_allowed_with_every_needed_tag(path: Path) -> None:
    fx = load_fixture(path)
    verdict = await _check(fx, set(fx["tags"]))
    assert verdict.allowed, verdict.body
    assert verdict.required == frozenset(fx["tags"])


@pytest.mark.parametrize("path", SDK_FIXTURES, ids=IDS)
async def test_refused_without_each_tag(path: Path) -> None:
    fx = load_fixture(path)
    for tag in fx["tags"]:
        verdict = await _check(fx, set(fx["tags"]) - {tag})
        assert not verdict.allowed and verdict.status == 400, (tag, verdict)
        first = verdict.violations[0]
        assert (first.capability, first.path) == (tag, fx["paths"][tag])
        token, param, capability = _error_fields(fx, verdict)
        if fx["protocol"] == "anthropic":
            assert token == "unsupported_capability"
        elif fx["protocol"] == "openai":
            assert (token, param) == ("unsupported_capability", fx["paths"][tag])
        else:
            assert (token, param, capability) == ("UNSUPPORTED_CAPABILITY", fx["paths"][tag], tag)
        assert "model-under-test" in first.message and tag in first.message


def test_fixtures_cover_every_tag_per_protocol() -> None:
    seen: dict[str, set[str]] = {}
    off_switches = 0
    for path in SDK_FIXTURES:
        fx = load_fixture(path)
        seen.setdefault(fx["protocol"], set()).update(fx["tags"])
        off_switches += not fx["tags"]
    assert seen["anthropic"] >= {"vision", "tool_use", "streaming", "cache_control", "thinking",
                                 "json_schema"}
    assert seen["openai"] >= {"vision", "audio", "video", "tool_use", "streaming",
                              "cache_control", "thinking", "json_schema", "logprobs", "image_gen"}
    assert seen["gemini"] >= set(ALL_TAGS)
    assert off_switches >= 15
