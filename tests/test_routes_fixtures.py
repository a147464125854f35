"""The conformance matrix over bodies the official openai SDK sent to the routes of routes.md.

For each fixture: the model with every needed tag passes, and the app downstream receives the
exact bytes sent; for each tag, the model without it is refused with the recorded path; an
unknown model is refused; a model of the wrong owner is refused where the vendor rule applies;
an unknown secondary model (an image tool's model, ``svg.model``) is refused at its path.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelguard import Guard, ModelGuardMiddleware

from .routes_common import (
    ROUTE_FIXTURES,
    Downstream,
    catalog_for,
    load,
    model_of,
    resolve,
    run_middleware,
    tags_of,
)

IDS = [p.stem for p in ROUTE_FIXTURES]
OPTIONS = {"embeddings": True}


async def _verdict(fx: dict, catalog, **options):
    guard = Guard(catalog, **(OPTIONS | options))
    return await guard.check(fx["method"], fx["path"] + (f"?{fx['query']}" if fx["query"]
                                                         else ""), fx["headers"], fx["raw"])


def _error(verdict) -> tuple[str, str | None]:
    doc = json.loads(verdict.body)
    assert set(doc["error"]) == {"message", "type", "param", "code"}
    assert doc["error"]["type"] == "invalid_request_error"
    return doc["error"]["code"], doc["error"]["param"]


@pytest.mark.parametrize("path", ROUTE_FIXTURES, ids=IDS)
async def test_allowed_byte_for_byte_with_every_needed_tag(path: Path) -> None:
    fx = load(path)
    catalog = catalog_for(fx, tags_of(fx["tags"]))
    verdict = await _verdict(fx, catalog)
    assert verdict.allowed and verdict.guarded, verdict.body
    assert verdict.required == frozenset(fx["tags"])
    assert verdict.protocol == "openai" and verdict.model_id == model_of(fx)
    downstream = Downstream()
    status, _ = await run_middleware(ModelGuardMiddleware(downstream, catalog, **OPTIONS), fx)
    assert status == 200 and downstream.bodies == [fx["raw"]]


@pytest.mark.parametrize("path", ROUTE_FIXTURES, ids=IDS)
async def test_refused_without_each_tag(path: Path) -> None:
    fx = load(path)
    for label, where in fx["tags"].items():
        tags = tags_of(fx["tags"]) - set(label.split("|"))
        verdict = await _verdict(fx, catalog_for(fx, tags))
        assert not verdict.allowed and verdict.status == 400, (label, verdict)
        assert _error(verdict) == ("unsupported_capability", where), label
        first = verdict.violations[0]
        assert first.capability == label and model_of(fx) in first.message
        for alternative in label.split("|")[1:]:  # an any-of need: each alternative suffices
            swapped = tags - set(label.split("|")) | {alternative}
            assert (await _verdict(fx, catalog_for(fx, swapped))).allowed


@pytest.mark.parametrize("path", ROUTE_FIXTURES, ids=IDS)
async def test_unknown_model_refused(path: Path) -> None:
    fx = load(path)
    verdict = await _verdict(fx, catalog_for(fx, tags_of(fx["tags"]), main=False))
    assert verdict.status == 400 and _error(verdict) == ("unsupported_model", "model")


VENDOR_FIXTURES = [p for p in ROUTE_FIXTURES if load(p)["vendor"]]


@pytest.mark.parametrize("path", VENDOR_FIXTURES, ids=[p.stem for p in VENDOR_FIXTURES])
async def test_wrong_vendor_refused(path: Path) -> None:
    fx = load(path)
    verdict = await _verdict(fx, catalog_for(fx, tags_of(fx["tags"]), owner="deepseek"))
    assert verdict.status == 400
    assert _error(verdict) == ("unsupported_capability", fx["vendor"])
    assert "deepseek" in verdict.violations[0].message
    assert fx["owner"] in verdict.violations[0].message


SECONDARY_FIXTURES = [p for p in ROUTE_FIXTURES if load(p)["secondary"]]


@pytest.mark.parametrize("path", SECONDARY_FIXTURES, ids=[p.stem for p in SECONDARY_FIXTURES])
async def test_unknown_secondary_model_refused(path: Path) -> None:
    fx = load(path)
    main_id = model_of(fx)
    for where in fx["secondary"]:
        if resolve(fx["body"], where) == main_id:
            continue
        verdict = await _verdict(fx, catalog_for(fx, tags_of(fx["tags"]), secondary=False))
        assert verdict.status == 400 and _error(verdict) == ("unsupported_model", where)


def test_fixtures_cover_the_routes_and_tags() -> None:
    routes, tags, vendors = set(), set(), 0
    for path in ROUTE_FIXTURES:
        fx = load(path)
        routes.add(fx["path"])
        tags.update(fx["tags"])
        vendors += fx["vendor"] is not None
    assert routes >= {"/v1/responses", "/responses", "/v1/responses/input_tokens",
                      "/v1/responses/compact", "/v1/images/edits", "/v1/images/variations",
                      "/v1/images/generations", "/v1/videos", "/v1/embeddings",
                      "/v1/tasks/submit", "/v1beta/openai/chat/completions"}
    assert tags >= {"vision", "audio", "tool_use", "streaming", "cache_control", "thinking",
                    "json_schema", "logprobs", "image_gen", "video_gen", "video_gen|image_gen"}
    assert vendors >= 10
