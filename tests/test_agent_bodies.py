"""Bodies captured from the coding agents (Claude Code, Gemini CLI, Qwen Code, Codex CLI).

Against catalogs lacking each feature the agents send on every request:

- refused once, with a message naming every violation (tag, feature and path) in §12 order,
  the token and path of the first, and the full list in the verdict;
- with ``actions="compat"``, forwarded with exactly the stripped and clamped fields changed
  (the parsed JSON and its key order compared with an oracle), thinking history untouched;
- over real HTTP through ``modelguard serve``, the upstream receives that body with a right
  Content-Length and no Content-Encoding, and the client sees ``modelguard-adjusted``.

Codex speaks the Responses API (guarded like the others): its ``strip thinking`` removes
``reasoning`` and the ``reasoning.encrypted_content`` include, and ``prompt_cache_key`` stays.
"""

from __future__ import annotations

import copy
import gzip
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import modelguard
from modelguard import Guard
from modelguard.rewrite import Plan, apply
from modelguard.routing import Route
from modelguard.serve.sidecar import create_app

from .conftest import ALL_TAGS, FIXTURES, catalog_of, model_entry
from .test_action_pairings import STRIPPED, expected_strip, pairs
from .upstream import StandIn, serve

AGENTS = sorted((FIXTURES / "agents").glob("*.json"))
GUARDED = AGENTS
CODEX = [p for p in AGENTS if p.name.startswith("codex-")]
PROTOCOL = {"claude": "anthropic", "qwen": "openai", "gemini": "gemini", "codex": "responses"}
OWNER = {"anthropic": "anthropic", "openai": "alibaba", "gemini": "google",
         "responses": "openai"}
#: The Responses rows of the oracle (the Chat Completions ones are in test_action_pairings):
#: member paths ``strip`` removes, and (list path, item) pairs it takes out of a list.
RESPONSES_STRIPPED: dict[str, tuple[list[Any], list[tuple[str, str]]]] = {
    "thinking": ([r"^reasoning$", r"^input\[\d+\]\.reasoning$"],
                 [("include", "reasoning.encrypted_content")]),
    "cache_control": ([r"\.prompt_cache_breakpoint$", r"^prompt_cache_options\.prewarm$"], []),
}
LIMIT = 8192
HINTS = ("cache_control", "thinking")
CATALOG_FILE = str(Path(modelguard.__file__).parent / "data" / "catalog.json")


def load(path: Path) -> dict[str, Any]:
    fx = json.loads(path.read_text())
    fx["raw"] = fx["body"].encode()
    fx["doc"] = json.loads(fx["body"])
    fx["protocol"] = PROTOCOL[fx["client"]]
    fx["target"] = fx["path"] + (f"?{fx['query']}" if fx["query"] else "")
    fx["model"] = fx["doc"].get("model") or fx["path"].split("/models/")[1].split(":")[0]
    return fx


def cap_of(fx: dict) -> tuple[str, int] | None:
    doc = fx["doc"]
    if fx["protocol"] == "gemini":
        config = doc.get("generationConfig") or {}
        value = config.get("maxOutputTokens")
        return None if value is None else ("generationConfig.maxOutputTokens", int(value))
    key = "max_output_tokens" if fx["protocol"] == "responses" else "max_tokens"
    value = doc.get(key)
    return None if value is None else (key, value)


async def check(fx: dict, tags: set[str], *, actions: Any = None, body: bytes | None = None,
                headers: dict[str, str] | None = None, limit: int | None = LIMIT) -> Any:
    catalog = catalog_of(
        model_entry(fx["model"], tags, owned_by=OWNER[fx["protocol"]], max_output_tokens=limit),
        model_entry("everything", set(ALL_TAGS), OWNER[fx["protocol"]]))
    guard = Guard(catalog, actions=actions)
    return await guard.check(fx["method"], fx["target"], {**fx["headers"], **(headers or {})},
                             fx["raw"] if body is None else body)


async def required(fx: dict) -> frozenset[str]:
    verdict = await check(fx, set(ALL_TAGS), limit=None)
    assert verdict.allowed and not verdict.violations
    return verdict.required


def ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def test_the_captures_are_here() -> None:
    clients = {load(p)["client"] for p in AGENTS}
    assert clients == {"claude", "gemini", "qwen", "codex"}
    assert len(GUARDED) >= 12 and len(CODEX) >= 3


# -- one refusal names every violation ------------------------------------------------------


@pytest.mark.parametrize("path", GUARDED, ids=ids(GUARDED))
async def test_lacking_everything_one_refusal_names_every_violation(path: Path) -> None:
    fx = load(path)
    needed = await required(fx)
    verdict = await check(fx, set())
    assert not verdict.allowed and verdict.status == 400
    cap = cap_of(fx)
    found = [(v.capability, v.path) for v in verdict.violations
             if v.reason == "unsupported_capability"]
    assert {tag for tag, _ in found} == needed
    caps = [v for v in verdict.violations if v.reason == "max_tokens_exceeded"]
    assert [(v.path, v.requested) for v in caps] == ([cap] if cap and cap[1] > LIMIT else [])
    # §12 order: essential capabilities, then the hints, then the output cap
    ranks = [2 if v.capability in HINTS else 1 if v.capability else 3
             for v in verdict.violations]
    assert ranks == sorted(ranks)
    message = verdict.error["error"]["message"]
    for tag, where in found:
        assert f"{tag} (" in message and f"at {where}" in message, (tag, message)
    if caps:
        assert f"{cap[0]} {cap[1]} is above its {LIMIT} limit" in message
    assert message.count(f"Model {fx['model']!r} does not support") == 1
    first = verdict.violations[0]
    assert verdict.first is first and first.capability not in HINTS
    if fx["protocol"] in ("openai", "responses"):
        assert verdict.error["error"]["param"] == first.path
    if fx["protocol"] == "gemini":
        meta = verdict.error["error"]["details"][0]["metadata"]
        assert (meta["capability"], meta["path"]) == (first.capability, first.path)


@pytest.mark.parametrize("path", GUARDED, ids=ids(GUARDED))
async def test_lacking_each_feature_alone(path: Path) -> None:
    fx = load(path)
    needed = await required(fx)
    for tag in needed:
        verdict = await check(fx, set(needed) - {tag}, limit=None)
        assert not verdict.allowed
        assert {v.capability for v in verdict.violations} == {tag}
        assert f"does not support {tag} (" in verdict.error["error"]["message"]


# -- compat: forwarded with exactly the stripped and clamped fields changed --------------------


def _expected(fx: dict, stripped: set[str], clamped: bool) -> Any:
    want = copy.deepcopy(fx["doc"])
    for tag in HINTS:
        if tag in stripped and fx["protocol"] == "responses":
            members, items = RESPONSES_STRIPPED[tag]
            want = expected_strip(want, members)
            for key, item in items:
                if key in want:
                    want[key] = [i for i in want[key] if i != item]
        elif tag in stripped:
            want = expected_strip(want, STRIPPED[(fx["protocol"], tag)])
    cap = cap_of(fx)
    if clamped and cap is not None:
        holder = want
        keys = cap[0].split(".")
        for key in keys[:-1]:
            holder = holder[key]
        holder[keys[-1]] = LIMIT
    return want


def _lacks() -> Iterator[Any]:
    for path in GUARDED:
        for size in range(3):
            for lacking in itertools.combinations(HINTS, size):
                yield pytest.param(path, set(lacking),
                                   id=f"{path.stem}-lacking-{'+'.join(lacking) or 'none'}")


