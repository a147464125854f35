"""The words of a refusal: vendor names, articles, features as users know them, one message.

Pure string work on violations; which violations exist and in what order is :mod:`.policy`'s
business. One refusal names every refused violation (decisions.md §12): unknown models, unknown
content, then per model the capabilities it lacks and the output cap, then what to do.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .errors import Reason

if TYPE_CHECKING:
    from .policy import Violation

__all__ = ["a_vendor_model", "compose", "feature", "join_or", "vendor_name"]

#: ``owned_by`` values as people write them.
VENDORS = {
    "anthropic": "Anthropic", "openai": "OpenAI", "google": "Google", "deepseek": "DeepSeek",
    "moonshot": "Moonshot AI", "zhipu": "Zhipu AI", "minimax": "MiniMax",
    "bytedance": "ByteDance", "alibaba": "Alibaba", "qwen": "Qwen", "mistral": "Mistral AI",
    "meta": "Meta", "xai": "xAI", "cohere": "Cohere", "amazon": "Amazon",
    "microsoft": "Microsoft", "nvidia": "NVIDIA", "ibm": "IBM",
}
#: Names read with a leading vowel sound although spelt otherwise (and the reverse).
_AN = frozenset({"xAI", "LG", "NVIDIA"})
_A = frozenset({"Unicode", "UNIX", "Ubuntu", "OneAI"})

#: Reader descriptions → the feature as users know it (anything else is shown as it is).
_FEATURES = {
    "thinking enabled": "extended thinking",
    "thinking adaptive": "adaptive thinking",
    "thinking between_tools": "interleaved thinking",
    "a cache_control breakpoint": "a cache breakpoint",
    "a cache_control breakpoint on a tool": "a cache breakpoint on a tool",
    "automatic prompt caching": "automatic prompt caching (top-level cache_control)",
    "a cached content reference": "a cached content reference (cachedContent)",
    "the image block": "an image",
    "the tool_use block": "a tool call in the history",
    "the tool_result block": "a tool result in the history",
    "the server_tool_use block": "a server tool call in the history",
    "the image_url part": "an image",
    "the input_image part": "an image",
    "the input_audio part": "audio input",
    "the audio_url part": "audio input",
    "the video_url part": "video input",
    "the input_video part": "video input",
    "the file part": "a file (PDF)",
    "the input_file part": "a file (PDF)",
    "streaming": "a streamed response",
    "logprobs": "log probabilities",
    "top_logprobs": "log probabilities (top_logprobs)",
    "responseLogprobs": "log probabilities (responseLogprobs)",
    "enable_thinking": "thinking (enable_thinking)",
    "thinking (thinkingConfig)": "thoughts via thinkingConfig",
    "reasoning": "reasoning",
    "functionCall": "a function call in the history",
    "functionResponse": "a function response in the history",
}
_GROUPED = frozenset({Reason.UNSUPPORTED_CAPABILITY, Reason.MAX_TOKENS_EXCEEDED})
#: Media kinds by MIME type (or its main type).
_MEDIA_NOUNS = {"image": "an image", "audio": "audio", "video": "a video",
                "application/pdf": "a PDF document"}


def vendor_name(owner: str | None) -> str | None:
    """``anthropic`` → ``Anthropic``; an owner not in the table is shown as it is."""
    if not owner:
        return None
    return VENDORS.get(owner.lower(), owner)


def _article(word: str) -> str:
    if word in _AN:
        return "an"
    if word in _A:
        return "a"
    return "an" if word[:1].lower() in "aeio" or word[:2].lower() == "un" else "a"


def a_vendor_model(owner: str | None) -> str:
    """``"an Anthropic model"``, ``"a Google model"``; ``"a model of unknown owner"``."""
    name = vendor_name(owner)
    if name is None:
        return "a model of unknown owner"
    return f"{_article(name)} {name} model"


def feature(what: str, tag: str | None = None) -> str:
    """A reader's description of a feature, in the words its users know it by."""
    known = _FEATURES.get(what)
    if known is not None:
        return known
    for pattern, words in _PATTERNS:
        match = pattern.fullmatch(what)
        if match is not None:
            return words(match, tag)
    return what


def _media(match: re.Match[str], tag: str | None) -> str:
    where, mime = match.groups()
    if where == "a document" and "/" not in mime:
        return f"a document (a {mime} source, read as a PDF)"
    main = mime.split(";", 1)[0].strip().lower()
    noun = _MEDIA_NOUNS.get(main) or _MEDIA_NOUNS.get(main.split("/", 1)[0])
    if noun is None:
        noun = _TAG_NOUNS.get(tag or "", "a file")
    if "/" not in mime:
        mime = "without a MIME type"
    return f"{noun} ({mime})" if where == "a document" else f"{noun} ({where} {mime})"


_PATTERNS: tuple[tuple[re.Pattern[str], Any], ...] = (
    (re.compile(r"reasoning_effort (\S+)"),
     lambda m, tag: f"reasoning (reasoning_effort {m.group(1)})"),
    (re.compile(r"(inlineData|fileData|inline_data|file_data|a document) \(([^)]*)\)"), _media),
    (re.compile(r"(IMAGE|AUDIO|VIDEO|\d+) output"),
     lambda m, tag: f"{_MODALITY_NOUNS.get(m.group(1), 'special')} output "
                    f"(responseModalities {m.group(1)})"),
    (re.compile(r"tool_choice (\w+)"),
     lambda m, tag: f"a forced tool choice (tool_choice {m.group(1)})"),
    (re.compile(r"(\w+) \(Google-run tool traffic\)"),
     lambda m, tag: f"Google-run tool traffic in the history ({m.group(1)})"),
    (re.compile(r"function calling mode (\S+)"),
     lambda m, tag: f"forced function calling (mode {m.group(1)})"),
)
_MODALITY_NOUNS = {"IMAGE": "image", "AUDIO": "audio", "VIDEO": "video", "2": "image",
                   "3": "audio"}
