"""Faithful rewrites for the ``strip`` and ``clamp`` actions (decisions.md §12). Pure.

A rewritten body is JSON equal to the original except for the removed or lowered fields:
every other member keeps its place and its value, number literals keep their exact text. The
body is parsed again here with a plain JSON parser (it already passed the strict reading, so
both read the same document); the readers' trees are never serialised, because they may
hold placeholders for long strings and subtrees the verdict does not read.

What each action touches is data, one row per (body shape, feature): adding a protocol is
adding rows (the Responses rows are here already).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii
from typing import Any, NamedTuple

from .routing import CHAT, COUNT, COUNT_TOKENS, GENERATE, MESSAGES, STREAM, Route

__all__ = ["Plan", "Rewritten", "Unfit", "apply", "can_strip", "shape_of"]

CACHE_CONTROL, THINKING = "cache_control", "thinking"
#: Order of the adjustments in the verdict and the ``modelguard-adjusted`` header.
STRIP_ORDER = (CACHE_CONTROL, THINKING)
EACH = "*"  # a path step: every element of a list

#: Route kind → body shape. A new route reads a known shape, or brings rows of its own (the
#: Responses kinds below are the names its routes are expected to use; a route kind missing
#: here simply cannot be stripped, and ``strip`` on it stays a refusal).
SHAPES: dict[str, str] = {
    MESSAGES: "messages", COUNT_TOKENS: "messages", CHAT: "chat",
    GENERATE: "gemini", STREAM: "gemini", COUNT: "gemini",
    "responses": "responses", "responses_input_tokens": "responses",
    "responses_compact": "responses",
}


def _g(name: str) -> tuple[str, str]:
    """A Gemini field under both spellings (proto3 JSON takes camelCase and snake_case)."""
    return name, re.sub(r"[A-Z]", lambda m: "_" + m.group().lower(), name)


class OfType(NamedTuple):
    """A path step: every element of a list whose ``type`` is ``value``."""

    value: str


class Remove(NamedTuple):
    """Remove the member at ``path``: keys, :data:`EACH` for every list element, :class:`OfType`
    for the elements of one type, and tuples for alternative spellings of one key."""

    path: tuple[Any, ...]


class RemoveEverywhere(NamedTuple):
    """Remove member ``key`` from the root and from every object reached through the members
    in ``enter`` (and through every value of the objects in ``enter_values``), at any depth.

    Only the API's own structure is entered, never user data such as tool schemas, tool
    inputs or unknown fields, where the same name means something else.
    """

    key: str
    enter: frozenset[str]
    enter_values: frozenset[str] = frozenset()


class RemoveItem(NamedTuple):
    """Remove the string ``value`` from the list at ``path``."""

    path: tuple[Any, ...]
    value: str


class RemoveTyped(NamedTuple):
    """Remove the objects of the list at ``path`` whose ``type`` starts with ``prefix``; when
    that empties the list, the member at ``drop`` goes too (it only held them)."""

    path: tuple[Any, ...]
    prefix: str
    drop: tuple[Any, ...] | None = None


Rule = Remove | RemoveEverywhere | RemoveItem | RemoveTyped

#: Where Anthropic content blocks live: system, messages, their content, tools, and the
#: nested content of tool results, search results, documents and fetched pages.
_ANTHROPIC_BLOCKS = frozenset({"system", "messages", "content", "tools", "source"})
#: Where Responses parts live: input items, their content and outputs, stored prompt variables.
_RESPONSES_PARTS = frozenset({"input", "instructions", "content", "output", "prompt"})

#: (shape, feature) → what ``strip`` removes. Gemini ``cachedContent`` has no row: the cache
#: is part of the prompt, so it cannot be stripped and stays refused.
STRIPS: dict[tuple[str, str], tuple[Rule, ...]] = {
    ("messages", CACHE_CONTROL): (RemoveEverywhere("cache_control", _ANTHROPIC_BLOCKS),),
    # Context editing's clear_thinking_* strategy only exists with thinking on: it goes too.
    ("messages", THINKING): (
        Remove(("thinking",)), Remove(("fallbacks", EACH, "thinking")),
        RemoveTyped(("context_management", "edits"), "clear_thinking_",
                    drop=("context_management",)),
    ),
    ("chat", CACHE_CONTROL): (
        Remove(("messages", EACH, "cache_control")),
        Remove(("messages", EACH, "content", EACH, "cache_control")),
        Remove(("messages", EACH, "content", EACH, "prompt_cache_breakpoint")),
        Remove(("tools", EACH, "cache_control")),
        Remove(("prompt_cache_options", "prewarm")),
    ),
    ("chat", THINKING): (
        Remove(("reasoning_effort",)), Remove(("reasoning",)), Remove(("thinking",)),
        Remove(("enable_thinking",)), Remove(("chat_template_kwargs", "enable_thinking")),
    ),
    ("gemini", THINKING): (Remove((_g("generationConfig"), _g("thinkingConfig"))),),
    ("responses", CACHE_CONTROL): (
        RemoveEverywhere("prompt_cache_breakpoint", _RESPONSES_PARTS,
                         enter_values=frozenset({"variables"})),
        Remove(("prompt_cache_options", "prewarm")),
    ),
    ("responses", THINKING): (
        Remove(("reasoning",)), RemoveItem(("include",), "reasoning.encrypted_content"),
        Remove(("input", OfType("configuration_update"), "reasoning")),
    ),
}


class Budget(NamedTuple):
    """A thinking budget that must stay below (``strict``) or within an output cap.

    With :data:`EACH` in ``cap`` and ``holder`` (Anthropic ``fallbacks``), an element lacking
    its own cap or thinking uses the body's (``inherit_cap``, ``inherit_holder``).
    """

    cap: tuple[Any, ...]
    holder: tuple[Any, ...]
    key: tuple[str, ...]
    minimum: int
    strict: bool = True
    inherit_cap: tuple[Any, ...] | None = None
    inherit_holder: tuple[Any, ...] | None = None


#: shape → the budgets a lowered cap must keep valid.
BUDGETS: dict[str, tuple[Budget, ...]] = {
    "messages": (
        Budget(("max_tokens",), ("thinking",), ("budget_tokens",), 1024),
        Budget(("fallbacks", EACH, "max_tokens"), ("fallbacks", EACH, "thinking"),
               ("budget_tokens",), 1024, inherit_cap=("max_tokens",),
               inherit_holder=("thinking",)),
    ),
    "gemini": (
        Budget((_g("generationConfig"), _g("maxOutputTokens")),
               (_g("generationConfig"), _g("thinkingConfig")), _g("thinkingBudget"), 1),
    ),
    "chat": (
        Budget(("max_completion_tokens",), ("reasoning",), ("max_tokens",), 1),
        Budget(("max_tokens",), ("reasoning",), ("max_tokens",), 1),
    ),
    "responses": (Budget(("max_output_tokens",), ("reasoning",), ("max_tokens",), 1),),
}


def shape_of(route: Route) -> str | None:
    return SHAPES.get(route.kind)


def can_strip(route: Route, feature: str) -> bool:
    """Whether ``strip`` can remove ``feature`` from bodies of this route."""
    return (SHAPES.get(route.kind), feature) in STRIPS


@dataclass(frozen=True, slots=True)
class Plan:
    """What to change: features to strip, and output caps to lower (body path → new cap)."""

    strip: frozenset[str] = frozenset()
    clamp: Mapping[str, int] = field(default_factory=dict)
    #: ``thinking`` is ``strip``: a budget that cannot fit a lowered cap goes with it.
    strip_thinking: bool = False


class Rewritten(NamedTuple):
    body: bytes
    adjustments: tuple[str, ...]


class Unfit(Exception):
    """A lowered cap leaves no valid thinking budget and thinking may not be stripped."""

    def __init__(self, path: str, budget: int, cap: int, minimum: int) -> None:
        super().__init__(f"{path} {budget} cannot fit below {cap} (minimum {minimum})")
        self.path = path
        self.budget = budget
        self.cap = cap
        self.minimum = minimum


class _Number(str):
    """A JSON number kept as its literal text (written back exactly as it came)."""

    __slots__ = ()


def apply(route: Route, body: bytes, plan: Plan) -> Rewritten:
    """The body with ``plan`` applied. ``body`` is decoded and has passed the strict reading."""
    shape = SHAPES[route.kind]
    doc, exact = _load(body)
    adjustments: list[str] = []
    for feature in STRIP_ORDER:
        if feature in plan.strip:
            _strip(doc, shape, feature)
            adjustments.append(f"{feature}=stripped")
    lowered: dict[tuple[Any, ...], tuple[int, int]] = {}
    for text, cap in plan.clamp.items():
        path = parse_path(text)
        old = _set_cap(doc, path, cap)
        if old is not None:
            lowered[path] = (old, cap)
    for cap in dict.fromkeys(new for _, new in lowered.values()):
        adjustments.append(f"max_tokens={cap}")
    if lowered and THINKING not in plan.strip:
        try:
            budgets = _fit_budgets(doc, shape, lowered)
        except Unfit:
            if not plan.strip_thinking:
                raise
            _strip(doc, shape, THINKING)
            adjustments.insert(len([a for a in adjustments if a.endswith("=stripped")]),
                               "thinking=stripped")
        else:
            adjustments.extend(f"thinking_budget={b}" for b in dict.fromkeys(budgets))
    return Rewritten(_write(doc, exact), tuple(adjustments))


def _load(body: bytes) -> tuple[Any, bool]:
    """The document, and whether every number must be written back from its literal.

    The common case parses to plain values that the C encoder writes back with the same
    literals (integers, and floats whose shortest repr is their text); a float literal such
    as ``1E-1`` or an integer too long for ``int`` makes the exact path keep literals."""
    changed = False

    def number(text: str) -> float:
        nonlocal changed
        value = float(text)
        if repr(value) != text:
            changed = True
        return value

    try:
        doc = json.loads(body, parse_float=number)
    except ValueError:  # an integer over the interpreter's digit limit
        changed = True
    if changed:
        return json.loads(body, parse_int=_Number, parse_float=_Number), True
    return doc, False


def _write(doc: Any, exact: bool) -> bytes:
    if not exact:
        # ASCII output (non-ASCII as \u escapes, JSON-equal) is the C encoder's fast path
        return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode("ascii")
    out: list[str] = []
    _dump(doc, out)
    return "".join(out).encode("ascii")


# -- strip ------------------------------------------------------------------------------------


def _strip(doc: Any, shape: str, feature: str) -> None:
    for rule in STRIPS[(shape, feature)]:
        if type(rule) is Remove:
            for parent, key in _members(doc, rule.path):
                del parent[key]
        elif type(rule) is RemoveEverywhere:
            _remove_everywhere(doc, rule)
        elif type(rule) is RemoveItem:
            for parent, key in _members(doc, rule.path):
                items = parent[key]
                if type(items) is list:
                    parent[key] = [item for item in items if item != rule.value]
        else:
            _remove_typed(doc, rule)


def _remove_typed(doc: Any, rule: RemoveTyped) -> None:
    for parent, key in _members(doc, rule.path):
        items = parent[key]
        if type(items) is not list:
            continue
        kept = [item for item in items if not (
            type(item) is dict and type(item.get("type")) is str
            and item["type"].startswith(rule.prefix))]
        if len(kept) == len(items):
            continue
        parent[key] = kept
        if not kept and rule.drop is not None:
            for holder, name in _members(doc, rule.drop):
                del holder[name]


def _members(node: Any, path: tuple[Any, ...]) -> Iterator[tuple[Any, Any]]:
    """(container, key) of every member ``path`` names that exists (collected first, so the
    caller may delete while iterating)."""
    found: list[tuple[Any, Any]] = []
    _walk(node, path, found)
    return iter(found)


def _walk(node: Any, path: tuple[Any, ...], found: list[tuple[Any, Any]]) -> None:
    step, rest = path[0], path[1:]
    if step == EACH or type(step) is OfType:
        if type(node) is list:
            for index, item in enumerate(node):
                if type(step) is OfType and (type(item) is not dict
                                             or item.get("type") != step.value):
                    continue
                if rest:
                    _walk(item, rest, found)
                else:
                    found.append((node, index))
        return
    if type(node) is not dict:
        return
    for name in step if type(step) is tuple else (step,):
        if name in node:
            if rest:
                _walk(node[name], rest, found)
            else:
                found.append((node, name))


def _remove_everywhere(root: Any, rule: RemoveEverywhere) -> None:
    stack = [root]
    while stack:
        node = stack.pop()
        if type(node) is list:
            stack.extend(value for value in node if type(value) in (dict, list))
        elif type(node) is dict:
            node.pop(rule.key, None)
            for name, value in node.items():
                if name in rule.enter and type(value) in (dict, list):
                    stack.append(value)
                elif name in rule.enter_values and type(value) is dict:
                    stack.extend(v for v in value.values() if type(v) in (dict, list))


# -- clamp ------------------------------------------------------------------------------------

_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def parse_path(text: str) -> tuple[Any, ...]:
    """``fallbacks[0].max_tokens`` → ``("fallbacks", 0, "max_tokens")``."""
    return tuple(int(index) if index else name for name, index in _STEP.findall(text))


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        if type(step) is int:
            if type(node) is not list or step >= len(node):
                return None
            node = node[step]
        elif type(node) is dict:
            names = step if type(step) is tuple else (step,)
            node = next((node[n] for n in names if n in node), None)
        else:
            return None
    return node


def _integer(value: Any) -> int | None:
    """A token count as the readers accept it: a JSON integer, an integral float, or (Gemini)
    a decimal string."""
    if type(value) is _Number:
        try:
            return int(value)
        except ValueError:
            number = float(value)
            return int(number) if number.is_integer() else None
    if type(value) is str and value.strip().lstrip("-").isdigit():
        return int(value)
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    return None


def _set_cap(doc: Any, path: tuple[Any, ...], cap: int) -> int | None:
    """Lower the cap at ``path`` to ``cap``; its old value, or None when there is nothing to
    lower (absent, or already within)."""
    parent = _get(doc, path[:-1])
    if type(parent) is not dict or path[-1] not in parent:
        return None
    old = parent[path[-1]]
    value = _integer(old)
    if value is None or value <= cap:
        return None
    parent[path[-1]] = str(cap) if type(old) is str else cap
    return value


def _fit_budgets(doc: Any, shape: str, lowered: dict[tuple[Any, ...], tuple[int, int]]
                 ) -> list[int]:
    """Lower each thinking budget a lowered cap no longer leaves room for, keeping its share
    of the old cap; raises :class:`Unfit` when none is valid. Returns the new budgets."""
    changed: list[int] = []
    for rule in BUDGETS.get(shape, ()):
        for cap_path, holder_path in _budget_pairs(doc, rule):
            if cap_path not in lowered:
                continue
            old_cap, cap = lowered[cap_path]
            holder = _get(doc, holder_path)
            if type(holder) is not dict:
                continue
            key = next((k for k in rule.key if k in holder), None)
            budget = _integer(holder.get(key)) if key is not None else None
            if budget is None or budget < 0 or budget == 0:
                continue  # no budget, dynamic (-1) or off (0): nothing to fit
            room = cap - 1 if rule.strict else cap
            if budget <= room:
                continue
            new = min(room, budget * cap // old_cap) if old_cap > 0 else room
            new = max(new, rule.minimum)
            if new > room:
                raise Unfit(_format(holder_path, key), budget, cap, rule.minimum)
            current = _integer(holder[key])
            if current is not None and current > new:
                holder[key] = str(new) if type(holder[key]) is str else new
                changed.append(new)
    return changed


def _budget_pairs(doc: Any, rule: Budget) -> Iterator[tuple[tuple[Any, ...], tuple[Any, ...]]]:
    """Concrete (cap path, budget holder path) pairs of a rule in ``doc``."""
    if EACH not in rule.cap:
        yield _concrete(doc, rule.cap), _concrete(doc, rule.holder)
        return
    at = rule.cap.index(EACH)
    items = _get(doc, rule.cap[:at])
    if type(items) is not list:
        return
    for index, item in enumerate(items):
        if type(item) is not dict:
            continue
        own_cap = (*rule.cap[:at], index, *rule.cap[at + 1:])
        own_holder = (*rule.holder[:at], index, *rule.holder[at + 1:])
        cap = own_cap if _get(doc, own_cap) is not None else rule.inherit_cap
        holder = own_holder if _get(doc, own_holder) is not None else rule.inherit_holder
        if cap is not None and holder is not None:
            yield _concrete(doc, cap), _concrete(doc, holder)


def _concrete(doc: Any, path: tuple[Any, ...]) -> tuple[Any, ...]:
    """A path with each alternative-spelling step replaced by the spelling the body uses."""
    out: list[Any] = []
    node = doc
    for step in path:
        if type(step) is tuple:
            name = next((n for n in step if type(node) is dict and n in node), step[0])
            out.append(name)
            node = node.get(name) if type(node) is dict else None
        else:
            out.append(step)
            node = _get(node, (step,)) if node is not None else None
    return tuple(out)


def _format(path: tuple[Any, ...], key: str | None) -> str:
    text = ""
    for step in (*path, key) if key is not None else path:
        text += f"[{step}]" if type(step) is int else (f".{step}" if text else str(step))
    return text


# -- writing ------------------------------------------------------------------------------------


def _dump(value: Any, out: list[str]) -> None:
    kind = type(value)
    if kind is str:
        out.append(encode_basestring_ascii(value))
    elif kind is _Number:
        out.append(value)
    elif kind is dict:
        out.append("{")
        first = True
        for key, item in value.items():
            if not first:
                out.append(",")
            first = False
            out.append(encode_basestring_ascii(key))
            out.append(":")
            _dump(item, out)
        out.append("}")
    elif kind is list:
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _dump(item, out)
        out.append("]")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif value is None:
        out.append("null")
    elif kind is int:
        out.append(str(value))
    else:  # pragma: no cover - json.loads gives nothing else
        raise TypeError(f"cannot write {kind.__name__}")
