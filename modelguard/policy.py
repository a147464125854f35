"""From request bytes to violations: decode, read the protocol's features, judge them.

Pure functions of (route, bytes, catalog, options): no I/O, no clock, no globals, so they can
be tested, fuzzed and benchmarked alone. :class:`modelguard.Guard` wraps them with the catalog
lookup and the envelopes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from dataclasses import field as dataclass_field
from types import MappingProxyType
from typing import Any

from . import rewrite
from .actions import CLAMP, MAX_TOKENS, REFUSE, STRIP, resolve_actions
from .body import DECODER_MAX_DEPTH, BodyError, SettleNode, decode_content, parse_json
from .catalog import Catalog, ModelInfo
from .errors import Reason
from .protocols import anthropic, gemini, multipart, openai, responses
from .protocols._base import Features, ModelRef, Need, malformed, shown
from .routing import (
    CHAT,
    COUNT,
    COUNT_TOKENS,
    EMBEDDINGS,
    GENERATE,
    IMAGES,
    MESSAGES,
    RESPONSES,
    STREAM,
    TASKS,
    VIDEOS,
    Route,
)
from .wording import VENDORS, compose, vendor_name

__all__ = ["DEFAULT_MAX_BODY_BYTES", "DEFAULT_MAX_DEPTH", "Options", "Violation", "decode_body",
           "judge", "judgement_key", "read_decoded", "read_features"]

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_DEPTH = 128


STORED_STATE = ("allow", "refuse")
_DATED = re.compile(r"_(?:\d{8}|\d{4}_\d{2}_\d{2})$")


@dataclass(frozen=True, slots=True)
class Options:
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH
    allow_unknown_content: bool = False
    #: Tool type → the ``owned_by`` values whose models run it (routes.md D8), overriding the
    #: default vendor of the tool types it names.
    tool_vendors: Mapping[str, frozenset[str]] = dataclass_field(
        default_factory=lambda: MappingProxyType({}))
    #: ``"refuse"``: stored conversation state is unsupported content (routes.md D3).
    stored_state: str = "allow"
    #: ``{key: action}`` for the keys that are not ``refuse`` (see :mod:`.actions`).
    actions: Mapping[str, str] = dataclass_field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1:
            raise ValueError("max_body_bytes must be positive")
        if not 1 <= self.max_depth <= DECODER_MAX_DEPTH:
            raise ValueError(f"max_depth must be between 1 and {DECODER_MAX_DEPTH}")
        if self.stored_state not in STORED_STATE:
            raise ValueError(f"stored_state must be one of {STORED_STATE}, "
                             f"not {self.stored_state!r}")
        object.__setattr__(self, "tool_vendors", tool_vendor_map(self.tool_vendors))
        object.__setattr__(self, "actions", resolve_actions(self.actions))

    def vendors(self, need: Need) -> frozenset[str] | None:
        """The owners whose models may serve ``need`` (None: any owner)."""
        if need.vendor is None:
            return None
        tool = need.tool
        if tool is not None and self.tool_vendors:
            for key in (tool, _DATED.sub("", tool), tool.removesuffix("_tool_result")):
                found = self.tool_vendors.get(key)
                if found is not None:
                    return found
        return frozenset((need.vendor,))


def tool_vendor_map(value: Mapping[str, Iterable[str]] | None) -> Mapping[str, frozenset[str]]:
    """``tool_vendors`` checked and frozen: tool type → a non-empty set of owners."""
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping):
        raise ValueError("tool_vendors must map tool types to sets of owned_by values")
    out = {}
    for tool, owners in value.items():
        if isinstance(owners, str):
            owners = (owners,)
        owners = frozenset(owners)
        if type(tool) is not str or not tool or not owners or not all(
                type(o) is str and o for o in owners):
            raise ValueError(f"tool_vendors[{tool!r}] must be a non-empty set of owners")
        out[tool] = owners
    return MappingProxyType(out)


@dataclass(frozen=True, slots=True)
class Violation:
    """One reason to refuse a request, with what a person needs to fix it.

    ``action`` is what the policy does about it: ``refuse``, or an action that lets the
    request through (``allow``: unchanged; ``strip``/``clamp``: rewritten).
    """

    reason: str
    message: str
    path: str | None = None
    model: str | None = None
    capability: str | None = None
    action: str = REFUSE
    #: The feature as the reader describes it (or the unknown content type).
    what: str | None = None
    #: Vendor rule: the ``owned_by`` the feature needs (it runs on that vendor's servers),
    #: the model's own, and whether the model has the tag (then only the owner is wrong).
    vendor: str | None = None
    owner: str | None = None
    has_capability: bool = False
    #: Output cap: what was asked for and the model's ``max_output_tokens``.
    requested: int | None = None
    limit: int | None = None
    #: Models of the catalog that have every capability the request keeps needing.
    alternatives: tuple[str, ...] | None = None
    #: Why an action could not resolve it (e.g. no thinking budget fits a clamped cap).
    note: str | None = None

    @property
    def key(self) -> str | None:
        """The actions key: the capability tag, or ``max_tokens`` for the output cap."""
        if self.reason == Reason.MAX_TOKENS_EXCEEDED:
            return MAX_TOKENS
        return self.capability

    @property
    def refused(self) -> bool:
        return self.action == REFUSE


def read_features(route: Route, body: bytes, content_encodings: Sequence[str],
                  options: Options, content_types: Sequence[str] = ()) -> Features:
    """Decode the body and read what it asks for; raises :class:`BodyError`."""
    return read_decoded(route, decode_body(route, body, content_encodings, options), options,
                        content_types)


def decode_body(route: Route, body: bytes, content_encodings: Sequence[str],
                options: Options) -> bytes:
    """The body with its content codings undone; raises :class:`BodyError`."""
    if route.ambiguous:
        raise BodyError(Reason.INVALID, "The request path reads as two different routes or "
                        "models once decoded; send it without percent-encoding tricks.")
    if content_encodings:
        return decode_content(body, content_encodings, options.max_body_bytes)
    return body


def read_decoded(route: Route, body: bytes, options: Options,
                 content_types: Sequence[str] = ()) -> Features:
    """:func:`read_features` for a body without content coding."""
    if route.multipart:
        return multipart.read(body, content_types, route.tag or "")
    doc = parse_json(body, options.max_depth, SETTLE.get(route.kind))
    if type(doc) is not dict:
        raise malformed(None, "the body must be a JSON object.")
    return READERS[route.kind](doc, route, options)


#: A protocol's reader: what the verdict needs from a decoded body on a route. Every reader
#: takes the same arguments, so the table below holds the functions themselves.
Reader = Callable[[dict[str, Any], Route, Options], Features]

#: ``Route.kind`` → the reader of its JSON body.
READERS: dict[str, Reader] = {
    GENERATE: gemini.read, STREAM: gemini.read, COUNT: gemini.read,
    MESSAGES: anthropic.read, COUNT_TOKENS: anthropic.read,
    CHAT: openai.read,
    IMAGES: openai.read_generation, VIDEOS: openai.read_generation,
    TASKS: openai.read_task,
    EMBEDDINGS: openai.read_embeddings,
    RESPONSES: responses.read,
}


#: ``Route.kind`` → where its reader takes :class:`~modelguard.body.Settled` markers for
#: objects (text blocks, function tools) the decoders need not build.
SETTLE: dict[str, SettleNode] = {
    GENERATE: gemini.SETTLE, STREAM: gemini.SETTLE, COUNT: gemini.SETTLE,
    MESSAGES: anthropic.SETTLE, COUNT_TOKENS: anthropic.SETTLE,
    CHAT: openai.SETTLE, RESPONSES: responses.SETTLE,
}


def required_tags(features: Features, route: Route) -> frozenset[str]:
    """The main model's needs; an any-of need is written ``a|b``."""
    return frozenset(n.label for n in _needs(features, route, None) if n.tag)


