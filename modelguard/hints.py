"""Client hints: when a known coding agent sent the refused request, name its own setting.

Agent CLIs send expensive features on every turn (Claude Code: ``max_tokens: 32000``, cache
breakpoints and thinking; Codex: reasoning; Gemini CLI: thoughts; Qwen Code: ``max_tokens:
32768``). A refusal that only says "remove thinking" leaves the user hunting through the agent's
documentation; the agent's own switch for that feature is what they need. Both tables are data:
adding an agent or a setting is adding a row. Every setting here was checked against the agent's
pinned release (tests/clients).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any, Protocol

__all__ = ["AGENTS", "HINTS", "agent_of", "annotate", "hint"]

#: (User-Agent pattern, agent name). The first match wins.
AGENTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^claude-cli/"), "Claude Code"),
    (re.compile(r"^GeminiCLI(-[a-z]+)?/"), "Gemini CLI"),
    (re.compile(r"^codex_[a-z_]+/"), "Codex CLI"),
    (re.compile(r"^QwenCode/"), "Qwen Code"),
)

#: (agent, what was refused) -> the agent's own setting that stops sending it. "What was refused"
#: is a capability tag, ``max_tokens`` (the output cap), or ``web_search`` (a server-run search
#: tool the model's vendor does not run). ``{limit}`` is the model's output cap, ``{model}`` its id.
HINTS: dict[tuple[str, str], str] = {
    ("Claude Code", "thinking"): "set MAX_THINKING_TOKENS=0",
    ("Claude Code", "cache_control"): "set DISABLE_PROMPT_CACHING=1",
    ("Claude Code", "max_tokens"): "set CLAUDE_CODE_MAX_OUTPUT_TOKENS={limit}",
    ("Gemini CLI", "thinking"): (
        'add {{"match": {{"model": "{model}"}}, "modelConfig": {{"generateContentConfig": '
        '{{"thinkingConfig": {{"thinkingBudget": 0, "includeThoughts": false}}}}}}}} to '
        "modelConfigs.overrides in ~/.gemini/settings.json"),
    ("Gemini CLI", "max_tokens"): (
        'set maxOutputTokens to at most {limit} in that model\'s modelConfigs override '
        "(generateContentConfig) in ~/.gemini/settings.json"),
    ("Codex CLI", "thinking"): (
        'run with -c model_reasoning_effort="none" (or model_reasoning_effort = "none" in '
        "config.toml)"),
    ("Codex CLI", "web_search"): (
        'run with -c web_search="disabled" (or web_search = "disabled" in config.toml)'),
    ("Qwen Code", "max_tokens"): "set QWEN_CODE_MAX_OUTPUT_TOKENS={limit}",
    ("Qwen Code", "vision"): (
        'declare the model text-only ("generationConfig": {{"modalities": {{}}}} on its entry '
        'in modelProviders.openai in ~/.qwen/settings.json) so Qwen Code stops sending images'),
}

_MAX_TOKENS = "max_tokens_exceeded"
_CAPABILITY = "unsupported_capability"
_WEB_SEARCH = re.compile(r"\bweb_search")


class _Violation(Protocol):
    reason: str
    message: str
    model: str | None
    capability: str | None


class _Model(Protocol):
    max_output_tokens: int | None


class _Verdict(Protocol):
    allowed: bool
    body: bytes
    violations: Sequence[Any]
    model: _Model | None


def agent_of(user_agent: str | None) -> str | None:
    """The coding agent a User-Agent names, or None."""
    if not user_agent:
        return None
    for pattern, name in AGENTS:
        if pattern.match(user_agent):
            return name
    return None


def _key(violation: _Violation) -> str | None:
    if violation.reason == _MAX_TOKENS:
        return "max_tokens"
    if violation.reason != _CAPABILITY:
        return None
    if violation.capability == "tool_use" and _WEB_SEARCH.search(violation.message):
        return "web_search"
    return violation.capability


def hint(user_agent: str | None, violations: Sequence[_Violation], *,
         limit: int | None = None) -> str | None:
    """The sentence naming the agent's settings that avoid ``violations``, or None.

    ``limit`` is the model's ``max_output_tokens`` (for the output-cap settings). The sentence
    says whether the settings avoid the whole refusal or only part of it.
    """
    agent = agent_of(user_agent)
    if agent is None or not violations:
        return None
    settings: list[str] = []
    covered = 0
    for violation in violations:
        key = _key(violation)
        template = HINTS.get((agent, key)) if key else None
        if template is None or (key == "max_tokens" and limit is None and "{limit}" in template):
            continue
        covered += 1
        text = f"{template.format(limit=limit, model=violation.model or '')} ({key})"
        if text not in settings:
            settings.append(text)
    if not settings:
        return None
    lead = (f"{agent} can avoid this refusal with its own settings"
            if covered == len(violations) else f"{agent} settings that avoid part of this refusal")
    return f"{lead}: {_join(settings)}."


def _join(items: Iterable[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else "; ".join(items[:-1]) + "; and " + items[-1]


#: The one header the hints read.
USER_AGENT = "user-agent"


def annotate(verdict: _Verdict, headers: Iterable[tuple[str, str]]) -> _Verdict:
    """``verdict`` with the agent hint appended to its refusal message (the same object when
    there is nothing to add). Every envelope shape keeps its message at ``error.message``."""
    if verdict.allowed or not verdict.body or not verdict.violations:
        return verdict
    user_agent = next((value for name, value in headers if name == USER_AGENT), None)
    if agent_of(user_agent) is None:
        return verdict
    refused = [v for v in verdict.violations if getattr(v, "refused", True)]
    limit = next((v.limit for v in refused if getattr(v, "limit", None) is not None),
                 verdict.model.max_output_tokens if verdict.model is not None else None)
    text = hint(user_agent, refused, limit=limit)
    if text is None:
        return verdict
    doc = json.loads(verdict.body)
    doc["error"]["message"] = f"{doc['error']['message']} {text}"
    return replace(verdict, body=json.dumps(doc).encode())  # type: ignore[type-var]
