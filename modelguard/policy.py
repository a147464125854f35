"""From request bytes to violations: decode, read the protocol's features, judge them.

Pure functions of (route, bytes, catalog, options): no I/O, no clock, no globals, so they can
be tested, fuzzed and benchmarked alone. :class:`modelguard.Guard` wraps them with the catalog
lookup and the envelopes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from types import MappingProxyType
from typing import Any

from .body import DECODER_MAX_DEPTH, BodyError, decode_content, parse_json
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

__all__ = ["DEFAULT_MAX_BODY_BYTES", "DEFAULT_MAX_DEPTH", "Options", "Violation", "judge",
           "read_features"]

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

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1:
            raise ValueError("max_body_bytes must be positive")
        if not 1 <= self.max_depth <= DECODER_MAX_DEPTH:
            raise ValueError(f"max_depth must be between 1 and {DECODER_MAX_DEPTH}")
        if self.stored_state not in STORED_STATE:
            raise ValueError(f"stored_state must be one of {STORED_STATE}, "
                             f"not {self.stored_state!r}")
        object.__setattr__(self, "tool_vendors", tool_vendor_map(self.tool_vendors))

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
    """One reason to refuse a request, with what a person needs to fix it."""

    reason: str
    message: str
    path: str | None = None
    model: str | None = None
    capability: str | None = None


def read_features(route: Route, body: bytes, content_encodings: Sequence[str],
                  options: Options, content_types: Sequence[str] = ()) -> Features:
    """Decode the body and read what it asks for; raises :class:`BodyError`."""
    if route.ambiguous:
        raise BodyError(Reason.INVALID, "The request path reads as two different routes or "
                        "models once decoded; send it without percent-encoding tricks.")
    if content_encodings:
        body = decode_content(body, content_encodings, options.max_body_bytes)
    if route.multipart:
        return multipart.read(body, content_types, route.tag or "")
    doc = parse_json(body, options.max_depth)
    if type(doc) is not dict:
        raise malformed(None, "the body must be a JSON object.")
    return READERS[route.kind](doc, route, options)


Reader = Callable[[dict[str, Any], Route, Options], Features]

#: ``Route.kind`` → the reader of its JSON body.
READERS: dict[str, Reader] = {
    GENERATE: lambda doc, route, _: gemini.read(doc, route.model or "", counting=False,
                                               streaming=False),
    STREAM: lambda doc, route, _: gemini.read(doc, route.model or "", counting=False,
                                             streaming=True),
    COUNT: lambda doc, route, _: gemini.read(doc, route.model or "", counting=True,
                                            streaming=False),
    MESSAGES: lambda doc, route, _: anthropic.read(doc, counting=False),
    COUNT_TOKENS: lambda doc, route, _: anthropic.read(doc, counting=True),
    CHAT: lambda doc, route, _: openai.read(doc),
    IMAGES: lambda doc, route, _: openai.read_generation(doc, route.tag or "", images=True),
    VIDEOS: lambda doc, route, _: openai.read_generation(doc, route.tag or "", images=False),
    TASKS: lambda doc, route, _: openai.read_task(doc),
    EMBEDDINGS: lambda doc, route, _: openai.read_embeddings(doc),
    RESPONSES: lambda doc, route, options: responses.read(
        doc, counting=route.counting, stored_state=options.stored_state),
}
def required_tags(features: Features, route: Route) -> frozenset[str]:
    """The main model's needs; an any-of need is written ``a|b``."""
    return frozenset(n.label for n in _needs(features, route, None) if n.tag)


def _needs(features: Features, route: Route, ref: ModelRef | None) -> list[Need]:
    if ref is not None and ref.only is not None:
        return [Need(tag, ref.path, f"the model at {ref.path}") for tag in ref.only]
    needs = features.needs
    if route.counts_only:
        needs = [n for n in needs if not n.output]
    if ref is not None and ref.thinking is not None:
        needs = [n for n in needs if not n.body_thinking] + ref.thinking
    return needs


