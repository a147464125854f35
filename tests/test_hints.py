"""Client hints: the agent a User-Agent names, the settings a refusal points it to, and the hint
in real refusals of the captured agent bodies (tests/fixtures/agents)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelguard import Catalog, Guard, Verdict
from modelguard.catalog import ModelInfo
from modelguard.errors import Reason
from modelguard.hints import AGENTS, HINTS, agent_of, annotate, hint
from modelguard.policy import Violation
from modelguard.verdict import refusal

FIXTURES = Path(__file__).parent / "fixtures" / "agents"

#: User-Agent headers the pinned agent releases really sent (see tests/fixtures/agents).
REAL_AGENTS = {
    "claude-cli/2.1.332 (external, sdk-cli)": "Claude Code",
    "GeminiCLI-tui/0.61.0/gemini-3-1-pro (linux; x64; terminal)": "Gemini CLI",
    "codex_exec/0.171.0 (Debian 12.0.0; x86_64) dumb (codex_exec; 0.171.0)": "Codex CLI",
    "QwenCode/0.24.4 (linux; x64)": "Qwen Code",
}


def capability(tag: str, model: str = "m", message: str = "") -> Violation:
    return Violation(Reason.UNSUPPORTED_CAPABILITY, message or f"no {tag}", "x", model, tag)


CAP = Violation(Reason.MAX_TOKENS_EXCEEDED, "max_tokens is 32000, above 8192", "max_tokens", "m")


@pytest.mark.parametrize(("user_agent", "agent"), REAL_AGENTS.items())
def test_real_user_agents_name_their_agent(user_agent: str, agent: str) -> None:
    assert agent_of(user_agent) == agent


def test_every_user_agent_of_the_captured_bodies_names_an_agent() -> None:
    for path in sorted(FIXTURES.glob("*.json")):
        record = json.loads(path.read_text())
        assert agent_of(record["headers"]["user-agent"]) is not None, path.name


@pytest.mark.parametrize("user_agent", [
    None, "", "python-httpx/0.28", "Anthropic/Python 2.14.0", "OpenAI/Python 3.57.0",
    "google-genai-sdk/3.6.0 gl-python/3.11", "Mozilla/5.0", "my-claude-cli/1.0",
    "xQwenCode/1", "codex/1.0"])
def test_other_user_agents_get_no_hint(user_agent: str | None) -> None:
    assert agent_of(user_agent) is None
    assert hint(user_agent, [capability("thinking"), CAP], limit=8192) is None


def test_claude_code_settings_for_each_avoidable_feature() -> None:
    ua = "claude-cli/2.1.332 (external, sdk-cli)"
    text = hint(ua, [capability("thinking"), capability("cache_control"), CAP], limit=8192)
    assert text is not None and text.startswith("Claude Code can avoid this refusal")
    for setting in ("MAX_THINKING_TOKENS=0", "DISABLE_PROMPT_CACHING=1",
                    "CLAUDE_CODE_MAX_OUTPUT_TOKENS=8192"):
        assert setting in text


def test_a_partly_avoidable_refusal_says_so() -> None:
    text = hint("claude-cli/2.1.332", [capability("vision"), capability("thinking")])
    assert text is not None
    assert "part of this refusal" in text and "MAX_THINKING_TOKENS=0" in text
    assert "vision" not in text


def test_nothing_avoidable_gives_no_hint() -> None:
    assert hint("claude-cli/2.1.332", [capability("vision"), capability("tool_use")]) is None
    unknown = Violation(Reason.UNSUPPORTED_MODEL, "Model 'x' is not available", "model", "x")
    assert hint("claude-cli/2.1.332", [unknown]) is None


def test_the_output_cap_setting_needs_the_limit() -> None:
    assert hint("QwenCode/0.24.4", [CAP]) is None
    assert "QWEN_CODE_MAX_OUTPUT_TOKENS=16384" in (hint("QwenCode/0.24.4", [CAP],
                                                        limit=16384) or "")


def test_gemini_override_names_the_model() -> None:
    text = hint("GeminiCLI/0.61.0", [capability("thinking", model="gemini-3-flash")])
    assert text is not None
    assert '"match": {"model": "gemini-3-flash"}' in text and "thinkingBudget" in text
    assert "modelConfigs.overrides" in text


def test_qwen_code_is_told_to_declare_a_model_text_only() -> None:
    text = hint("QwenCode/0.24.4 (linux; x64)", [capability("vision", model="gpt-5-4-nano")])
    assert text is not None and '"modalities": {}' in text and "modelProviders" in text


def test_codex_web_search_is_told_apart_from_tool_use() -> None:
    search = capability("tool_use", message="web_search runs on OpenAI; model is deepseek's")
    assert 'web_search="disabled"' in (hint("codex_exec/0.171.0", [search]) or "")
    assert hint("codex_exec/0.171.0", [capability("tool_use")]) is None


def _refused(*violations: Violation, limit: int | None = 8192) -> Verdict:
    model = ModelInfo.model_validate({"id": "m", "max_output_tokens": limit})
    return refusal("anthropic", "messages", violations[0], model=model,
                   violations=tuple(violations), model_id="m")


def test_annotate_appends_the_hint_to_the_envelope_message() -> None:
    verdict = _refused(capability("thinking"), CAP)
    hinted = annotate(verdict, [("user-agent", "claude-cli/2.1.332")])
    before, after = json.loads(verdict.body), json.loads(hinted.body)
    assert after["error"]["message"].startswith(before["error"]["message"] + " Claude Code")
    assert "MAX_THINKING_TOKENS=0" in after["error"]["message"]
    assert "CLAUDE_CODE_MAX_OUTPUT_TOKENS=8192" in after["error"]["message"]
    after["error"]["message"] = before["error"]["message"]
    assert after == before  # nothing else changes
    assert (hinted.status, hinted.headers, hinted.violations) == (
        verdict.status, verdict.headers, verdict.violations)


@pytest.mark.parametrize("protocol", ["anthropic", "openai", "gemini"])
def test_annotate_keeps_each_envelope_shape(protocol: str) -> None:
    verdict = refusal(protocol, "messages", CAP, violations=(CAP,), model=ModelInfo.model_validate(
        {"id": "m", "max_output_tokens": 100}), model_id="m")
    hinted = annotate(verdict, [("user-agent", "QwenCode/0.24.4")])
    doc = json.loads(hinted.body)
    assert "QWEN_CODE_MAX_OUTPUT_TOKENS=100" in doc["error"]["message"]
    assert set(doc) == set(json.loads(verdict.body))


def test_annotate_leaves_other_verdicts_alone() -> None:
    verdict = _refused(capability("thinking"))
    assert annotate(verdict, [("user-agent", "curl/8")]) is verdict
    assert annotate(verdict, []) is verdict
    unavoidable = _refused(capability("vision"))
    assert annotate(unavoidable, [("user-agent", "claude-cli/2")]) is unavoidable
    allowed = Verdict(allowed=True)
    assert annotate(allowed, [("user-agent", "claude-cli/2")]) is allowed


def test_table_rows_name_known_agents_and_format_cleanly() -> None:
    names = {name for _, name in AGENTS}
    for (agent, key), template in HINTS.items():
        assert agent in names
        assert template.format(limit=1, model="m")  # every placeholder is one we fill
        assert key in {"thinking", "cache_control", "max_tokens", "web_search", "vision"}


@given(st.text(max_size=200), st.lists(st.sampled_from(
    ["thinking", "cache_control", "vision", "tool_use", "streaming", None]), max_size=5),
    st.one_of(st.none(), st.integers(0, 10**9)))
def test_hint_never_raises(user_agent: str, tags: list[str | None], limit: int | None) -> None:
    violations = [capability(t) if t else CAP for t in tags]
    text = hint(user_agent, violations, limit=limit)
    assert text is None or (agent_of(user_agent) is not None and text.endswith("."))


# -- in real refusals -------------------------------------------------------------------------


def _check(name: str, model: str) -> dict:
    record = json.loads((FIXTURES / name).read_text())
    body = json.loads(record["body"])
    path = record["path"]
    if "model" in body:
        body["model"] = model
    else:
        path = path.replace(path.split("/")[-1].split(":")[0], model)
    target = path + ("?" + record["query"] if record["query"] else "")
    verdict = asyncio.run(Guard(Catalog.default()).check(
        "POST", target, record["headers"], json.dumps(body).encode()))
    assert not verdict.allowed
    return json.loads(verdict.body)


def test_claude_code_body_on_a_model_without_thinking_names_its_settings() -> None:
    error = _check("claude-first-turn-0.json", "claude-haiku-4-5")["error"]
    assert error["type"] == "unsupported_capability"
    assert "MAX_THINKING_TOKENS=0" in error["message"]
    assert "CLAUDE_CODE_MAX_OUTPUT_TOKENS=8192" in error["message"]


def test_qwen_code_body_above_the_output_cap_names_its_setting() -> None:
    error = _check("qwen-first-turn-0.json", "deepseek-v4-pro")["error"]
    assert error["code"] == "max_tokens_exceeded"
    assert "QWEN_CODE_MAX_OUTPUT_TOKENS=8192" in error["message"]


def test_gemini_cli_body_on_a_model_without_thinking_names_its_override() -> None:
    error = _check("gemini-first-turn-0.json", "gpt-5-4")["error"]
    assert error["details"][0]["reason"] == "UNSUPPORTED_CAPABILITY"
    assert '"match": {"model": "gpt-5-4"}' in error["message"]


def test_sdk_bodies_get_no_hint() -> None:
    record = json.loads((FIXTURES / "claude-first-turn-0.json").read_text())
    body = json.loads(record["body"])
    body["model"] = "claude-haiku-4-5"
    verdict = asyncio.run(Guard(Catalog.default()).check(
        "POST", "/v1/messages", {"x-api-key": "k", "user-agent": "Anthropic/Python 2.14.0"},
        json.dumps(body).encode()))
    assert "MAX_THINKING_TOKENS" not in json.loads(verdict.body)["error"]["message"]