@pytest.mark.parametrize(("path", "lacking"), list(_lacks()))
async def test_compat_changes_exactly_the_stripped_and_clamped_fields(
        path: Path, lacking: set[str]) -> None:
    fx = load(path)
    needed = await required(fx)
    verdict = await check(fx, set(needed) - lacking, actions="compat")
    stripped = lacking & needed
    cap = cap_of(fx)
    clamped = cap is not None and cap[1] > LIMIT
    assert verdict.allowed, verdict.body
    if not stripped and not clamped:
        assert verdict.rewritten_body is None and verdict.adjustments == ()
        return
    want = [f"{tag}=stripped" for tag in HINTS if tag in stripped]
    want += [f"max_tokens={LIMIT}"] if clamped else []
    assert verdict.adjustments == tuple(want)
    assert {(v.key, v.action) for v in verdict.violations} == {
        (tag, "strip") for tag in stripped} | ({("max_tokens", "clamp")} if clamped else set())
    assert pairs(verdict.rewritten_body) == pairs(json.dumps(_expected(fx, stripped, clamped)))
    # the body forwarded is one the model can serve: no violation left at all
    again = await check(fx, set(needed) - lacking, body=verdict.rewritten_body)
    assert again.allowed and not again.violations


@pytest.mark.parametrize("path", [p for p in GUARDED if p.name.startswith("claude-")],
                         ids=ids([p for p in GUARDED if p.name.startswith("claude-")]))
async def test_claude_thinking_history_stays_when_thinking_is_stripped(path: Path) -> None:
    """An assistant turn with thinking blocks (as Claude Code replays them) is kept whole."""
    fx = load(path)
    doc = fx["doc"]
    history = {"type": "thinking", "thinking": "The user wants the file.",
               "signature": "EqQBCkYIBxgCKkBsig"}
    doc["messages"].insert(1, {"role": "assistant", "content": [
        history, {"type": "redacted_thinking", "data": "EmwKAhgBEgy"},
        {"type": "text", "text": "Reading it."}]})
    doc["messages"].insert(2, {"role": "user", "content": "go on"})
    fx["raw"] = json.dumps(doc).encode()
    needed = await required(fx)
    verdict = await check(fx, set(needed) - {"thinking"}, actions="compat")
    assert verdict.allowed and "thinking=stripped" in verdict.adjustments
    sent = json.loads(verdict.rewritten_body)
    assert "thinking" not in sent and "context_management" not in sent
    assert sent["messages"][1] == doc["messages"][1]  # the history, block for block


async def test_gemini_thought_signatures_stay() -> None:
    fx = load(FIXTURES / "agents" / "gemini-read-file-1.json")
    needed = await required(fx)
    verdict = await check(fx, set(needed) - {"thinking"}, actions="compat")
    sent = json.loads(verdict.rewritten_body)
    assert "thinkingConfig" not in sent["generationConfig"]
    assert sent["contents"] == fx["doc"]["contents"]
    assert "thoughtSignature" in json.dumps(sent["contents"])


@pytest.mark.parametrize("path", [p for p in GUARDED if cap_of(load(p))],
                         ids=ids([p for p in GUARDED if cap_of(load(p))]))
async def test_without_clamp_the_cap_is_refused(path: Path) -> None:
    fx = load(path)
    needed = await required(fx)
    verdict = await check(fx, set(needed), actions={"cache_control": "strip",
                                                    "thinking": "strip"})
    assert not verdict.allowed and verdict.reason == "max_tokens_exceeded"
    assert verdict.rewritten_body is None


# -- Codex: the Responses rows of the rewrite tables -------------------------------------------

RESPONSES = Route("openai", "responses")


@pytest.mark.parametrize("path", CODEX, ids=ids(CODEX))
def test_codex_bodies_strip_reasoning_and_its_include(path: Path) -> None:
    fx = load(path)
    done = apply(RESPONSES, fx["raw"], Plan(strip=frozenset({"thinking"})))
    want = {k: v for k, v in fx["doc"].items() if k != "reasoning"}
    want["include"] = [i for i in fx["doc"]["include"] if i != "reasoning.encrypted_content"]
    assert pairs(done.body) == pairs(json.dumps(want))
    assert done.adjustments == ("thinking=stripped",)
    # reasoning items in the history (encrypted or not) are history: they stay
    assert json.loads(done.body)["input"] == fx["doc"]["input"]