def judgement_key(route: Route, features: Features) -> tuple[Any, ...] | None:
    """Everything :func:`judge` reads from a request that it would allow, except the output
    caps (compared with the limits by the caller); None when the request has unknown content
    or stored state, which are judged every time."""
    if features.unknown or features.stored:
        return None
    models = features.models
    if len(models) == 1 and models[0].thinking is None:  # most requests: (slug, only)
        held: tuple[Any, ...] = (models[0].slug, models[0].only)
    else:  # a tuple of (slug, only, thinking) triples, never equal to a (slug, only) pair
        held = tuple([(ref.slug, ref.only, None if ref.thinking is None else
                       need_rules(ref.thinking)) for ref in models])
    needs = features.needs
    return (route.protocol, route.name, route.counting, held,
            need_rules(needs) if needs else ())


def need_rules(needs: list[Need]) -> tuple[tuple[Any, ...], ...]:
    """What the verdict of an allowed request reads of each need (not its path or wording)."""
    return tuple([(n.tag, n.vendor, n.output, n.body_thinking, n.tool, n.any_of)
                  for n in needs])


def _needs(features: Features, route: Route, ref: ModelRef | None) -> list[Need]:
    if ref is not None and ref.only is not None:
        return [Need(tag, ref.path, f"the model at {ref.path}") for tag in ref.only]
    needs = features.needs
    if route.counting:
        needs = [n for n in needs if not n.output]
    if ref is not None and ref.thinking is not None:
        needs = [n for n in needs if not n.body_thinking] + ref.thinking
    return needs


