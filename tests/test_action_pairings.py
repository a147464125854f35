"""Every action × protocol × tag pairing, on bodies the official SDKs put on the wire.

For each captured body and each tag it needs, a model lacking just that tag meets every action
the tag takes, with the body sent plain and gzip-compressed:

- ``refuse``: refused as before; nothing to forward.
- ``allow``: forwarded unchanged (no rewritten body), the violation recorded as allowed.
- ``strip`` (``cache_control``, ``thinking``): forwarded rewritten. The rewritten body is
  compared with an oracle written here independently of the rewrite tables: the original
  document with the members the feature lives in deleted, matched by path patterns. Keys keep
  their order (compared as lists of pairs), thinking history stays, and the guard finds no
  trace of the feature in the result. Gemini ``cachedContent`` cannot be stripped: refused.
- ``clamp`` (``max_tokens``): every body with an output cap above the model's limit is
  forwarded with exactly that cap lowered.
"""

from __future__ import annotations

import copy
import gzip
import json
import re
import zlib
from pathlib import Path
from typing import Any

import pytest

from modelguard import Guard

from .conftest import ALL_TAGS, SDK_FIXTURES, catalog_of, load_fixture, model_entry
from .test_sdk_fixtures import VENDOR, _body, _target

MODEL = "model-under-test"

#: Where each strippable feature lives, per protocol: regular expressions over the paths of
#: members (``a.b[2].c``). A member matching is deleted with everything under it.
STRIPPED = {
    ("anthropic", "cache_control"): [r"(^|\.)cache_control$"],
    ("anthropic", "thinking"): [r"^thinking$", r"^fallbacks\[\d+\]\.thinking$",
                                (r"^context_management\.edits\[\d+\]$", "clear_thinking_")],
    ("openai", "cache_control"): [
        r"^messages\[\d+\]\.cache_control$", r"^messages\[\d+\]\.content\[\d+\]\.cache_control$",
        r"^messages\[\d+\]\.content\[\d+\]\.prompt_cache_breakpoint$",
        r"^tools\[\d+\]\.cache_control$", r"^prompt_cache_options\.prewarm$"],
    ("openai", "thinking"): [r"^(reasoning_effort|reasoning|thinking|enable_thinking)$",
                             r"^chat_template_kwargs\.enable_thinking$"],
    ("gemini", "thinking"): [r"^(generationConfig|generation_config)\."
                             r"(thinkingConfig|thinking_config)$"],
}
#: Never inside user data: a tool's schema or a tool call's input may use any name.
USER_DATA = re.compile(r"(^|\.)(input_schema|input|parameters)(\.|\[|$)")
ACTIONS_OF = {tag: ["refuse", "allow"] + (["strip"] if tag in ("cache_control", "thinking")
                                          else []) for tag in ALL_TAGS}


def _cases() -> list[Any]:
    cases = []
    for path in SDK_FIXTURES:
        fx = load_fixture(path)
        for tag in fx["tags"]:
            for action in ACTIONS_OF[tag]:
                for coding in ("identity", "gzip"):
                    cases.append(pytest.param(path, tag, action, coding,
                                              id=f"{path.stem}-{tag}-{action}-{coding}"))
    return cases


def _encode(body: bytes, coding: str) -> tuple[bytes, dict[str, str]]:
    if coding == "gzip":
        return gzip.compress(body), {"content-encoding": "gzip"}
    if coding == "deflate":
        return zlib.compress(body), {"content-encoding": "deflate"}
    return body, {}


def pairs(raw: bytes | str) -> Any:
    """A JSON document with every object as a list of (key, value) pairs: order counts."""
    return json.loads(raw, object_pairs_hook=list)


def expected_strip(doc: Any, patterns: list[Any]) -> Any:
    """``doc`` with every member whose path matches a pattern deleted (the oracle).

    A pattern is a regular expression, or (expression, type prefix) for list elements that
    go only when their ``type`` starts with the prefix. An object left with only an emptied
    list of such elements goes as a whole (Anthropic ``context_management``).
    """
    plain = [re.compile(p) for p in patterns if isinstance(p, str)]
    typed = [(re.compile(p), prefix) for p, prefix in (q for q in patterns
                                                      if not isinstance(q, str))]

    def gone(path: str, value: Any) -> bool:
        if USER_DATA.search(path):
            return False
        if any(p.search(path) for p in plain):
            return True
        return any(p.search(path) and isinstance(value, dict)
                   and str(value.get("type", "")).startswith(prefix) for p, prefix in typed)

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                child = f"{path}.{key}" if path else key
                if gone(child, value):
                    continue
                kept = walk(value, child)
                if isinstance(value, dict) and len(value) == 1 and kept != value and kept \
                        and all(v == [] for v in kept.values()):
                    continue  # it only held what went
                out[key] = kept
            return out
        if isinstance(node, list):
            return [walk(item, f"{path}[{i}]") for i, item in enumerate(node)
                    if not gone(f"{path}[{i}]", item)]
        return node

    return walk(doc, "")


def _catalog(fx: dict, tags: set[str], limit: int | None = None):
    vendor = VENDOR[fx["protocol"]]
    return catalog_of(model_entry(MODEL, tags, owned_by=vendor, max_output_tokens=limit),
                      model_entry("everything", set(ALL_TAGS), vendor))


async def _check(fx: dict, guard: Guard, body: bytes, extra: dict[str, str]) -> Any:
    headers = {**fx["headers"], **extra}
    return await guard.check(fx["method"], _target(fx, MODEL), headers, body)


