"""The four coding-agent CLIs, run for real, non-interactively and offline, through the guard.

Each test starts the stand-in gateway (catalog files on ``GET /v1/models``, the four wire shapes),
a guarded front on it (the ``modelguard serve`` app, or a FastAPI gateway with the middleware),
and runs one CLI against the front. The tap in front records what the agent sent and got; the
stand-in records what reached it. Every test also checks the suite-wide promises: no 5xx, and
every request the guard let through reached the stand-in byte for byte.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .agents import CLIENTS, ROOT, AgentRun, run_agent
from .conftest import NEEDS_ALL_VIOLATIONS, NEEDS_COMPAT, NEEDS_RESPONSES, RUNS
from .fronts import FRONTS, Tap, front
from .standin import ANSWER, AgentStandIn
from .workspace import NOTE, PICTURE

pytestmark = pytest.mark.usefixtures("agents_installed")

#: Models of tests/clients/catalogs/agents.json, per client and scenario.
CAPABLE = {"claude": "claude-sonnet-4-6", "gemini": "gemini-3-1-pro", "codex": "gpt-5-4",
           "qwen": "qwen3-coder-plus"}
#: Near-misses of a real slug (dots for dashes, a missing suffix).
UNKNOWN = {"claude": "claude-sonnet-4.6", "gemini": "gemini-3.1-pro", "codex": "gpt-5.4",
           "qwen": "qwen3-coder"}
#: Models without vision. Qwen Code only sends images to slugs it believes take them (gpt-*).
NO_VISION = {"claude": "deepseek-v4-pro", "gemini": "gemini-2-5-flash-lite",
             "codex": "gpt-5-4-nano", "qwen": "gpt-5-4-nano"}
#: A model that lacks exactly one capability every agent needs: tool use.
NO_TOOLS = "gpt-5-4-chat"
#: A model with almost nothing: the agents' requests break several rules at once.
BARE = "minimax-m2-5"
#: Models lacking only what the agent's own settings can switch off, and those settings.
HINTED = {
    "claude": ("claude-haiku-4-5", ["MAX_THINKING_TOKENS=0", "DISABLE_PROMPT_CACHING=1",
                                    "CLAUDE_CODE_MAX_OUTPUT_TOKENS=8192"]),
    "gemini": ("gemini-3-flash-lite", ["thinkingBudget"]),
    "codex": ("gpt-5-4-mini", ['model_reasoning_effort="none"']),
    "qwen": ("glm-5", ["QWEN_CODE_MAX_OUTPUT_TOKENS=16384"]),
}
#: The gateway's documented catalog (the bundled snapshot) and a model each agent would pick.
DOCUMENTED = {"claude": "claude-sonnet-4-6", "gemini": "gemini-3-1-pro", "codex": "gpt-5-4",
              "qwen": "deepseek-v4-pro"}

PLAIN = "Say hello in one word."


def read_prompt(workspace: Path, name: str) -> str:
    return f"MGREAD {workspace / name} Read that file with your tool and report what it holds."


def codex_needs_responses(client: str) -> Any:
    """Codex speaks only the Responses API: its refusals need that route guarded."""
    return [NEEDS_RESPONSES] if client == "codex" else []


def params_needing_responses() -> list[Any]:
    return [pytest.param(c, marks=codex_needs_responses(c)) for c in CLIENTS]


# -- the promises every run keeps -----------------------------------------------------------------


def assert_sound(tap: Tap, standin: AgentStandIn, run: AgentRun) -> None:
    """No hang, no 5xx, and every forwarded request reached the stand-in unchanged."""
    assert not run.timed_out, f"{run.client} hung\n{run.output[-3000:]}"
    for exchange in tap.exchanges:
        assert exchange.status is not None and exchange.status < 500, (
            exchange.method, exchange.path, exchange.status, bytes(exchange.response[:500]))
    forwarded = [e for e in tap.posts() if e.status == 200]
    reached = standin.posts()
    assert len(reached) == len(forwarded)
    for sent, got in zip(forwarded, reached, strict=True):
        assert (got.path, got.query) == (sent.path, sent.query)
        if sent.header("modelguard-adjusted") is None:
            assert got.body == bytes(sent.body), f"{run.client}: {sent.path} body changed"
        else:  # an action rewrote it (decisions.md §12): only the adjusted fields differ
            assert without_adjustable(json.loads(got.body)) == without_adjustable(
                json.loads(sent.body)), f"{run.client}: {sent.path} changed beyond the actions"


#: Fields the compat actions remove or lower (decisions.md §12), in the four shapes.
ADJUSTABLE = {"cache_control", "thinking", "reasoning", "reasoning_effort", "thinkingConfig",
              "max_tokens", "max_completion_tokens", "max_output_tokens", "maxOutputTokens",
              "prompt_cache_breakpoint"}


def without_adjustable(node: Any) -> Any:
    """``node`` without what an action may change, on both sides of the comparison (Anthropic
    context editing's clear_thinking_* strategy goes with thinking, and its holder if emptied)."""
    if isinstance(node, dict):
        out = {k: without_adjustable(v) for k, v in node.items() if k not in ADJUSTABLE}
        if out.get("context_management") == {"edits": []}:
            del out["context_management"]
        return out
    if isinstance(node, list):
        return [without_adjustable(v) for v in node if v != "reasoning.encrypted_content"
                and not (isinstance(v, dict)
                         and str(v.get("type", "")).startswith("clear_thinking_"))]
    return node


def refusals(tap: Tap) -> list[dict[str, Any]]:
    return [json.loads(e.response) for e in tap.posts() if e.status == 400]


def refusal_text(envelope: dict[str, Any]) -> str:
    return str(envelope["error"]["message"])


def shown(run: AgentRun, message: str) -> bool:
    """The refusal text reached the user (output may wrap or escape it)."""
    flat = re.sub(r"\s+", " ", run.output.replace('\\"', '"').replace("\\n", " "))
    return message[:60] in flat


def answered(run: AgentRun, tools: int) -> bool:
    return f"{ANSWER} tools={tools}" in run.stdout


def summary(run: AgentRun, tap: Tap, standin: AgentStandIn) -> str:
    """What happened, in a few words (for the scenario table)."""
    parts: list[str] = []
    for exchange in tap.posts():
        if exchange.status == 200:
            parts.append("200")
            continue
        error = json.loads(exchange.response).get("error", {})
        token = ((error.get("details") or [{}])[0].get("reason")  # Gemini
                 or (error.get("code") if isinstance(error.get("code"), str) else None)
                 or error.get("type"))
        parts.append(f"{exchange.status} {token}")
    runs = [(k, len(list(g))) for k, g in itertools.groupby(parts)]
    parts = [k if n == 1 else f"{k} x{n}" for k, n in runs]
    answer = re.search(rf"{ANSWER} tools=\d", run.stdout)
    said = f"answer printed ({answer.group().split()[-1]})" if answer else (
        "refusal shown" if any(shown(run, refusal_text(r)) for r in refusals(tap))
        else "no answer")
    adjusted = sorted({a for e in tap.posts() if (a := e.header("modelguard-adjusted"))})
    changed = f" (adjusted: {' / '.join(adjusted)})" if adjusted else ""
    return f"{', '.join(parts)}{changed}; {len(standin.posts())} reached the gateway; {said}"


def go(client: str, kind: str, catalog: str, model: str, prompt: str, workspace: Path,
       standin_for: Any, *, options: dict[str, Any] | None = None,
       **run: Any) -> tuple[AgentRun, Tap, AgentStandIn]:
    url, standin = standin_for(catalog)
    with front(kind, url, **(options or {})) as (front_url, tap):
        result = run_agent(client, front_url, model, prompt, workdir=workspace, **run)
    assert_sound(tap, standin, result)
    RUNS.append({"client": client, "front": kind, "model": model,
                 "seen": summary(result, tap, standin)})
    return result, tap, standin


def expect(text: str) -> Any:
    """The scenario's expected outcome, for the scenario table."""
    def mark(fn: Any) -> Any:
        fn.expected = text
        return fn
    return mark


# -- scenarios ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", FRONTS)
@pytest.mark.parametrize("client", CLIENTS)
@expect("answer printed after a file read; every request forwarded byte for byte")
def test_capable_model_answers_and_is_forwarded_byte_for_byte(client: str, kind: str,
                                                               workspace: Path,
                                                               standin_for: Any) -> None:
    """Capable model, file read through the agent's tool"""
    run, tap, standin = go(client, kind, "agents", CAPABLE[client],
                           read_prompt(workspace, NOTE), workspace, standin_for)
    assert run.returncode == 0, run.output[-3000:]
    assert answered(run, tools=1), run.output[-3000:]
    assert len(standin.posts()) >= 2  # the tool call, then the turn carrying the file back
    assert "4711" in standin.posts()[-1].body.decode()
    assert not refusals(tap)


#: Vision models each agent sends images to (Gemini CLI drops them for gemini-3-* slugs, Qwen Code
#: sends them only to slugs it takes for vision).
WITH_VISION = {"claude": "claude-sonnet-4-6", "gemini": "gemini-2-5-pro", "codex": "gpt-5-4",
               "qwen": "gpt-5-4"}


@pytest.mark.parametrize("client", CLIENTS)
@expect("answer printed after an image read; the image forwarded byte for byte")
def test_capable_model_gets_the_image_the_agent_read(client: str, workspace: Path,
                                                      standin_for: Any) -> None:
    """Vision model, image read through the agent's tool"""
    run, tap, standin = go(client, "sidecar", "agents", WITH_VISION[client],
                           read_prompt(workspace, PICTURE), workspace, standin_for)
    assert answered(run, tools=1), run.output[-3000:]
    assert not refusals(tap)
    last = standin.posts()[-1].body.decode()
    assert "iVBOR" in last or "/9j/" in last  # the PNG as read, or Qwen Code's JPEG of it


@pytest.mark.parametrize("kind", FRONTS)
@pytest.mark.parametrize("client", params_needing_responses())
@expect("400 unsupported_model (did you mean) before the gateway, shown to the user")
def test_unknown_slug_is_refused_before_the_gateway(client: str, kind: str, workspace: Path,
                                                     standin_for: Any) -> None:
    """Unknown slug"""
    run, tap, standin = go(client, kind, "agents", UNKNOWN[client], PLAIN, workspace,
                           standin_for)
    assert not standin.posts()
    found = refusals(tap)
    assert found, run.output[-3000:]
    message = refusal_text(found[0])
    assert UNKNOWN[client] in message and CAPABLE[client] in message  # did you mean ...
    assert shown(run, message), run.output[-3000:]
    assert not answered(run, tools=0)


@pytest.mark.parametrize("kind", FRONTS)
@pytest.mark.parametrize("client", params_needing_responses())
@expect("400 unsupported_capability tool_use before the gateway, shown to the user")
def test_missing_capability_is_refused_before_the_gateway(client: str, kind: str,
                                                          workspace: Path,
                                                          standin_for: Any) -> None:
    """Model without tool use"""
    run, tap, standin = go(client, kind, "agents", NO_TOOLS, PLAIN, workspace, standin_for)
    assert not standin.posts()
    found = refusals(tap)
    assert found, run.output[-3000:]
    message = refusal_text(found[0])
    assert NO_TOOLS in message and "tool_use" in message
    assert shown(run, message), run.output[-3000:]


@pytest.mark.parametrize("client", params_needing_responses())
@expect("tool-call turn forwarded; the turn carrying the image refused (vision); Qwen Code "
        "then retries without the image")
def test_image_read_by_the_agent_is_refused_on_a_model_without_vision(
        client: str, workspace: Path, standin_for: Any) -> None:
    """Image read through the agent's tool, model without vision"""
    run, tap, standin = go(client, "sidecar", "agents", NO_VISION[client],
                           read_prompt(workspace, PICTURE), workspace, standin_for)
    # The first turn (asking for the tool call) passes; the turn carrying the image does not.
    assert standin.posts(), run.output[-3000:]
    assert all("iVBOR" not in r.body.decode() and "/9j/" not in r.body.decode()
               for r in standin.posts())
    found = refusals(tap)
    assert found, run.output[-3000:]
    message = refusal_text(found[0])
    assert "vision" in message and NO_VISION[client] in message
    if client == "qwen":
        # Qwen Code answers a 400 on a media-bearing request by retrying once with the media
        # replaced by placeholders: the refusal turns into an answer without the image.
        assert answered(run, tools=1), run.output[-3000:]
        assert len(found) == 1
        assert '"modalities": {}' in message  # the client hint: declare the model text-only
    else:
        assert shown(run, message), run.output[-3000:]


@expect("Gemini CLI sends gemini-3.8-flash; 400 unsupported_model naming gemini-3-flash, shown")
def test_gemini_cli_replaces_a_slug_that_is_one_of_its_own_model_names(
        workspace: Path, standin_for: Any) -> None:
    """Slug Gemini CLI rewrites (gemini-3-flash)

    Gemini CLI 0.61 sends its own current flash model for the name "gemini-3-flash", which
    the gateway's documented catalog also uses: the guard refuses the name it did not list and
    points at the one the user typed."""
    run, tap, standin = go("gemini", "sidecar", "gateway", "gemini-3-flash", PLAIN, workspace,
                           standin_for)
    assert not standin.posts()
    found = refusals(tap)
    assert found and "/gemini-3.8-flash:" in tap.posts()[0].path
    message = refusal_text(found[0])
    assert "gemini-3.8-flash" in message and "gemini-3-flash" in message
    assert shown(run, message), run.output[-3000:]


@expect("Qwen Code sends a note instead of the image; nothing refused, answer printed")
def test_qwen_code_withholds_images_from_models_it_thinks_text_only(
        workspace: Path, standin_for: Any) -> None:
    """Image read on a slug Qwen Code takes for text-only

    Qwen Code replaces the image by a note for slugs it takes for text-only (deepseek-*):
    nothing to refuse, and nothing is refused."""
    run, tap, standin = go("qwen", "sidecar", "agents", "deepseek-v4-pro",
                           read_prompt(workspace, PICTURE), workspace, standin_for)
    assert answered(run, tools=1), run.output[-3000:]
    assert not refusals(tap)
    assert "does not support image input" in standin.posts()[-1].body.decode()


@NEEDS_ALL_VIOLATIONS
@pytest.mark.parametrize("client", params_needing_responses())
@expect("one 400 naming several violations, shown to the user")
def test_refusal_names_several_violations(client: str, workspace: Path,
                                          standin_for: Any) -> None:
    """Model lacking several features"""
    run, tap, standin = go(client, "sidecar", "agents", BARE, PLAIN, workspace, standin_for)
    assert not standin.posts()
    found = refusals(tap)
    assert found, run.output[-3000:]
    message = refusal_text(found[0])
    named = [tag for tag in ("tool_use", "thinking", "cache_control", "max_tokens", "8192")
             if tag in message]
    assert len(named) >= 2, message
    assert shown(run, message), run.output[-3000:]
    # the client hints ride along in the combined refusal, and reach the user too
    hint = SEVERAL_HINT[client]
    assert hint in message, message
    assert hint in re.sub(r"\s+", " ", run.output.replace('\\"', '"')), run.output[-3000:]


#: A setting of each agent's own that the several-violation refusal names (modelguard/hints.py).
SEVERAL_HINT = {"claude": "MAX_THINKING_TOKENS=0", "gemini": "thinkingBudget",
                "codex": 'model_reasoning_effort="none"', "qwen": "QWEN_CODE_MAX_OUTPUT_TOKENS"}


@NEEDS_COMPAT
@pytest.mark.parametrize("kind", FRONTS)
@pytest.mark.parametrize("client", params_needing_responses())
@expect("answer printed (hints stripped, output cap clamped; exactly those fields changed)")
def test_compat_preset_lets_the_agent_use_the_documented_catalog(
        client: str, kind: str, workspace: Path, standin_for: Any) -> None:
    """compat preset, documented catalog"""
    run, tap, standin = go(client, kind, "gateway", DOCUMENTED[client],
                           read_prompt(workspace, NOTE), workspace, standin_for,
                           options={"actions": "compat"})
    assert run.returncode == 0, run.output[-3000:]
    assert answered(run, tools=1), run.output[-3000:]
    assert not refusals(tap)
    if client in ("claude", "qwen"):  # max_tokens 32000 / 32768 above the 8192 cap: clamped
        # (the documented claude-sonnet-4-6 has thinking and cache_control, deepseek-v4-pro has
        # thinking and Qwen Code sends no cache breakpoint: the cap is the only change)
        for sent, got in zip(tap.posts(), standin.posts(), strict=True):
            assert sent.header("modelguard-adjusted") == "max_tokens=8192"
            want = json.loads(sent.body)
            assert want["max_tokens"] > 8192
            want["max_tokens"] = 8192
            assert pairs(got.body) == pairs(json.dumps(want))
    if client == "gemini":  # gemini-3-1-pro has all Gemini CLI uses: nothing to adjust
        assert all(e.header("modelguard-adjusted") is None for e in tap.posts())
    if client == "codex":
        # gpt-5-4 has no thinking: Responses `reasoning` and its encrypted-content include go,
        # nothing else changes (prompt_cache_key needs nothing and stays).
        for sent, got in zip(tap.posts(), standin.posts(), strict=True):
            assert sent.header("modelguard-adjusted") == "thinking=stripped"
            assert pairs(got.body) == pairs(json.dumps(
                codex_without_thinking(json.loads(sent.body))))
            if kind == "sidecar":  # the FastAPI gateway's own proxy sets its framing
                assert got.header("content-length") == str(len(got.body))
            assert got.header("content-encoding") is None


def pairs(raw: bytes | str) -> Any:
    """A JSON document with every object as a list of (key, value) pairs: order counts."""
    return json.loads(raw, object_pairs_hook=list)


def codex_without_thinking(doc: dict[str, Any]) -> dict[str, Any]:
    """The oracle for ``strip thinking`` on a Codex body (decisions.md §12): ``reasoning`` and
    the ``reasoning.encrypted_content`` include removed, every other member kept in place."""
    assert "reasoning" in doc and "reasoning.encrypted_content" in doc["include"]
    out = {k: v for k, v in doc.items() if k != "reasoning"}
    out["include"] = [i for i in doc["include"] if i != "reasoning.encrypted_content"]
    assert out["prompt_cache_key"] == doc["prompt_cache_key"]
    return out


@pytest.mark.parametrize("client", params_needing_responses())
@expect("400 naming the agent's own settings; with them set, answer printed")
def test_refusal_names_the_agents_own_setting_and_the_setting_works(
        client: str, workspace: Path, standin_for: Any) -> None:
    """Client hint, then the hinted setting"""
    model, settings = HINTED[client]
    run, tap, standin = go(client, "sidecar", "agents", model, PLAIN, workspace, standin_for)
    assert not standin.posts()
    found = refusals(tap)
    assert found, run.output[-3000:]
    message = refusal_text(found[0])
    for setting in settings:
        assert setting in message, message
    assert shown(run, message), run.output[-3000:]
    # Following the hint makes the same request pass.
    again, tap, standin = go(client, "sidecar", "agents", model, PLAIN, workspace, standin_for,
                             **FOLLOW_HINT[client])
    assert answered(again, tools=0), again.output[-3000:]
    assert not refusals(tap)


FOLLOW_HINT: dict[str, dict[str, Any]] = {
    "claude": {"extra_env": {"MAX_THINKING_TOKENS": "0", "DISABLE_PROMPT_CACHING": "1",
                             "CLAUDE_CODE_MAX_OUTPUT_TOKENS": "8192"}},
    "gemini": {"settings": {"modelConfigs": {"overrides": [{
        "match": {"model": "gemini-3-flash-lite"},
        "modelConfig": {"generateContentConfig": {
            "thinkingConfig": {"thinkingBudget": 0, "includeThoughts": False}}}}]}}},
    "codex": {"extra_args": ["-c", 'model_reasoning_effort="none"']},
    "qwen": {"extra_env": {"QWEN_CODE_MAX_OUTPUT_TOKENS": "16384"}},
}


@pytest.mark.parametrize("client", CLIENTS)
@expect("answer printed; access log: allowed, no client_disconnected")
def test_completed_streams_are_not_logged_as_client_disconnects(
        client: str, workspace: Path, standin_for: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Stream kept open after its final event

    Real gateways close a stream a little after its final event, and Codex hangs up as soon
    as it reads response.completed: the sidecar must log that as a completed request."""
    caplog.set_level(logging.INFO, logger="modelguard.access")
    url, standin = standin_for("agents")
    standin.linger = 1.0
    with front("sidecar", url) as (front_url, tap):
        run = run_agent(client, front_url, CAPABLE[client], PLAIN, workdir=workspace)
    assert_sound(tap, standin, run)
    assert answered(run, tools=0), run.output[-3000:]
    entries = [json.loads(r.getMessage()) for r in caplog.records
               if r.name == "modelguard.access"]
    posts = [e for e in entries if e["method"] == "POST"]
    assert posts and all(e["status"] == 200 for e in posts)
    assert not [e for e in posts if e.get("client_disconnected")], posts


# -- the real command -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def modelguard_serve(upstream: str, *extra: str) -> Iterator[str]:
    """``modelguard serve`` as a user runs it (a subprocess), on a free loopback port."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelguard", "serve", "--upstream", upstream, "--port",
         str(port), "--shutdown-timeout", "2", *extra],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code < 500:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "modelguard serve did not come up"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.mark.parametrize("client", params_needing_responses())
@expect("capable model: answer printed; unknown slug: refusal shown, nothing forwarded")
def test_modelguard_serve_command(client: str, workspace: Path, standin_for: Any) -> None:
    """The modelguard serve command, as documented"""
    url, standin = standin_for("agents")
    with modelguard_serve(url) as front_url:
        good = run_agent(client, front_url, CAPABLE[client], read_prompt(workspace, NOTE),
                         workdir=workspace)
        assert answered(good, tools=1), good.output[-3000:]
        forwarded = len(standin.posts())
        bad = run_agent(client, front_url, UNKNOWN[client], PLAIN, workdir=workspace)
    assert not bad.timed_out and not answered(bad, tools=0)
    assert "is not available to this API key" in bad.output, bad.output[-3000:]
    assert len(standin.posts()) == forwarded  # the refused request never reached the gateway
    RUNS.append({"client": client, "front": "modelguard serve", "model": CAPABLE[client],
                 "seen": f"answer printed (tools=1); {forwarded} reached the gateway"})
    RUNS.append({"client": client, "front": "modelguard serve", "model": UNKNOWN[client],
                 "seen": "refusal shown; 0 reached the gateway"})


@NEEDS_COMPAT
@NEEDS_RESPONSES
@expect("modelguard serve --actions compat: answer printed, reasoning stripped at the gateway")
def test_codex_through_modelguard_serve_with_compat(workspace: Path, standin_for: Any) -> None:
    """The modelguard serve command with --actions compat (Codex, documented catalog)"""
    url, standin = standin_for("gateway")
    with modelguard_serve(url, "--actions", "compat") as front_url:
        run = run_agent("codex", front_url, DOCUMENTED["codex"], read_prompt(workspace, NOTE),
                        workdir=workspace)
    assert not run.timed_out and run.returncode == 0, run.output[-3000:]
    assert answered(run, tools=1), run.output[-3000:]
    reached = standin.posts()
    assert len(reached) == 2 and "4711" in reached[-1].body.decode()
    for got in reached:
        doc = json.loads(got.body, object_pairs_hook=list)
        keys = [k for k, _ in doc]
        assert "reasoning" not in keys and "prompt_cache_key" in keys
        assert "reasoning.encrypted_content" not in dict(doc)["include"]
        assert got.header("content-length") == str(len(got.body))
    RUNS.append({"client": "codex", "front": "modelguard serve --actions compat",
                 "model": DOCUMENTED["codex"],
                 "seen": f"answer printed (tools=1); {len(reached)} reached the gateway, "
                         "reasoning stripped"})


#: What ``compat`` adjusts on the models the client hints are about (tests/clients/catalogs/
#: agents.json): the ``modelguard-adjusted`` header of every forwarded turn.
COMPAT_ON_HINTED = {
    "claude": "cache_control=stripped; thinking=stripped; max_tokens=8192",
    "gemini": "thinking=stripped",
    "codex": "thinking=stripped",
    "qwen": "max_tokens=16384",
}


@NEEDS_COMPAT
@pytest.mark.parametrize("client", params_needing_responses())
@expect("answer printed; what the model lacks stripped or clamped, nothing else changed")
def test_compat_preset_on_a_model_lacking_what_the_agent_always_sends(
        client: str, workspace: Path, standin_for: Any) -> None:
    """compat preset, model lacking thinking / caching / the output cap"""
    model, _ = HINTED[client]
    run, tap, standin = go(client, "sidecar", "agents", model, read_prompt(workspace, NOTE),
                           workspace, standin_for, options={"actions": "compat"})
    assert run.returncode == 0, run.output[-3000:]
    assert answered(run, tools=1), run.output[-3000:]
    assert not refusals(tap)
    for sent, got in zip(tap.posts(), standin.posts(), strict=True):
        assert sent.header("modelguard-adjusted") == COMPAT_ON_HINTED[client]
        assert got.header("content-length") == str(len(got.body))
        original = json.loads(sent.body)
        if client == "codex":
            want = codex_without_thinking(original)
        elif client == "gemini":
            want = original
            del want["generationConfig"]["thinkingConfig"]
        elif client == "qwen":
            want = dict(original, max_tokens=16384)
        else:  # Claude Code: cache_control everywhere, thinking (assert_sound checks the rest)
            sent_doc = json.loads(got.body)
            assert sent_doc["max_tokens"] == 8192 and "thinking" not in sent_doc
            assert '"cache_control"' not in got.body.decode()
            assert "clear_thinking_" not in got.body.decode()
            continue
        assert pairs(got.body) == pairs(json.dumps(want))