#: §12 order: what no client can do without first, then hints; the output cap last.
ESSENTIAL = ("vision", "audio", "video", "tool_use", "image_gen", "video_gen", "json_schema",
             "streaming", "logprobs")
HINTS = ("thinking", "cache_control")
_TAG_RANK = {tag: (2, i) for i, tag in enumerate(ESSENTIAL)} | {
    tag: (3, i) for i, tag in enumerate(HINTS)}
_REASON_RANK = {Reason.UNSUPPORTED_MODEL: (0, 0), Reason.UNSUPPORTED_CONTENT: (1, 0),
                Reason.MAX_TOKENS_EXCEEDED: (4, 0)}


def _rank(violation: Violation) -> tuple[int, int]:
    if violation.reason == Reason.UNSUPPORTED_CAPABILITY:
        return _TAG_RANK.get(violation.capability or "", (2, len(ESSENTIAL)))
    return _REASON_RANK.get(violation.reason, (5, 0))


def judge(route: Route, features: Features, catalog: Catalog,
          options: Options) -> list[Violation]:
    """Every violation in §12 order (model, content, capabilities, hints, output cap), each
    with the action the options give it."""
    found: list[Violation] = []
    entries: list[tuple[ModelRef, ModelInfo]] = []
    for ref in features.models:
        entry = catalog.get(ref.slug)
        if entry is None:
            found.append(_unknown_model(ref, catalog))
        else:
            entries.append((ref, entry))
    if not options.allow_unknown_content:
        for path, kind in features.unknown:
            found.append(Violation(
                Reason.UNSUPPORTED_CONTENT,
                f"Unknown content type {shown(kind)!r} at {path}: modelguard cannot tell which "
                "capability it needs, so it refuses it. Use a supported content type, or "
                "set allow_unknown_content=True to let unknown types through.",
                path, features.models[0].slug if features.models else None, what=kind,
            ))
    main = features.models[0].slug if features.models else None
    for path, what in features.stored:
        found.append(Violation(
            Reason.UNSUPPORTED_CONTENT,
            f"{what[:1].upper()}{what[1:]} at {path} continues conversation state stored "
            "upstream, which modelguard cannot inspect, and this guard refuses stored state "
            "(stored_state='refuse'). Send the whole conversation in input instead.",
            path, main, what=what))
    for ref, entry in entries:
        needs = _needs(features, route, ref)
        missing = [need for need in needs if not _serves(entry, need, options)]
        limit = entry.max_output_tokens
        over = [] if limit is None else [(f, n) for f, n in ref.caps if n > limit]
        if missing or over:
            found.extend(_model_violations(route, entry, needs, missing, over, catalog,
                                           options))
    if len(found) > 1:
        found.sort(key=_rank)
    return found