def test_codex_body_prompt_cache_rows() -> None:
    fx = load(CODEX[0])
    doc = copy.deepcopy(fx["doc"])
    doc["prompt_cache_options"] = {"prewarm": True, "ttl": "1h"}
    message = next(i for i in doc["input"] if i.get("type") == "message" or "role" in i)
    if isinstance(message["content"], list):
        message["content"][0]["prompt_cache_breakpoint"] = {"type": "ephemeral"}
    done = apply(RESPONSES, json.dumps(doc).encode(), Plan(strip=frozenset({"cache_control"})))
    sent = json.loads(done.body)
    assert sent["prompt_cache_options"] == {"ttl": "1h"}
    assert "prompt_cache_breakpoint" not in done.body.decode()
    assert sent["prompt_cache_key"] == doc["prompt_cache_key"]  # a hint that needs nothing


# -- over real HTTP through modelguard serve -----------------------------------------------


@pytest.fixture(scope="module")
def compat_sidecar() -> Iterator[tuple[StandIn, str]]:
    """``modelguard serve --actions compat`` with the default catalog in front of a stand-in."""
    standin = StandIn()
    with serve(standin.app) as upstream, \
            serve(create_app(upstream.url, CATALOG_FILE, actions="compat"),
                  access_log=False) as sidecar:
        yield standin, sidecar.url


@pytest.mark.parametrize("coding", ["identity", "gzip"])
def test_claude_code_through_the_sidecar_with_compat(compat_sidecar, coding: str) -> None:
    standin, url = compat_sidecar
    standin.clear()
    fx = load(FIXTURES / "agents" / "claude-read-file-1.json")
    body = gzip.compress(fx["raw"]) if coding == "gzip" else fx["raw"]
    headers = {k: v for k, v in fx["headers"].items() if k.lower() != "content-length"}
    headers["x-api-key"] = "sk-agent-test"
    if coding == "gzip":
        headers["content-encoding"] = "gzip"
    with httpx.Client(timeout=10) as client:
        response = client.post(f"{url}{fx['target']}", content=body, headers=headers)
        assert response.status_code == 200, response.text
        assert response.headers["modelguard-adjusted"] == "max_tokens=8192"
        assert "event: message_stop" in response.text  # the stand-in's stream, whole
    [got] = standin.wait_for(1)
    assert got.header("content-encoding") is None
    assert got.header("content-length") == str(len(got.body))
    want = copy.deepcopy(fx["doc"])
    want["max_tokens"] = 8192
    assert pairs(got.body) == pairs(json.dumps(want))
    assert got.header("x-api-key") == "sk-agent-test"
    assert got.query == "beta=true"


def test_unchanged_requests_pass_byte_for_byte_with_compat(compat_sidecar) -> None:
    standin, url = compat_sidecar
    standin.clear()
    fx = load(FIXTURES / "agents" / "gemini-read-file-1.json")
    raw = fx["raw"] + b"  \n"  # whitespace a rewrite would not keep
    headers = {"content-type": "application/json", "x-goog-api-key": "sk-agent-test"}
    with httpx.Client(timeout=10) as client:
        response = client.post(f"{url}{fx['target']}", content=raw, headers=headers)
    assert response.status_code == 200
    assert "modelguard-adjusted" not in response.headers
    [got] = standin.wait_for(1)
    assert got.body == raw


def test_codex_configuration_update_reasoning_is_stripped_too() -> None:
    fx = load(CODEX[0])
    doc = copy.deepcopy(fx["doc"])
    update = {"type": "configuration_update", "reasoning": {"effort": "high"},
              "text": {"verbosity": "low"}}
    history = {"type": "reasoning", "id": "rs_1", "summary": [],
               "encrypted_content": "gAAAAB"}
    doc["input"] += [history, update]
    done = apply(RESPONSES, json.dumps(doc).encode(), Plan(strip=frozenset({"thinking"})))
    sent = json.loads(done.body)
    assert sent["input"][-1] == {"type": "configuration_update", "text": {"verbosity": "low"}}
    assert sent["input"][-2] == history
    assert sent["input"][:-2] == fx["doc"]["input"]


# -- Codex over real HTTP: the sidecar and the middleware with compat -----------------------