def judge(route: Route, features: Features, catalog: Catalog,
          options: Options) -> list[Violation]:
    """Every violation, most fundamental first: model, content, capability, output cap."""
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
                path, features.models[0].slug if features.models else None,
            ))
    main = features.models[0].slug if features.models else None
    for path, what in features.stored:
        found.append(Violation(
            Reason.UNSUPPORTED_CONTENT,
            f"{what[:1].upper()}{what[1:]} at {path} continues conversation state stored "
            "upstream, which "
            "modelguard cannot inspect, and this guard refuses stored state "
            "(stored_state='refuse'). Send the whole conversation in input instead.",
            path, main))
    for ref, entry in entries:
        needs = _needs(features, route, ref)
        for need in needs:
            vendors = options.vendors(need)
            if _has(entry, need) and (vendors is None or entry.owned_by in vendors):
                continue
            found.append(_missing(need, ref, entry, needs, catalog, options))
        for field, requested in ref.caps:
            limit = entry.max_output_tokens
            if limit is not None and requested > limit:
                found.append(Violation(
                    Reason.MAX_TOKENS_EXCEEDED,
                    f"{field} is {requested}, above the {limit} output tokens model "
                    f"{entry.id!r} can produce. Lower {field} to at most {limit}.",
                    field, entry.id,
                ))
    order = {Reason.UNSUPPORTED_MODEL: 0, Reason.UNSUPPORTED_CONTENT: 1,
             Reason.UNSUPPORTED_CAPABILITY: 2, Reason.MAX_TOKENS_EXCEEDED: 3}
    found.sort(key=lambda v: order[v.reason])
    return found


def _unknown_model(ref: ModelRef, catalog: Catalog) -> Violation:
    shown = ref.slug if len(ref.slug) <= 128 else ref.slug[:128] + "..."
    message = f"Model {shown!r} is not available to this API key."
    suggestion = catalog.suggest(ref.slug)
    if suggestion is not None:
        message += f" Did you mean {suggestion!r}?"
    message += " GET /v1/models lists the models this key may use."
    return Violation(Reason.UNSUPPORTED_MODEL, message, ref.path, ref.slug)


def _has(entry: ModelInfo, need: Need) -> bool:
    """The need's tag (or one of its alternatives); a vendor-only need has no tag."""
    return not need.tag or entry.has(need.tag) or any(entry.has(t) for t in need.any_of)


def _missing(need: Need, ref: ModelRef, entry: ModelInfo, needs: list[Need],
             catalog: Catalog, options: Options) -> Violation:
    owners = options.vendors(need)
    allowed: frozenset[str] | None = None  # owners every vendor need of the request accepts
    for other in needs:
        found = options.vendors(other)
        if found is not None:
            allowed = found if allowed is None else allowed & found
    caps = [requested for _, requested in ref.caps]
    others: list[str] = []
    if allowed is None or allowed:
        candidates = catalog.capable(
            {n.tag for n in needs if n.tag},
            vendor=next(iter(allowed)) if allowed is not None and len(allowed) == 1 else None,
            min_output=max(caps) if caps else None, exclude=entry.id, limit=50)
        others = [m for m in candidates
                  if allowed is None or catalog.get(m).owned_by in allowed][:3]
    if _has(entry, need):
        runners = " or ".join(sorted(owners or {need.vendor or "?"}))
        what = need.what[:1].upper() + need.what[1:]
        message = (f"{what} at {need.path} is run by {runners}, so it needs a model owned by "
                   f"{runners}{f' with {need.tag}' if need.tag else ''}; model {entry.id!r} "
                   f"is owned by {entry.owned_by or 'an unknown vendor'}.")
    elif need.any_of:
        wanted = " or ".join((need.tag, *need.any_of))
        message = (f"Model {entry.id!r} supports neither of {wanted}, needed for {need.what} "
                   f"(at {need.path}).")
    else:
        message = (f"Model {entry.id!r} does not support {need.tag}, needed for {need.what} "
                   f"(at {need.path}).")
    if others:
        message += (" Remove it, or use a model that has every capability this request "
                    f"needs: {', '.join(others)}.")
    else:
        message += " Remove it; no other model available to this key has every capability " \
                   "this request needs."
    return Violation(Reason.UNSUPPORTED_CAPABILITY, message, need.path, entry.id,
                     need.label or None)