_TAG_NOUNS = {"vision": "a file read as an image or PDF", "audio": "audio", "video": "a video"}


def join_or(items: Sequence[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} or {items[-1]}"


def _join_and(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def _shown(model_id: str | None) -> str:
    text = model_id or "?"
    return repr(text if len(text) <= 128 else text[:128] + "...")


def compose(violations: Sequence[Violation]) -> str:
    """One message naming every violation in ``violations`` (already in §12 order)."""
    if len(violations) == 1 and violations[0].reason not in _GROUPED:
        return violations[0].message
    sentences: list[str] = []
    unknown = [v for v in violations if v.reason == Reason.UNSUPPORTED_CONTENT]
    models: dict[str | None, list[Violation]] = {}
    for v in violations:
        if v.reason == Reason.UNSUPPORTED_MODEL:
            sentences.append(v.message)
        elif v.reason in _GROUPED:
            models.setdefault(v.model, []).append(v)
        elif v.reason != Reason.UNSUPPORTED_CONTENT:
            sentences.append(v.message)
    if unknown:
        sentences.append(_unknown_content(unknown))
    for model_id, group in models.items():
        sentences.extend(_model_sentences(model_id, group))
    return " ".join(sentences)


def _unknown_content(found: Sequence[Violation]) -> str:
    if len(found) == 1:
        return found[0].message
    listed = _join_and([f"{v.what!r} (at {v.path})" for v in found])
    return (f"Unknown content types {listed}: modelguard cannot tell which capabilities they "
            "need, so it refuses them. Use supported content types, or set "
            "allow_unknown_content=True to let unknown types through.")


def _model_sentences(model_id: str | None, group: Sequence[Violation]) -> list[str]:
    lacking = [v for v in group
               if v.reason == Reason.UNSUPPORTED_CAPABILITY and not v.has_capability]
    vendor = [v for v in group if v.reason == Reason.UNSUPPORTED_CAPABILITY and v.has_capability]
    caps = [v for v in group if v.reason == Reason.MAX_TOKENS_EXCEEDED]
    out: list[str] = []
    if lacking:
        by_tag: dict[str | None, list[Violation]] = {}
        for v in lacking:
            by_tag.setdefault(v.capability, []).append(v)
        listed = join_or([f"{_tag_words(tag)} ({'; '.join(_where(v) for v in same)})"
                          for tag, same in by_tag.items()])
        sentence = f"Model {_shown(model_id)} does not support {listed}"
        if caps:
            sentence += ", and " + _join_and(
                [f"{v.path} {v.requested} is above its {v.limit} limit{_note(v)}"
                 for v in caps])
        out.append(sentence + ".")
    elif caps:
        asked = _join_and([f"{v.path} is {v.requested}" for v in caps])
        notes = "".join(_note(v) for v in caps)
        out.append(f"The requested {asked}, above the {caps[0].limit} output tokens model "
                   f"{_shown(model_id)} can produce{notes}.")
    out.extend(_vendor_sentence(model_id, v) for v in vendor)
    out.append(_remedy(group, [*lacking, *vendor], caps))
    return out


def _where(v: Violation) -> str:
    runs = f", run by {vendor_name(v.vendor)}" if v.vendor else ""
    return f"{feature(v.what or '', v.capability)}, at {v.path}{runs}"


def _tag_words(tag: str | None) -> str:
    """An any-of need (``video_gen|image_gen``) reads ``video_gen or image_gen``."""
    return join_or((tag or "").split("|"))


def _with(tag: str | None) -> str:
    return f" with {_tag_words(tag)}" if tag else ""


def _note(v: Violation) -> str:
    return f" ({v.note})" if v.note else ""


def _vendor_sentence(model_id: str | None, v: Violation) -> str:
    what = feature(v.what or "", v.capability)
    return (f"{what[:1].upper()}{what[1:]}, at {v.path}, runs on {vendor_name(v.vendor)}'s "
            f"side and needs {a_vendor_model(v.vendor)}{_with(v.capability)}; model "
            f"{_shown(model_id)} is {a_vendor_model(v.owner)}.")


def _remedy(group: Sequence[Violation], features: Sequence[Violation],
            caps: Sequence[Violation]) -> str:
    steps = []
    if features:
        steps.append("remove " + ("it" if len(features) == 1 else "them"))
    steps.extend(f"lower {v.path} to at most {v.limit}" for v in caps)
    todo = _join_and(steps)
    todo = todo[:1].upper() + todo[1:]
    alternatives = next((v.alternatives for v in group if v.alternatives is not None), None)
    if alternatives is None:
        return todo + "."
    if alternatives:
        return (f"{todo}, or use a model that has every capability this request needs: "
                f"{', '.join(alternatives)}.")
    return f"{todo}; no other model available to this key has every capability this " \
           "request needs."