def _codex_headers(fx: dict, coding: str) -> dict[str, str]:
    headers = {k: v for k, v in fx["headers"].items() if k.lower() != "content-length"}
    if coding == "gzip":
        headers["content-encoding"] = "gzip"
    return headers


def _assert_codex_forwarded(fx: dict, got: Any) -> None:
    """Exactly ``reasoning`` and the encrypted-content include gone; framing right."""
    assert got.header("content-encoding") is None
    assert got.header("content-length") == str(len(got.body))
    assert pairs(got.body) == pairs(json.dumps(_expected(fx, {"thinking"}, False)))
    assert got.header("authorization") == fx["headers"]["authorization"]


@pytest.mark.parametrize("coding", ["identity", "gzip"])
@pytest.mark.parametrize("path", CODEX, ids=ids(CODEX))
def test_codex_through_the_sidecar_with_compat(compat_sidecar, path: Path, coding: str) -> None:
    standin, url = compat_sidecar
    standin.clear()
    fx = load(path)
    body = gzip.compress(fx["raw"]) if coding == "gzip" else fx["raw"]
    with httpx.Client(timeout=10) as client:
        response = client.post(f"{url}{fx['target']}", content=body,
                               headers=_codex_headers(fx, coding))
    assert response.status_code < 500, response.text
    assert response.headers["modelguard-adjusted"] == "thinking=stripped"
    [got] = standin.wait_for(1)
    _assert_codex_forwarded(fx, got)


@pytest.mark.parametrize("coding", ["identity", "gzip"])
@pytest.mark.parametrize("path", CODEX, ids=ids(CODEX))
async def test_codex_through_the_middleware_with_compat(path: Path, coding: str) -> None:
    fx = load(path)
    upstream = StandIn()
    app = modelguard.ModelGuardMiddleware(upstream.app, modelguard.Catalog.default(),
                                          actions="compat")
    body = gzip.compress(fx["raw"]) if coding == "gzip" else fx["raw"]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        response = await client.post(fx["target"], content=body,
                                     headers=_codex_headers(fx, coding))
    assert response.status_code < 500, response.text
    assert response.headers["modelguard-adjusted"] == "thinking=stripped"
    [got] = upstream.requests
    _assert_codex_forwarded(fx, got)


@pytest.mark.parametrize("path", CODEX, ids=ids(CODEX))
async def test_codex_on_the_documented_catalog_without_compat_is_refused(path: Path) -> None:
    """gpt-5-4 as documented has no thinking: Codex's reasoning request is what is refused."""
    fx = load(path)
    verdict = await Guard(modelguard.Catalog.default()).check(
        fx["method"], fx["target"], fx["headers"], fx["raw"])
    assert not verdict.allowed and verdict.reason == "unsupported_capability"
    assert [v.capability for v in verdict.violations] == ["thinking"]
    message = verdict.error["error"]["message"]
    assert "at reasoning" in message and 'model_reasoning_effort="none"' in message


@pytest.mark.parametrize("path", CODEX, ids=ids(CODEX))
async def test_codex_clamp_lowers_a_reasoning_budget_with_the_cap(path: Path) -> None:
    """A Responses ``reasoning.max_tokens`` must stay below ``max_output_tokens``: clamping the
    cap lowers the budget in proportion, and nothing else changes (decisions.md §12)."""
    fx = load(path)
    doc = {**fx["doc"], "max_output_tokens": 32000,
           "reasoning": {"effort": "high", "max_tokens": 20000, "summary": "auto"}}
    raw = json.dumps(doc).encode()
    verdict = await check(fx, {"tool_use", "streaming", "thinking", "vision", "openai"},
                          actions={"max_tokens": "clamp"}, body=raw)
    assert verdict.allowed, verdict.body
    budget = 20000 * LIMIT // 32000  # the budget keeps its share of the cap
    assert verdict.adjustments == (f"max_tokens={LIMIT}", f"thinking_budget={budget}")
    want = copy.deepcopy(doc)
    want["max_output_tokens"] = LIMIT
    want["reasoning"]["max_tokens"] = budget
    assert pairs(verdict.rewritten_body) == pairs(json.dumps(want))
