"""From request bytes to violations: decode, read the protocol's features, judge them.

Pure functions of (route, bytes, catalog, options): no I/O, no clock, no globals, so they can
be tested, fuzzed and benchmarked alone. :class:`modelguard.Guard` wraps them with the catalog
lookup and the envelopes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .body import DECODER_MAX_DEPTH, BodyError, decode_content, parse_json
from .catalog import Catalog, ModelInfo
from .errors import GEMINI, Reason
from .protocols import anthropic, gemini, openai
from .protocols._base import Features, ModelRef, Need, malformed, shown
from .routing import CHAT, COUNT_TOKENS, MESSAGES, Route

__all__ = ["DEFAULT_MAX_BODY_BYTES", "DEFAULT_MAX_DEPTH", "Options", "Violation", "judge",
           "read_features"]

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_DEPTH = 128


@dataclass(frozen=True, slots=True)
class Options:
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH
    allow_unknown_content: bool = False

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1:
            raise ValueError("max_body_bytes must be positive")
        if not 1 <= self.max_depth <= DECODER_MAX_DEPTH:
            raise ValueError(f"max_depth must be between 1 and {DECODER_MAX_DEPTH}")


@dataclass(frozen=True, slots=True)
class Violation:
    """One reason to refuse a request, with what a person needs to fix it."""

    reason: str
    message: str
    path: str | None = None
    model: str | None = None
    capability: str | None = None


def read_features(route: Route, body: bytes, content_encodings: Sequence[str],
                  options: Options) -> Features:
    """Decode the body and read what it asks for; raises :class:`BodyError`."""
    if route.ambiguous:
        raise BodyError(Reason.INVALID, "The request path reads as two different routes or "
                        "models once decoded; send it without percent-encoding tricks.")
    if content_encodings:
        body = decode_content(body, content_encodings, options.max_body_bytes)
    doc = parse_json(body, options.max_depth)
    if type(doc) is not dict:
        raise malformed(None, "the body must be a JSON object.")
    counting = route.counts_only
    if route.protocol == GEMINI:
        return gemini.read(doc, route.model or "", counting=counting, streaming=route.streams)
    if route.kind in (MESSAGES, COUNT_TOKENS):
        return anthropic.read(doc, counting=counting)
    if route.kind == CHAT:
        return openai.read(doc)
    return openai.read_generation(doc, openai.GENERATION_TAGS[route.kind])


def required_tags(features: Features, route: Route) -> frozenset[str]:
    return frozenset(n.tag for n in _needs(features, route, None))


def _needs(features: Features, route: Route, ref: ModelRef | None) -> list[Need]:
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
    for ref, entry in entries:
        needs = _needs(features, route, ref)
        for need in needs:
            if entry.has(need.tag) and (need.vendor is None or entry.owned_by == need.vendor):
                continue
            found.append(_missing(need, ref, entry, needs, catalog))
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


def _missing(need: Need, ref: ModelRef, entry: ModelInfo, needs: list[Need],
             catalog: Catalog) -> Violation:
    vendors = {n.vendor for n in needs if n.vendor is not None}
    caps = [requested for _, requested in ref.caps]
    others = catalog.capable(
        {n.tag for n in needs}, vendor=vendors.pop() if len(vendors) == 1 else None,
        min_output=max(caps) if caps else None, exclude=entry.id,
    ) if len(vendors) <= 1 else []
    if entry.has(need.tag):
        message = (f"The {need.what} at {need.path} runs on {need.vendor}'s side and needs a "
                   f"{need.vendor} model with {need.tag}; model {entry.id!r} is owned by "
                   f"{entry.owned_by or 'an unknown vendor'}.")
    else:
        message = (f"Model {entry.id!r} does not support {need.tag}, needed for {need.what} "
                   f"(at {need.path}).")
    if others:
        message += (" Remove it, or use a model that has every capability this request "
                    f"needs: {', '.join(others)}.")
    else:
        message += " Remove it; no other model available to this key has every capability " \
                   "this request needs."
    return Violation(Reason.UNSUPPORTED_CAPABILITY, message, need.path, entry.id, need.tag)
