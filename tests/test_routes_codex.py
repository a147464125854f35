"""Real Codex CLI bodies (``tests/fixtures/agents/codex-*.json``, Responses API) replayed through
the middleware: allowed byte for byte on a capable OpenAI model, refused otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelguard import ModelGuardMiddleware

from .conftest import FIXTURES, catalog_of, model_entry
from .routes_common import Downstream, run_middleware

CODEX = sorted((FIXTURES / "agents").glob("codex-*.json"))
CAPABLE = {"vision", "tool_use", "streaming", "thinking"}


def _load(path: Path) -> dict:
    fx = json.loads(path.read_text())
    fx["raw"] = fx["body"].encode()
    fx["headers"] = {k: v for k, v in fx["headers"].items()
                     if k not in ("authorization", "accept-encoding")}
    return fx


def _model(fx: dict) -> str:
    return json.loads(fx["raw"])["model"]


async def _run(fx: dict, entry: dict, **options) -> tuple[int, bytes, Downstream]:
    downstream = Downstream()
    app = ModelGuardMiddleware(downstream, catalog_of(entry), **options)
    status, body = await run_middleware(app, fx)
    return status, body, downstream


def test_codex_fixtures_present() -> None:
    assert len(CODEX) >= 5
    assert any(json.loads(_load(p)["raw"]).get("stream") for p in CODEX)


@pytest.mark.parametrize("path", CODEX, ids=[p.stem for p in CODEX])
async def test_codex_allowed_on_a_capable_model(path: Path) -> None:
    fx = _load(path)
    status, _, downstream = await _run(fx, model_entry(_model(fx), CAPABLE, "openai"))
    assert status == 200 and downstream.bodies == [fx["raw"]]


@pytest.mark.parametrize("path", CODEX, ids=[p.stem for p in CODEX])
@pytest.mark.parametrize(("missing", "param"), [
    ("tool_use", "tools"), ("streaming", "stream"), ("thinking", "reasoning")])
async def test_codex_refused_without_a_capability(path: Path, missing: str, param: str) -> None:
    fx = _load(path)
    entry = model_entry(_model(fx), CAPABLE - {missing}, "openai")
    status, body, downstream = await _run(fx, entry)
    assert status == 400 and downstream.bodies == []
    error = json.loads(body)["error"]
    assert error["code"] == "unsupported_capability" and missing in error["message"]
    history = json.loads(fx["raw"])["input"]
    calls = [i for i, item in enumerate(history) if item.get("type") == "function_call"]
    # Tool calls in the history come first in the body, so they are named first.
    expected = f"input[{calls[0]}]" if missing == "tool_use" and calls else param
    assert error["param"] == expected


@pytest.mark.parametrize("path", CODEX, ids=[p.stem for p in CODEX])
async def test_codex_refused_on_unknown_model_and_other_vendor(path: Path) -> None:
    fx = _load(path)
    status, body, downstream = await _run(fx, model_entry("another-model", CAPABLE, "openai"))
    assert status == 400 and json.loads(body)["error"]["code"] == "unsupported_model"
    # Codex always declares OpenAI's hosted web_search: a DeepSeek model cannot run it...
    deepseek = model_entry(_model(fx), CAPABLE, "deepseek")
    status, body, downstream = await _run(fx, deepseek)
    error = json.loads(body)["error"]
    assert status == 400 and error["code"] == "unsupported_capability"
    assert error["param"].startswith("tools[") and "deepseek" in error["message"]
    # ...unless the operator says DeepSeek runs web_search too (routes.md D8).
    status, _, downstream = await _run(
        fx, deepseek, tool_vendors={"web_search": {"openai", "deepseek"}})
    assert status == 200 and downstream.bodies == [fx["raw"]]


async def test_codex_image_turn_needs_vision() -> None:
    images = [p for p in CODEX if "image" in p.stem]
    needs_vision = []
    for path in images:
        fx = _load(path)
        status, body, _ = await _run(fx, model_entry(_model(fx), CAPABLE - {"vision"}, "openai"))
        if status == 400:
            error = json.loads(body)["error"]
            assert error["code"] == "unsupported_capability" and "vision" in error["message"]
            needs_vision.append(error["param"])
    assert needs_vision and all(p.startswith("input[") for p in needs_vision)