@pytest.mark.parametrize(("path", "tag", "action", "coding"), _cases())
async def test_action_on_a_missing_tag(path: Path, tag: str, action: str, coding: str) -> None:
    fx = load_fixture(path)
    original = _body(fx, MODEL)
    sent, extra = _encode(original, coding)
    guard = Guard(_catalog(fx, set(fx["tags"]) - {tag}), actions={tag: action})
    verdict = await _check(fx, guard, sent, extra)
    mine = [v for v in verdict.violations if v.capability == tag]
    assert mine and len({v.action for v in mine}) == 1, verdict.violations
    strippable = action == "strip" and (fx["protocol"], tag) in STRIPPED
    if action == "refuse" or (action == "strip" and not strippable):
        assert not verdict.allowed and verdict.status == 400
        assert verdict.rewritten_body is None and verdict.adjustments == ()
        assert mine[0].action == "refuse" and verdict.first is mine[0]
        return
    assert verdict.allowed, verdict.body
    assert verdict.status == 200 and verdict.body == b""
    if action == "allow":
        assert mine[0].action == "allow"
        assert verdict.rewritten_body is None and verdict.adjustments == ()
        return
    assert mine[0].action == "strip"
    assert verdict.adjustments == (f"{tag}=stripped",)
    rewritten = verdict.rewritten_body
    assert rewritten is not None and not rewritten.startswith(b"\x1f\x8b")  # decoded
    want = expected_strip(json.loads(original), STRIPPED[(fx["protocol"], tag)])
    assert pairs(rewritten) == pairs(json.dumps(want))
    assert json.loads(rewritten) != json.loads(original)
    # what remains passes the guard as far as this tag goes, with no action at all
    again = await _check(fx, Guard(_catalog(fx, set(fx["tags"]) - {tag})), rewritten, {})
    assert tag not in {v.capability for v in again.violations}, again.violations
    assert again.allowed and again.required == frozenset(fx["tags"]) - {tag}


def _capped() -> list[Any]:
    """Every captured body with an output cap, for the clamp action."""
    cases = []
    for path in SDK_FIXTURES:
        fx = load_fixture(path)
        for field, value in _caps(fx):
            if value > 1:
                cases.append(pytest.param(path, field, value, id=f"{path.stem}-{field}"))
    return cases


def _caps(fx: dict) -> list[tuple[str, int]]:
    body = fx["body"]
    if fx["protocol"] == "gemini":
        if fx["path"].endswith(":countTokens"):
            return []
        for key in ("generationConfig", "generation_config"):
            config = body.get(key) or {}
            for name in ("maxOutputTokens", "max_output_tokens"):
                if name in config:
                    return [(f"{key}.{name}", int(config[name]))]
        return []
    if fx["path"].endswith("count_tokens"):
        return []
    return [(name, body[name]) for name in ("max_completion_tokens", "max_tokens")
            if isinstance(body.get(name), int)]


@pytest.mark.parametrize(("path", "field", "value"), _capped())
@pytest.mark.parametrize("action", ["refuse", "allow", "clamp"])
@pytest.mark.parametrize("coding", ["identity", "deflate"])
async def test_output_cap_actions(path: Path, field: str, value: int, action: str,
                                  coding: str) -> None:
    fx = load_fixture(path)
    limit = value - 1
    original = _body(fx, MODEL)
    sent, extra = _encode(original, coding)
    guard = Guard(_catalog(fx, set(fx["tags"]), limit), actions={"max_tokens": action})
    verdict = await _check(fx, guard, sent, extra)
    caps = [v for v in verdict.violations if v.reason == "max_tokens_exceeded"]
    assert [v.path for v in caps] == [field] and caps[0].limit == limit
    if action == "refuse":
        assert not verdict.allowed and verdict.token in ("invalid_request_error",
                                                         "max_tokens_exceeded",
                                                         "MAX_TOKENS_EXCEEDED")
        return
    assert verdict.allowed
    if action == "allow":
        assert verdict.rewritten_body is None
        return
    assert verdict.rewritten_body is not None
    want = copy.deepcopy(json.loads(original))
    holder = want
    keys = field.split(".")
    for key in keys[:-1]:
        holder = holder[key]
    holder[keys[-1]] = str(limit) if isinstance(holder[keys[-1]], str) else limit
    assert pairs(verdict.rewritten_body) == pairs(json.dumps(want))
    assert verdict.adjustments == (f"max_tokens={limit}",)


@pytest.mark.parametrize(("route", "tag"), [("/v1/images/generations", "image_gen"),
                                            ("/v1/videos/generations", "video_gen")])
@pytest.mark.parametrize("action", ["refuse", "allow", "strip", "clamp"])
@pytest.mark.parametrize("coding", ["identity", "gzip"])
async def test_generation_routes(route: str, tag: str, action: str, coding: str) -> None:
    """The OpenAI generation routes (no SDK body above needs video_gen on the OpenAI shape)."""
    body, extra = _encode(json.dumps({"model": MODEL, "prompt": "a cat"}).encode(), coding)
    catalog = catalog_of(model_entry(MODEL, set(), "openai"))
    if action in ("strip", "clamp"):
        with pytest.raises(ValueError, match=f"{tag} cannot be '{action}'"):
            Guard(catalog, actions={tag: action})
        return
    verdict = await Guard(catalog, actions={tag: action}).check("POST", route, extra, body)
    assert [(v.capability, v.action) for v in verdict.violations] == [(tag, action)]
    assert verdict.allowed == (action == "allow") and verdict.rewritten_body is None
    if action == "refuse":
        assert verdict.error["error"]["code"] == "unsupported_capability"