def _action(key: str, route: Route, options: Options) -> str:
    action = options.actions.get(key, REFUSE)
    if action == STRIP and not rewrite.can_strip(route, key):
        return REFUSE  # e.g. Gemini cachedContent: part of the prompt, nothing to strip
    return action


def _model_violations(route: Route, entry: ModelInfo, needs: list[Need], missing: list[Need],
                      over: list[tuple[str, int]], catalog: Catalog,
                      options: Options) -> list[Violation]:
    """The capability and output-cap violations of one model, worded once all are known."""
    limit = entry.max_output_tokens
    cap_action = _action(MAX_TOKENS, route, options)
    actions = {need.tag: _action(need.tag, route, options) for need in missing}
    alternatives = None
    if missing:
        kept = {n.tag for n in needs if n.tag and actions.get(n.tag) != STRIP}
        room = max(n for _, n in over) if over and cap_action != CLAMP else None
        allowed = _owners(needs, options)
        alternatives = () if allowed is not None and not allowed else tuple(
            m for m in catalog.capable(
                kept, vendor=next(iter(allowed)) if allowed and len(allowed) == 1 else None,
                min_output=room, exclude=entry.id, prefer_owner=entry.owned_by, limit=50)
            if allowed is None or catalog.get(m).owned_by in allowed)[:3]
    out = [Violation(
        Reason.UNSUPPORTED_CAPABILITY, "", need.path, entry.id, need.label or None,
        actions[need.tag], what=need.what, vendor=_runners(options.vendors(need)),
        owner=entry.owned_by, has_capability=_has(entry, need), alternatives=alternatives,
    ) for need in missing]
    out.extend(Violation(
        Reason.MAX_TOKENS_EXCEEDED, "", field_path, entry.id, action=cap_action,
        requested=requested, limit=limit,
    ) for field_path, requested in over)
    return [replace(v, message=compose([v])) for v in out]


def _unknown_model(ref: ModelRef, catalog: Catalog) -> Violation:
    shown = ref.slug if len(ref.slug) <= 128 else ref.slug[:128] + "..."
    message = f"Model {shown!r} is not available to this API key."
    suggestion = catalog.suggest(ref.slug)
    if suggestion is not None:
        message += f" Did you mean {suggestion!r}?"
    else:
        label, members = catalog.family(ref.slug)
        if members:
            name = vendor_name(label) if label in VENDORS else label
            message += (f" Other {name} models this key can use instead: "
                        f"{', '.join(members)}.")
    message += " GET /v1/models lists the models this key may use."
    return Violation(Reason.UNSUPPORTED_MODEL, message, ref.path, ref.slug)


def _serves(entry: ModelInfo, need: Need, options: Options) -> bool:
    vendors = options.vendors(need)
    return _has(entry, need) and (vendors is None or entry.owned_by in vendors)


def _owners(needs: list[Need], options: Options) -> frozenset[str] | None:
    """The owners every vendor rule of the request accepts (None: any owner)."""
    allowed: frozenset[str] | None = None
    for need in needs:
        found = options.vendors(need)
        if found is not None:
            allowed = found if allowed is None else allowed & found
    return allowed


def _runners(owners: frozenset[str] | None) -> str | None:
    """Who runs a server-side tool, as the wording names it (``openai`` or ``OpenAI or X``)."""
    if not owners:
        return None
    if len(owners) == 1:
        return next(iter(owners))
    return " or ".join(vendor_name(o) or o for o in sorted(owners))


def _has(entry: ModelInfo, need: Need) -> bool:
    """The need's tag (or one of its alternatives); a vendor-only need has no tag."""
    return not need.tag or entry.has(need.tag) or any(entry.has(t) for t in need.any_of)


