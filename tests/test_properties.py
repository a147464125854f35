"""Property-based tests: generated bodies against an independent oracle, and mutated SDK bodies.

Two families of properties:

* **Generated bodies.** For each protocol a hypothesis strategy builds valid request bodies from
  the protocol's grammar (protocols.md §1). modelguard's ``required_tags(read_features(...))``
  must equal the tags an independent oracle computes; a model with exactly those tags is
  allowed; a model lacking any one of them (or, for server-run tools, owned by another vendor)
  is refused with ``unsupported_capability``; an output cap above the model's limit is refused.
* **Mutated SDK fixtures.** Each captured SDK body is mutated (dropped, duplicated, retyped,
  re-encoded, deepened, case-folded keys, camel/snake swaps, unknown blocks, injected features,
  huge numbers, NaN ...) and checked with ``Guard(Catalog.default())``: the guard never raises,
  never answers 5xx, refuses in its protocol's envelope, and never lets through a body that a
  strict reader plus the oracle say the model cannot serve (no bypass).

The oracle below is written from protocols.md §2 and decisions.md §4 alone, as a plain
recursive walk; it imports nothing from modelguard's tables. On bodies the grammar allows it is
exact. On anything else it reads *leniently and conservatively*: a key that equals a field name
under casefold/NFKC (or a Gemini camel/snake spelling) is read as that field too, switches are
"on" unless they are plainly off, and unknown discriminators, ambiguous fields and missing
models mean the body must be refused. "No bypass" then means: whatever any of those readings
asks for, an allowed request's model has it.
"""

from __future__ import annotations

import copy
import gzip
import json
import math
import os
import re
import unicodedata
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from modelguard import Catalog, Guard
from modelguard.policy import Options, read_features, required_tags
from modelguard.routing import match_route

ANTHROPIC, OPENAI, GEMINI = "anthropic", "openai", "gemini"
VENDOR = {ANTHROPIC: "anthropic", OPENAI: "openai", GEMINI: "google"}
FIXTURES = sorted((Path(__file__).parent / "fixtures" / "sdk").glob("*.json"))
#: Multiplies every max_examples, for long bug hunts (``MODELGUARD_PROPERTY_SCALE=50``).
SCALE = max(1, int(os.environ.get("MODELGUARD_PROPERTY_SCALE", "1")))
MAX_DEPTH = 128


# ==================================================================================================
# The strict reader: what I-JSON allows (decisions.md §8), written with the standard library.
# ==================================================================================================


class NotStrict(ValueError):
    pass


def strict_loads(raw: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Decode ``raw`` as strict JSON or raise :class:`NotStrict`."""
    try:
        text = raw.decode("utf-8")  # strict: no invalid, overlong or surrogate sequences
    except UnicodeDecodeError as exc:
        raise NotStrict(f"not UTF-8: {exc}") from None
    if text.startswith("\ufeff"):
        raise NotStrict("BOM")

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in items]
        if len(set(keys)) != len(keys):
            raise NotStrict(f"duplicate key in {keys!r}")
        return dict(items)

    def constant(name: str) -> Any:
        raise NotStrict(name)

    def number(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise NotStrict(f"{text} overflows a double")
        return value

    def integer(text: str) -> int:
        value = int(text)  # more than 4300 digits: ValueError
        try:
            float(value)
        except OverflowError:
            raise NotStrict(f"{text[:20]}... overflows a double") from None
        return value

    try:
        value = json.loads(text, object_pairs_hook=pairs, parse_constant=constant,
                           parse_float=number, parse_int=integer)
    except NotStrict:
        raise
    except (ValueError, RecursionError) as exc:
        raise NotStrict(str(exc)[:200]) from None
    _strict_tree(value, 1, max_depth)
    return value


def _strict_tree(value: Any, depth: int, max_depth: int) -> None:
    if isinstance(value, str):
        if any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
            raise NotStrict("lone surrogate")
        return
    if not isinstance(value, (dict, list)):
        return
    if depth > max_depth:
        raise NotStrict("too deep")
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        if isinstance(key, str):
            _strict_tree(key, depth, max_depth)
        _strict_tree(item, depth + 1, max_depth)


# ==================================================================================================
# The oracle: protocols.md §2 + decisions.md §4, one recursive walk per protocol.
# ==================================================================================================


def fold(key: str) -> str:
    """Casefold and NFKC, repeated until stable: how a lenient decoder may match a field name."""
    for _ in range(4):
        new = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", key).casefold())
        if new == key:
            break
        key = new
    return key


def snake(name: str) -> str:
    return "".join("_" + ch.lower() if ch.isupper() else ch for ch in name)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def on(value: Any) -> bool:
    """A switch is on unless plainly off (absent, null or false): never guess it off."""
    return value is not None and value is not False


def is_word(value: Any, *words: str) -> bool:
    return isinstance(value, str) and value.lower() in words


def as_list(value: Any) -> list[Any]:
    """Where a list belongs, a lenient reader may take a lone item as a list of one."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def number_of(value: Any) -> float | None:
    """A number, or a numeric string (proto3 JSON int64), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


MEDIA_TEXT = {"application/json", "application/x-javascript", "application/x-python"}


def mime_tag(mime: Any) -> str | None:
    """§1C MIME classification; PDF and anything unreadable need vision (decisions §4)."""
    if not isinstance(mime, str):
        return "vision"
    main = mime.split(";")[0].strip().lower()
    for prefix, tag in (("image/", "vision"), ("audio/", "audio"), ("video/", "video")):
        if main.startswith(prefix):
            return tag
    if main.startswith("text/") or main in MEDIA_TEXT:
        return None
    return "vision"


def data_url_mime(url: Any) -> str | None:
    if isinstance(url, str) and url[:5].lower() == "data:":
        return re.split("[;,]", url[5:], maxsplit=1)[0]
    return None


YOUTUBE = {"youtube.com", "www.youtube.com", "youtu.be", "m.youtube.com"}
EXTENSIONS = {"png": "vision", "jpg": "vision", "jpeg": "vision", "pdf": "vision",
              "mp3": "audio", "wav": "audio", "mp4": "video", "webm": "video", "txt": None}


def uri_tag(uri: Any) -> str | None:
    """A fileData without MIME type: YouTube is video, else the extension, else vision."""
    if not isinstance(uri, str):
        return "vision"
    match = re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://([^/?#]*)([^?#]*)", uri)
    if match is None:
        return "vision"
    if match.group(1).lower().rsplit("@", 1)[-1].split(":")[0] in YOUTUBE:
        return "video"
    name = match.group(2).rsplit("/", 1)[-1]
    if "." in name:
        return EXTENSIONS.get(name.rsplit(".", 1)[1].lower(), "vision")
    return "vision"


@dataclass
class ModelUse:
    slug: Any
    caps: list[float] = field(default_factory=list)
    #: A fallback's own thinking needs (None: the body's apply).
    thinking: set[tuple[str, str | None, bool]] | None = None


@dataclass
class Expected:
    """What the oracle says a body asks for."""

    models: list[ModelUse] = field(default_factory=list)
    #: (tag, vendor, output) triples; output needs do not apply to token counting.
    needs: set[tuple[str, str | None, bool]] = field(default_factory=set)
    thinking: set[tuple[str, str | None, bool]] = field(default_factory=set)
    #: Why the body must be refused in every mode (ambiguous, malformed, no model, ...).
    refuse: list[str] = field(default_factory=list)
    #: Unknown content types: refused unless allow_unknown_content (or report mode).
    unknown: list[str] = field(default_factory=list)

    def tags(self, counting: bool = False, model: ModelUse | None = None) -> set[str]:
        return {tag for tag, _, _ in self.triples(counting, model)}

    def triples(self, counting: bool = False, model: ModelUse | None = None) -> set:
        thinking = self.thinking if model is None or model.thinking is None else model.thinking
        return {n for n in self.needs | thinking if not (counting and n[2])}

    def vendors(self) -> set[str]:
        return {v for _, v, _ in self.needs | self.thinking if v is not None}


class Reader:
    """Field access as every plausible reader sees it: exact, look-alike and (Gemini) both
    spellings; more than one hit, or only a look-alike, means the body is ambiguous."""

    def __init__(self, gemini: bool) -> None:
        self.gemini = gemini
        self.out = Expected()

    def spellings(self, name: str) -> set[str]:
        return {name, snake(name), camel(name)} if self.gemini else {name}

    def get(self, obj: Any, name: str) -> list[Any]:
        """The non-null values of field ``name`` in ``obj`` (every reading of it)."""
        if not isinstance(obj, dict):
            return []
        exact = self.spellings(name)
        folded = {fold(s) for s in exact}
        hits = [(k, v) for k, v in obj.items() if k in exact or fold(k) in folded]
        if len(hits) > 1:
            self.refuse(f"field {name!r} given as {[k for k, _ in hits]}")
        elif hits and hits[0][0] not in exact:
            self.refuse(f"look-alike key {hits[0][0]!r} for {name!r}")
        return [v for _, v in hits if v is not None]

    def one(self, obj: Any, name: str) -> Any:
        values = self.get(obj, name)
        return values[0] if values else None

    def classify(self, key: str, names: dict[str, Any]) -> str | None:
        """The field name ``key`` reads as among ``names``, flagging look-alikes."""
        for name in names:
            exact = self.spellings(name)
            if key in exact:
                return name
            if fold(key) in {fold(s) for s in exact}:
                self.refuse(f"look-alike key {key!r} for {name!r}")
                return name
        return None

    def need(self, tag: str, vendor: str | None = None, output: bool = False) -> None:
        self.out.needs.add((tag, vendor, output))

    def refuse(self, why: str) -> None:
        self.out.refuse.append(why)

    def unknown(self, what: Any) -> None:
        self.out.unknown.append(f"unknown content {what!r}")

    def model(self, value: Any, caps: list[float] | None = None) -> ModelUse:
        if not isinstance(value, str):
            self.refuse(f"model {value!r} is not a string")
        use = ModelUse(value, list(caps or []))
        self.out.models.append(use)
        return use

    def cap(self, value: Any) -> list[float]:
        if value is None:
            return []
        number = number_of(value)
        if number is None:
            self.refuse(f"output cap {value!r} is not a number")
            return []
        return [number]


# -- A: Anthropic Messages -------------------------------------------------------------------------

A_SIMPLE = {  # block type -> (tag, vendor); nested content handled separately
    "text": None, "thinking": None, "redacted_thinking": None, "compaction": None,
    "fallback": None, "search_result": None, "image": ("vision", None),
    "tool_use": ("tool_use", None), "tool_result": ("tool_use", None),
    "tool_reference": ("tool_use", None), "browser_state": ("tool_use", None),
    "tool_addition": ("tool_use", None), "tool_removal": ("tool_use", None),
    "mcp_tool_listing": ("tool_use", None),
    "server_tool_use": ("tool_use", "anthropic"), "mcp_tool_use": ("tool_use", "anthropic"),
    "container_upload": ("tool_use", "anthropic"), "document": None,
}
A_SERVER_RESULTS = ("web_search", "web_fetch", "code_execution", "bash_code_execution",
                    "text_editor_code_execution", "tool_search_tool", "mcp", "advisor")
A_NESTED = {"tool_result": "content", "search_result": "content", "mcp_tool_result": "content"}
A_SERVER_TOOLS = ("web_search_", "web_fetch_", "code_execution_", "tool_search_tool_",
                  "mcp_toolset")
A_CLIENT_TOOLS = ("bash_", "text_editor_", "memory_", "computer_", "browser_")


def anthropic_oracle(doc: dict[str, Any], counting: bool = False) -> Expected:
    r = Reader(gemini=False)
    models = r.get(doc, "model")
    caps = [] if counting else [c for v in r.get(doc, "max_tokens") for c in r.cap(v)]
    if not models:
        r.refuse("no model")
    for value in models:
        r.model(value, caps)
    if r.get(doc, "cache_control"):
        r.need("cache_control")
    for system in r.get(doc, "system"):
        if not isinstance(system, str):
            _a_blocks(r, system)
    messages = r.get(doc, "messages")
    if not messages:
        r.refuse("no messages")
    for message in (m for ms in messages for m in as_list(ms)):
        for content in r.get(message, "content"):
            if not isinstance(content, str):
                _a_blocks(r, content)
    off = False
    for choice in r.get(doc, "tool_choice"):
        kind = r.one(choice, "type") if isinstance(choice, dict) else choice
        if is_word(kind, "none"):
            off = True
        elif is_word(kind, "any", "tool"):
            r.need("tool_use")
        elif not is_word(kind, "auto"):
            r.unknown(f"tool_choice {kind!r}")
            r.need("tool_use")
    for tools in r.get(doc, "tools"):
        tools = as_list(tools)
        if tools and not off:
            r.need("tool_use")
        for tool in tools:
            if r.get(tool, "cache_control"):
                r.need("cache_control")
            kind = r.one(tool, "type")
            if kind is None or kind == "custom":
                continue
            if isinstance(kind, str) and kind.startswith(A_SERVER_TOOLS + A_CLIENT_TOOLS):
                if not off:
                    r.need("tool_use", "anthropic")
            else:
                r.unknown(f"tool type {kind!r}")
    for servers in r.get(doc, "mcp_servers"):
        if as_list(servers):
            r.need("tool_use", "anthropic")
    if r.get(doc, "container"):
        r.need("tool_use", "anthropic")
    r.out.thinking = _a_thinking(r, r.get(doc, "thinking"))
    for config in r.get(doc, "output_config"):
        for fmt in r.get(config, "format"):
            _a_format(r, fmt)
    for fmt in r.get(doc, "output_format"):
        _a_format(r, fmt)
    if any(on(v) for v in r.get(doc, "stream")):
        r.need("streaming", output=True)
    for fallbacks in r.get(doc, "fallbacks"):
        for fallback in as_list(fallbacks):
            if not isinstance(fallback, dict):
                r.refuse(f"fallback {fallback!r}")
                continue
            slugs = r.get(fallback, "model")
            if not slugs:
                r.refuse("fallback without model")
            own_caps = [c for v in r.get(fallback, "max_tokens") for c in r.cap(v)]
            for slug in slugs:
                if slug == "default":
                    continue
                use = r.model(slug, [] if counting else own_caps or caps)
                if any(fold(k) == "thinking" for k in fallback):
                    use.thinking = _a_thinking(r, r.get(fallback, "thinking"))
    return r.out


def _a_thinking(r: Reader, values: list[Any]) -> set[tuple[str, str | None, bool]]:
    needs = set()
    for thinking in values:
        kind = r.one(thinking, "type") if isinstance(thinking, dict) else thinking
        if is_word(kind, "disabled"):
            continue
        if not is_word(kind, "enabled", "adaptive", "between_tools"):
            r.unknown(f"thinking {kind!r}")
        needs.add(("thinking", None, True))
    return needs


def _a_format(r: Reader, fmt: Any) -> None:
    kind = r.one(fmt, "type") if isinstance(fmt, dict) else fmt
    if not is_word(kind, "json_schema"):
        r.unknown(f"output format {kind!r}")
    r.need("json_schema", output=True)


def _a_blocks(r: Reader, content: Any) -> None:
    """Content: a string, a block, or (lists of) blocks, at any depth a reader could look."""
    if isinstance(content, list):
        for item in content:
            _a_blocks(r, item)
    elif isinstance(content, dict):
        _a_block(r, content)


def _a_block(r: Reader, block: dict[str, Any]) -> None:
    kinds = r.get(block, "type")
    if not kinds:
        r.unknown("a block without a type")
    if r.get(block, "cache_control"):
        r.need("cache_control")
    for kind in kinds:
        if not isinstance(kind, str):
            r.unknown(f"block type {kind!r}")
            continue
        if kind in A_SIMPLE:
            if A_SIMPLE[kind] is not None:
                r.need(*A_SIMPLE[kind])
        elif kind.endswith("_tool_result") and kind[: -len("_tool_result")] in A_SERVER_RESULTS:
            r.need("tool_use", "anthropic")
        else:
            r.unknown(kind)
            continue
        if kind in A_NESTED:
            for nested in r.get(block, A_NESTED[kind]):
                _a_blocks(r, nested)
        if kind == "document":
            _a_document(r, block)
        if kind == "image":
            for source in r.get(block, "source"):
                for name in ("type", "media_type"):  # read, so look-alikes count
                    r.get(source, name)
        if kind == "web_fetch_tool_result":
            for result in r.get(block, "content"):
                r.get(result, "type")
                for document in r.get(result, "content"):
                    _a_blocks(r, document)


def _a_document(r: Reader, block: dict[str, Any]) -> None:
    sources = r.get(block, "source")
    if not sources:
        r.refuse("document without source")
    for source in sources:
        if not isinstance(source, dict):
            r.refuse(f"document source {source!r}")
            r.need("vision")
            continue
        kind = r.one(source, "type")
        media_type = r.one(source, "media_type")
        if kind == "base64":
            tag = mime_tag(media_type)
            if tag is not None:
                r.need(tag)
        elif kind in ("url", "file"):
            r.need("vision")
        elif kind == "content":
            for nested in r.get(source, "content"):
                _a_blocks(r, nested)
        elif kind != "text":
            r.unknown(f"document source {kind!r}")


# -- B: OpenAI Chat Completions --------------------------------------------------------------------

B_PARTS = {  # part type -> (tag, key of its URL / file object)
    "text": (None, None), "input_text": (None, None), "refusal": (None, None),
    "prompt_embeds": (None, None), "image_url": ("vision", "image_url"),
    "input_image": ("vision", "image_url"), "image_embeds": ("vision", None),
    "input_audio": ("audio", None), "audio_url": ("audio", "audio_url"),
    "audio_embeds": ("audio", None), "video_url": ("video", "video_url"),
    "input_video": ("video", "video_url"), "file": ("vision", "file"),
    "input_file": ("vision", "file"),
}
B_SHORTHANDS = {"image_url": "vision", "audio_url": "audio", "video_url": "video"}


def openai_oracle(doc: dict[str, Any]) -> Expected:
    r = Reader(gemini=False)
    caps = [c for name in ("max_completion_tokens", "max_tokens")
            for v in r.get(doc, name) for c in r.cap(v)]
    models = r.get(doc, "model")
    if not models:
        r.refuse("no model")
    for value in models:
        r.model(value, caps)
    messages = r.get(doc, "messages")
    if not messages:
        r.refuse("no messages")
    for message in (m for ms in messages for m in as_list(ms)):
        if not isinstance(message, dict):
            continue
        for role in r.get(message, "role"):
            if not isinstance(role, str) or role.lower() in ("tool", "function"):
                r.need("tool_use")
        if r.get(message, "cache_control"):
            r.need("cache_control")
        for content in r.get(message, "content"):
            if not isinstance(content, str):
                for part in _flatten(content):
                    _b_part(r, part)
        for calls in r.get(message, "tool_calls"):
            if as_list(calls):
                r.need("tool_use")
        if r.get(message, "function_call"):
            r.need("tool_use")
        if r.get(message, "audio"):
            r.need("audio")
    off = forced = False
    for choice in r.get(doc, "tool_choice"):
        if isinstance(choice, str):
            off = off or is_word(choice, "none")
            forced = forced or is_word(choice, "required")
            if not is_word(choice, "none", "auto", "required"):
                r.unknown(f"tool_choice {choice!r}")
        else:
            forced = True
            kind = r.one(choice, "type")
            if kind not in ("function", "custom", "allowed_tools"):
                r.unknown(f"tool_choice {kind!r}")
    for tools in r.get(doc, "tools"):
        tools = as_list(tools)
        if tools and not off:
            r.need("tool_use")
        for tool in tools:
            kinds = r.get(tool, "type")
            if any(kind not in ("function", "custom") for kind in kinds):
                r.unknown(f"tool type {kinds!r}")
            if r.get(tool, "cache_control"):
                r.need("cache_control")
    if forced:
        r.need("tool_use")
    calls = r.get(doc, "function_call")
    call_off = bool(calls) and all(is_word(c, "none") for c in calls)
    for functions in r.get(doc, "functions"):
        if as_list(functions) and not call_off:
            r.need("tool_use")
    if any(not isinstance(c, str) for c in calls):
        r.need("tool_use")
    for fmt in r.get(doc, "response_format"):
        kind = r.one(fmt, "type") if isinstance(fmt, dict) else fmt
        if is_word(kind, "json_schema") or not is_word(kind, "json_object", "text"):
            r.need("json_schema", output=True)
        if kind not in ("json_schema", "json_object", "text"):
            r.unknown(f"response_format {kind!r}")
    if any(on(v) for v in r.get(doc, "logprobs")) or r.get(doc, "top_logprobs"):
        r.need("logprobs", output=True)
    if any(not is_word(v, "none") for v in r.get(doc, "reasoning_effort")):
        r.need("thinking", output=True)
    for reasoning in r.get(doc, "reasoning"):
        enabled = r.get(reasoning, "enabled")
        effort = r.get(reasoning, "effort")
        turned_on = (any(on(v) for v in enabled) or bool(r.get(reasoning, "max_tokens"))
                     or any(not is_word(v, "none") for v in effort))
        if not isinstance(reasoning, dict) or (
                turned_on and not any(v is False for v in enabled)):
            r.need("thinking", output=True)
    for thinking in r.get(doc, "thinking"):
        kind = r.one(thinking, "type") if isinstance(thinking, dict) else thinking
        if not is_word(kind, "disabled"):
            r.need("thinking", output=True)
            if not is_word(kind, "enabled", "adaptive"):
                r.unknown(f"thinking {kind!r}")
    if any(on(v) for v in r.get(doc, "enable_thinking")):
        r.need("thinking", output=True)
    for kwargs in r.get(doc, "chat_template_kwargs"):
        if not isinstance(kwargs, dict) or any(on(v) for v in r.get(kwargs, "enable_thinking")):
            r.need("thinking", output=True)
    for modalities in r.get(doc, "modalities"):
        for modality in as_list(modalities):
            if is_word(modality, "image"):
                r.need("image_gen", output=True)
            elif is_word(modality, "audio"):
                r.need("audio", output=True)
            elif not is_word(modality, "text"):
                r.unknown(f"output modality {modality!r}")
    if r.get(doc, "audio"):
        r.need("audio", output=True)
    if any(on(v) for v in r.get(doc, "stream")):
        r.need("streaming", output=True)
    return r.out


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [item for v in value for item in _flatten(v)]
    return [value]


def _b_part(r: Reader, part: Any) -> None:
    if isinstance(part, str) or not isinstance(part, dict):
        return
    if r.get(part, "cache_control") or r.get(part, "prompt_cache_breakpoint"):
        r.need("cache_control")
    kinds = r.get(part, "type")
    if not kinds:
        found = [tag for key, tag in B_SHORTHANDS.items() if r.get(part, key)]
        if not found:
            r.unknown("a part without a type")
        for tag in found:
            r.need(tag)
        return
    for kind in kinds:
        if kind not in B_PARTS:
            r.unknown(f"part type {kind!r}")
            continue
        tag, key = B_PARTS[kind]
        if key == "file":
            for file in r.get(part, "file") or [None]:
                mime = data_url_mime(r.one(file, "file_data")) if isinstance(file, dict) else None
                tag = "vision" if mime is None else mime_tag(mime)
                if tag is not None:
                    r.need(tag)
            continue
        if key is not None:
            for media in r.get(part, key):
                url = r.one(media, "url") if isinstance(media, dict) else media
                if data_url_mime(url) is not None:  # §11: a differing data URL adds its kind
                    media_kind = mime_tag(data_url_mime(url))
                    if media_kind is not None:
                        r.need(media_kind)
        if tag is not None:
            r.need(tag)


# -- C: Gemini generateContent ---------------------------------------------------------------------

C_DATA = {"text": None, "inlineData": "media", "fileData": "media", "functionCall": "tool",
          "functionResponse": "tool", "executableCode": "server",
          "codeExecutionResult": "server", "toolCall": "server", "toolResponse": "server"}
C_METADATA = {name: None for name in (
    "thought", "thoughtSignature", "videoMetadata", "mediaResolution", "partMetadata",
    "mediaProcessing", "speechMetadata", "documentMetadata", "spreadsheetMetadata",
    "audioMetadata")}
C_BUILTINS = ("googleSearch", "googleSearchRetrieval", "codeExecution", "urlContext",
              "googleMaps", "fileSearch", "computerUse", "mcpServers", "retrieval",
              "enterpriseWebSearch", "parallelAiSearch", "exaAiSearch")
#: Schema fields are read by their exact spellings: the proto gives them crossed JSON names
#: (``response_json_schema`` is ``_responseJsonSchema``, ``responseJsonSchema`` is
#: ``response_json_schema_ordered``), so camel/snake pairing does not apply to them.
C_SCHEMAS = frozenset({"responseSchema", "response_schema", "responseJsonSchema",
                       "response_json_schema", "_responseJsonSchema", "_response_json_schema",
                       "response_json_schema_ordered", "responseJsonSchemaOrdered"})
C_SCHEMAS_FOLDED = frozenset(fold(name) for name in C_SCHEMAS)
C_MODALITIES = {"MODALITY_UNSPECIFIED": None, 0: None, "TEXT": None, 1: None,
                "IMAGE": "image_gen", 2: "image_gen", "AUDIO": "audio", 3: "audio",
                "VIDEO": "video_gen"}


def gemini_oracle(doc: dict[str, Any], model: str, *, counting: bool = False,
                  streaming: bool = False) -> Expected:
    r = Reader(gemini=True)
    use = r.model(model)
    nested = r.get(doc, "generateContentRequest")
    if nested:
        if not counting:
            r.refuse("generateContentRequest outside countTokens")
        if r.get(doc, "contents"):
            r.refuse("contents and generateContentRequest")
        for request in nested:
            if not r.get(request, "model"):
                r.refuse("nested request without model")
            _c_same_model(r, request, model)
            _c_request(r, request, counting=True)
    else:
        _c_same_model(r, doc, model)
        _c_request(r, doc, counting=counting)
    if not counting:
        for config in r.get(doc, "generationConfig"):
            for cap in r.get(config, "maxOutputTokens"):
                use.caps += r.cap(cap)
    if streaming:
        r.need("streaming", output=True)
    return r.out


def _c_same_model(r: Reader, body: Any, model: str) -> None:
    for value in r.get(body, "model"):
        if not isinstance(value, str) or value.removeprefix("models/") != model:
            r.refuse(f"body model {value!r} is not the path's {model!r}")


def _c_request(r: Reader, body: Any, *, counting: bool) -> None:
    for system in r.get(body, "systemInstruction"):
        if not isinstance(system, str):
            for content in as_list(system):
                _c_content(r, content)
    for contents in r.get(body, "contents"):
        for content in as_list(contents):
            _c_content(r, content)
    _c_tools(r, body)
    if r.get(body, "cachedContent"):
        r.need("cache_control")
    if not counting:
        for config in r.get(body, "generationConfig"):
            _c_generation(r, config)


def _c_content(r: Reader, content: Any) -> None:
    for parts in r.get(content, "parts"):
        for part in as_list(parts):
            _c_part(r, part, C_DATA)


def _c_part(r: Reader, part: Any, kinds: dict[str, str | None]) -> None:
    if not isinstance(part, dict):
        r.refuse(f"part {part!r}")
        return
    found = []
    unknown = False
    for key, value in part.items():
        name = r.classify(key, {**kinds, **C_METADATA})
        if name is None:
            r.unknown(f"part key {key!r}")
            unknown = True
        elif name in kinds:
            found.append((name, value))
    if len(found) > 1 or (not found and not unknown):  # a oneof: exactly one data field
        r.refuse(f"a part with data {[k for k, _ in found]}")
    for name, value in found:
        kind = kinds[name]
        if kind == "media":
            mime = r.one(value, "mimeType")
            if mime == "":  # §11: an empty mimeType is not set
                mime = None
            if mime is not None or name == "inlineData":
                tag = mime_tag(mime)
            else:
                tag = uri_tag(r.one(value, "fileUri"))
            if tag is not None:
                r.need(tag)
        elif kind == "tool":
            r.need("tool_use")
        elif kind == "server":
            r.need("tool_use", "google")
        if name == "functionResponse":
            for parts in r.get(value, "parts"):
                for nested in as_list(parts):
                    _c_part(r, nested, {"inlineData": "media", "fileData": "media"})


def _c_enum(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _c_tools(r: Reader, body: Any) -> None:
    off = forced = names = False
    for config in r.get(body, "toolConfig"):
        for calling in r.get(config, "functionCallingConfig"):
            for mode in r.get(calling, "mode"):
                mode = _c_enum(mode)
                off = off or mode in ("NONE", 3)
                forced = forced or mode not in ("NONE", 3, "AUTO", 1, "MODE_UNSPECIFIED", 0)
            names = names or any(as_list(n) for n in r.get(calling, "allowedFunctionNames"))
    declared = builtin = False
    for tools in r.get(body, "tools"):
        for tool in as_list(tools):
            if not isinstance(tool, dict):
                r.refuse(f"tool {tool!r}")
                continue
            for key, value in tool.items():
                name = r.classify(key, {"functionDeclarations": None,
                                        **{b: None for b in C_BUILTINS}})
                if name is None:
                    r.unknown(f"tool {key!r}")
                elif name == "functionDeclarations":
                    declared = declared or bool(value)
                elif value is not None:
                    builtin = True
                    r.need("tool_use", "google")
    if (declared and not off) or builtin or forced or (names and not off):
        r.need("tool_use")


def _c_generation(r: Reader, config: Any) -> None:
    if not isinstance(config, dict):
        r.refuse(f"generationConfig {config!r}")
        return
    for modalities in r.get(config, "responseModalities"):
        for modality in as_list(modalities):
            modality = _c_enum(modality)
            if isinstance(modality, (str, int)) and modality in C_MODALITIES:
                if C_MODALITIES[modality] is not None:
                    r.need(C_MODALITIES[modality], output=True)
            else:
                r.unknown(f"response modality {modality!r}")
    if r.get(config, "speechConfig"):
        r.need("audio", output=True)
    if r.get(config, "imageConfig"):
        r.need("image_gen", output=True)
    for formats in r.get(config, "responseFormat"):
        for fmt in as_list(formats):
            for name, tag in (("image", "image_gen"), ("audio", "audio"), ("video", "video_gen")):
                if r.get(fmt, name):
                    r.need(tag, output=True)
            for text in r.get(fmt, "text"):
                if r.get(text, "jsonSchema"):
                    r.need("json_schema", output=True)
    for key, value in config.items():
        if key in C_SCHEMAS or fold(key) in C_SCHEMAS_FOLDED:
            if key not in C_SCHEMAS:
                r.refuse(f"look-alike key {key!r} for a response schema")
            if value is not None:
                r.need("json_schema", output=True)
    if any(on(v) for v in r.get(config, "responseLogprobs")):
        r.need("logprobs", output=True)
    for top in r.get(config, "logprobs"):
        number = number_of(top)
        if number is None or number > 0:
            r.need("logprobs", output=True)
    for thinking in r.get(config, "thinkingConfig"):
        budgets = [number_of(b) for b in r.get(thinking, "thinkingBudget")]
        if budgets and all(b == 0 for b in budgets):
            continue  # thinkingBudget 0 is off, and wins
        levels = [_c_enum(v) for v in r.get(thinking, "thinkingLevel")]
        if (budgets or any(v not in ("THINKING_LEVEL_UNSPECIFIED", 0) for v in levels)
                or any(on(v) for v in r.get(thinking, "includeThoughts"))):
            r.need("thinking", output=True)
        if not isinstance(thinking, dict):
            r.need("thinking", output=True)


def generation_oracle(doc: dict[str, Any], tag: str) -> Expected:
    """``/v1/images/generations`` and ``/v1/videos/generations`` (decisions.md §1)."""
    r = Reader(gemini=False)
    models = r.get(doc, "model")
    if not models:
        r.refuse("no model")
    for value in models:
        r.model(value)
    r.need(tag)
    return r.out


def oracle_for(protocol: str, kind: str, doc: dict[str, Any], model: str | None) -> Expected:
    counting = kind in ("count_tokens", "countTokens")
    if protocol == ANTHROPIC:
        return anthropic_oracle(doc, counting)
    if kind in ("images", "videos"):
        return generation_oracle(doc, "image_gen" if kind == "images" else "video_gen")
    if protocol == OPENAI:
        return openai_oracle(doc)
    return gemini_oracle(doc, model or "", counting=counting,
                         streaming=kind == "streamGenerateContent")


# ==================================================================================================
# Catalogs, envelopes and the guard, as the client sees them.
# ==================================================================================================

MODALITY_TAGS = {"image": "vision", "audio": "audio", "video": "video"}
ALL_TAGS = ("vision", "audio", "video", "tool_use", "streaming", "cache_control", "thinking",
            "json_schema", "logprobs", "image_gen", "video_gen")


def entry(model_id: str, tags: set[str], owned_by: str, *, max_output_tokens: int | None = None,
          as_modalities: bool = False) -> dict[str, Any]:
    """A catalog entry with exactly ``tags``; media input tags optionally as input_modalities."""
    caps, modalities = {"text"}, ["text"]
    for tag in tags:
        modality = {v: k for k, v in MODALITY_TAGS.items()}.get(tag)
        if as_modalities and modality is not None:
            modalities.append(modality)
        else:
            caps.add(tag)
    item: dict[str, Any] = {"id": model_id, "object": "model", "owned_by": owned_by,
                            "capabilities": sorted(caps), "input_modalities": modalities}
    if max_output_tokens is not None:
        item["max_output_tokens"] = max_output_tokens
    return item


def catalog(*entries: dict[str, Any]) -> Catalog:
    return Catalog.model_validate({"object": "list", "data": list(entries)})


TOKENS = {  # status -> allowed (anthropic error.type, openai code, gemini reason)
    400: ({"unsupported_model", "unsupported_capability", "unsupported_content",
           "invalid_request_error"},
          {"unsupported_model", "unsupported_capability", "unsupported_content",
           "max_tokens_exceeded", "invalid_param"},
          {"UNSUPPORTED_MODEL", "UNSUPPORTED_CAPABILITY", "UNSUPPORTED_CONTENT",
           "MAX_TOKENS_EXCEEDED", "INVALID_REQUEST"}),
    413: ({"request_too_large"}, {"request_too_large"}, {"REQUEST_TOO_LARGE"}),
    415: ({"invalid_request_error"}, {"unsupported_media_type"}, {"UNSUPPORTED_MEDIA_TYPE"}),
}


def envelope_token(protocol: str, verdict: Any) -> str:
    """Check a refusal's envelope against decisions.md §5 and return its fixed token."""
    assert verdict.status in TOKENS, verdict
    assert ("content-type", "application/json") in [
        (k.lower(), v.split(";")[0].strip()) for k, v in verdict.headers], verdict.headers
    doc = json.loads(verdict.body)
    anthropic_types, openai_codes, gemini_reasons = TOKENS[verdict.status]
    if protocol == ANTHROPIC:
        assert set(doc) == {"type", "error"} and doc["type"] == "error", doc
        assert set(doc["error"]) == {"type", "message"}, doc
        token = doc["error"]["type"]
        assert token in anthropic_types, doc
        message = doc["error"]["message"]
    elif protocol == OPENAI:
        error = doc["error"]
        assert set(doc) == {"error"} and set(error) == {"message", "type", "param", "code"}, doc
        assert error["type"] == "invalid_request_error", doc
        assert error["param"] is None or isinstance(error["param"], str), doc
        token = error["code"]
        assert token in openai_codes, doc
        message = error["message"]
    else:
        error = doc["error"]
        assert set(doc) == {"error"}, doc
        assert set(error) == {"code", "message", "status", "details"}, doc
        assert error["code"] == verdict.status and error["status"] == "INVALID_ARGUMENT", doc
        (detail,) = error["details"]
        assert detail["@type"] == "type.googleapis.com/google.rpc.ErrorInfo", doc
        assert detail["domain"] == "modelguard", doc
        assert all(isinstance(k, str) and isinstance(v, str)
                   for k, v in detail["metadata"].items()), doc
        token = detail["reason"]
        assert token in gemini_reasons, doc
        message = error["message"]
    assert isinstance(message, str) and message.strip(), doc
    return token


CAPABILITY_TOKEN = {ANTHROPIC: "unsupported_capability", OPENAI: "unsupported_capability",
                    GEMINI: "UNSUPPORTED_CAPABILITY"}
CAP_TOKEN = {ANTHROPIC: "invalid_request_error", OPENAI: "max_tokens_exceeded",
             GEMINI: "MAX_TOKENS_EXCEEDED"}


def check(guard: Guard, target: str, body: bytes, headers: dict[str, str] | None = None) -> Any:
    """The verdict without an event loop (``check_sync``: the same steps as ``await check``,
    which would hand a body that may inflate past 1 MiB to a worker thread of the loop)."""
    return guard.check_sync("POST", target, headers or {"content-type": "application/json"},
                            body)


# ==================================================================================================
# Generators: valid bodies from each protocol's grammar (protocols.md §1).
# ==================================================================================================

MODEL = "model-under-test"


class _Absent:
    """A key left out of a generated body (survives deepcopy as itself)."""

    def __deepcopy__(self, memo: dict[int, Any]) -> _Absent:
        return self

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5E"
       "rkJggg==")
TEXT = (st.sampled_from(["Hello", "Describe the attachment.", "é ñ 漢字 🙂", "", "a\"b\\c\n"])
        | st.text(max_size=8))
CACHE = st.sampled_from([ABSENT] * 5 + [None, {"type": "ephemeral"},
                                        {"type": "ephemeral", "ttl": "1h"}])
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


def put(obj: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    if value is not ABSENT:
        obj[key] = value
    return obj


def maybe(value: Any) -> st.SearchStrategy[Any]:
    """``value`` (a copy) or absent, half the time each."""
    return st.sampled_from([ABSENT, value]).map(copy.deepcopy)


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A value of ``strategy`` or absent, half the time each."""
    return st.just(ABSENT) | strategy


def fresh(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Templates are deep-copied so no two places of one body share an object."""
    return strategy.map(copy.deepcopy)


# -- A -------------------------------------------------------------------------------------------

@st.composite
def a_text(draw: Any, cache: bool = True) -> dict[str, Any]:
    block = {"type": "text", "text": draw(TEXT)}
    put(block, "citations", draw(maybe([])))
    return put(block, "cache_control", draw(CACHE)) if cache else block


A_IMAGE_SOURCES = fresh(st.sampled_from([
    {"type": "base64", "media_type": "image/png", "data": PNG},
    {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQSkZJRg=="},
    {"type": "base64", "media_type": "image/gif", "data": "R0lGODlhAQABAAAAACw="},
    {"type": "base64", "media_type": "image/webp", "data": "UklGRhoAAABXRUJQ"},
    {"type": "url", "url": "https://example.com/cat.png"},
    {"type": "file", "file_id": "file_011CNha8iCJcU1wXNR6q4V8w"},
]))


@st.composite
def a_image(draw: Any) -> dict[str, Any]:
    block = {"type": "image", "source": draw(A_IMAGE_SOURCES)}
    put(block, "transformations", draw(maybe({"oversized_image": "downsize"})))
    return put(block, "cache_control", draw(CACHE))


@st.composite
def a_document(draw: Any) -> dict[str, Any]:
    source = draw(st.one_of(
        fresh(st.sampled_from([
            {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"},
            {"type": "url", "url": "https://example.com/report.pdf"},
            {"type": "file", "file_id": "file_011"},
            {"type": "text", "media_type": "text/plain", "data": "Plain notes."},
        ])),
        st.builds(lambda c: {"type": "content", "content": c},
                  TEXT | st.lists(st.one_of(a_text(), a_image()), min_size=1, max_size=3)),
    ))
    block = {"type": "document", "source": source}
    put(block, "title", draw(maybe("Report")))
    put(block, "context", draw(maybe("Quarterly numbers")))
    put(block, "citations", draw(maybe({"enabled": True})))
    return put(block, "cache_control", draw(CACHE))


@st.composite
def a_search_result(draw: Any) -> dict[str, Any]:
    block = {"type": "search_result", "source": "https://example.com/kb/1", "title": "KB",
             "content": draw(st.lists(a_text(), min_size=1, max_size=2)),
             "citations": {"enabled": draw(st.booleans())}}
    return put(block, "cache_control", draw(CACHE))


A_THINKING_BLOCKS = fresh(st.sampled_from([
    {"type": "thinking", "thinking": "Let me think.", "signature": "EqQBCgIYAhIM"},
    {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"},
]))


@st.composite
def a_tool_use(draw: Any) -> dict[str, Any]:
    block = {"type": "tool_use", "id": "toolu_01", "name": "get_weather",
             "input": {"city": draw(TEXT)}}
    return put(block, "cache_control", draw(CACHE))


@st.composite
def a_tool_result(draw: Any) -> dict[str, Any]:
    nested = st.one_of(a_text(), a_image(), a_document(), a_search_result(),
                       st.just({"type": "tool_reference", "tool_name": "get_weather"}))
    block = {"type": "tool_result", "tool_use_id": "toolu_01"}
    put(block, "content", draw(maybe(None) | TEXT | st.lists(nested, max_size=3)))
    put(block, "is_error", draw(maybe(False)))
    return put(block, "cache_control", draw(CACHE))


@st.composite
def a_server_block(draw: Any) -> dict[str, Any]:
    kind = draw(st.sampled_from([
        "server_tool_use", "web_search_tool_result", "web_fetch_tool_result",
        "code_execution_tool_result", "bash_code_execution_tool_result", "container_upload",
        "mcp_tool_use", "mcp_tool_result"]))
    if kind == "server_tool_use":
        block = {"type": kind, "id": "srvtoolu_01", "name": draw(st.sampled_from(
            ["web_search", "web_fetch", "code_execution"])), "input": {"query": "q"}}
    elif kind == "web_search_tool_result":
        block = {"type": kind, "tool_use_id": "srvtoolu_01", "content": [
            {"type": "web_search_result", "url": "https://example.com", "title": "Ex",
             "encrypted_content": "EqgfCioIARgB"}]}
    elif kind == "web_fetch_tool_result":
        block = {"type": kind, "tool_use_id": "srvtoolu_01", "content": {
            "type": "web_fetch_result", "url": "https://example.com/a.pdf",
            "content": draw(a_document())}}
    elif kind == "container_upload":
        block = {"type": kind, "file_id": "file_011"}
    elif kind == "mcp_tool_use":
        block = {"type": kind, "id": "mcptoolu_01", "name": "echo", "server_name": "ex",
                 "input": {}}
    elif kind == "mcp_tool_result":
        block = {"type": kind, "tool_use_id": "mcptoolu_01",
                 "content": draw(TEXT | st.lists(a_text(cache=False), max_size=2))}
    else:
        block = {"type": kind, "tool_use_id": "srvtoolu_01",
                 "content": {"type": kind.replace("_tool_result", "_result"), "stdout": "1",
                             "stderr": "", "return_code": 0, "content": []}}
    return put(block, "cache_control", draw(CACHE))


A_BLOCK = st.one_of(a_text(), a_image(), a_document(), a_search_result(), A_THINKING_BLOCKS,
                    a_tool_use(), a_tool_result(), a_server_block())
A_MESSAGE = st.builds(
    lambda role, content: {"role": role, "content": content},
    st.sampled_from(["user", "assistant"]), TEXT | st.lists(A_BLOCK, min_size=1, max_size=4))
A_TOOL_TEMPLATES = [
    {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
    {"type": "web_search_20260209", "name": "web_search"},
    {"type": "web_fetch_20250910", "name": "web_fetch"},
    {"type": "code_execution_20250825", "name": "code_execution"},
    {"type": "tool_search_tool_regex_20251119", "name": "tool_search_tool_regex"},
    {"type": "tool_search_tool_bm25", "name": "tool_search_tool_bm25"},
    {"type": "bash_20250124", "name": "bash"},
    {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
    {"type": "memory_20250818", "name": "memory"},
    {"type": "computer_toolset_20260801"},
    {"type": "browser_toolset_20260801"},
    {"type": "mcp_toolset", "mcp_server_name": "ex"},
]


@st.composite
def a_tool(draw: Any) -> dict[str, Any]:
    if draw(st.booleans()):
        tool = copy.deepcopy(draw(st.sampled_from(A_TOOL_TEMPLATES)))
    else:
        tool = {"name": "get_weather", "description": "Weather.", "input_schema": SCHEMA}
        put(tool, "type", draw(maybe("custom")))
        put(tool, "strict", draw(maybe(True)))
    return put(tool, "cache_control", draw(CACHE))


@st.composite
def anthropic_requests(draw: Any) -> tuple[str, str, dict[str, Any]]:
    counting = draw(st.integers(0, 4)) == 0
    body: dict[str, Any] = {"model": MODEL,
                            "messages": draw(st.lists(A_MESSAGE, min_size=1, max_size=4))}
    if not counting:
        body["max_tokens"] = draw(st.integers(0, 64000))
        put(body, "stream", draw(st.sampled_from([ABSENT, ABSENT, True, False, None])))
    put(body, "system", draw(maybe(None) | TEXT | st.lists(a_text(), min_size=1, max_size=2)))
    put(body, "tools", draw(maybe(None) | st.lists(a_tool(), max_size=3)))
    choice = draw(st.sampled_from([ABSENT, ABSENT, "auto", "any", "tool", "none", "NONE", "Any"]))
    if choice is not ABSENT:
        body["tool_choice"] = {"type": choice}
        if choice == "tool":
            body["tool_choice"]["name"] = "get_weather"
        put(body["tool_choice"], "disable_parallel_tool_use", draw(maybe(True)))
    put(body, "thinking", draw(fresh(st.sampled_from([
        ABSENT, ABSENT, None, {"type": "enabled", "budget_tokens": 2048},
        {"type": "enabled", "budget_tokens": 1024, "display": "omitted"},
        {"type": "adaptive"}, {"type": "adaptive", "display": "summarized"},
        {"type": "disabled"}, {"type": "between_tools"}, {"type": "Enabled"}]))))
    put(body, "output_config", draw(fresh(st.sampled_from([
        ABSENT, ABSENT, None, {"effort": "high"},
        {"format": {"type": "json_schema", "schema": SCHEMA}},
        {"effort": "low", "format": {"type": "json_schema", "schema": SCHEMA}}]))))
    put(body, "output_format", draw(maybe({"type": "json_schema", "schema": SCHEMA})))
    put(body, "cache_control", draw(CACHE))
    put(body, "mcp_servers", draw(fresh(st.sampled_from([
        ABSENT, ABSENT, None, [], [{"type": "url", "url": "https://mcp.example.com/sse",
                                   "name": "ex"}]]))))
    put(body, "container", draw(st.sampled_from([ABSENT, ABSENT, None, "container_011"])))
    put(body, "metadata", draw(maybe({"user_id": "u-1"})))
    put(body, "temperature", draw(maybe(0.5)))
    put(body, "stop_sequences", draw(maybe(["\n\nHuman:"])))
    put(body, "service_tier", draw(maybe("auto")))
    target = "/v1/messages/count_tokens" if counting else draw(
        st.sampled_from(["/v1/messages", "/v1/messages?beta=true"]))
    return ANTHROPIC, target, body


# -- B -------------------------------------------------------------------------------------------

B_URLS = ["https://example.com/cat.png", "data:image/png;base64," + PNG,
          "data:image/jpeg;base64,/9j/4AAQ", "data:video/mp4;base64,AAAAIGZ0eXBpc29t",
          "data:audio/wav;base64,UklGRiQAAABXQVZF", "DATA:Video/webm;base64,GkXfo59C"]


@st.composite
def b_part(draw: Any, media: bool = True) -> dict[str, Any]:
    kinds = ["text", "input_text"] + (["image_url", "input_audio", "file", "video_url",
                                        "audio_url", "input_image", "input_video",
                                        "shorthand", "image_embeds"] if media else [])
    kind = draw(st.sampled_from(kinds))
    if kind in ("text", "input_text"):
        part = {"type": kind, "text": draw(TEXT)}
    elif kind == "image_url":
        part = {"type": kind, "image_url": {"url": draw(st.sampled_from(B_URLS))}}
        put(part["image_url"], "detail", draw(maybe("high")))
    elif kind == "input_image":
        part = {"type": kind, "image_url": draw(st.sampled_from(B_URLS))}
    elif kind == "input_audio":
        part = {"type": kind, "input_audio": {"data": "UklGRiQAAABXQVZF",
                                              "format": draw(st.sampled_from(["wav", "mp3"]))}}
    elif kind == "file":
        part = {"type": kind, "file": draw(fresh(st.sampled_from([
            {"file_data": "data:application/pdf;base64,JVBERi0xLjQK", "filename": "a.pdf"},
            {"file_id": "file-abc123"},
            {"file_data": "data:text/plain;base64,aGVsbG8=", "filename": "a.txt"}])))}
    elif kind in ("video_url", "input_video"):
        part = {"type": kind, "video_url": {"url": draw(st.sampled_from(
            ["https://example.com/clip.mp4", "data:video/mp4;base64,AAAAIGZ0eXBpc29t"]))}}
    elif kind == "audio_url":
        part = {"type": kind, "audio_url": {"url": "https://example.com/a.mp3"}}
    elif kind == "image_embeds":
        part = {"type": kind, "image_embeds": "AAAA"}
    else:
        key = draw(st.sampled_from(["image_url", "audio_url", "video_url"]))
        part = {key: "https://example.com/media"}
    put(part, "cache_control", draw(CACHE))
    put(part, "prompt_cache_breakpoint", draw(st.sampled_from(
        [ABSENT] * 6 + [None, {"mode": "explicit", "ttl": "30m"}])))
    return part


B_TOOL_CALLS = [{"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{}"}}]


@st.composite
def b_message(draw: Any) -> dict[str, Any]:
    role = draw(st.sampled_from(["system", "developer", "user", "user", "assistant", "tool",
                                 "function", "Tool"]))
    message: dict[str, Any] = {"role": role}
    if role in ("system", "developer"):
        message["content"] = draw(TEXT | st.lists(b_part(media=False), min_size=1, max_size=2))
    elif role == "user":
        message["content"] = draw(TEXT | st.lists(b_part(), min_size=1, max_size=4))
    elif role == "assistant":
        message["content"] = draw(st.none() | TEXT | st.lists(
            st.one_of(b_part(media=False), st.just({"type": "refusal", "refusal": "No."})),
            min_size=1, max_size=2))
        put(message, "tool_calls", draw(fresh(st.sampled_from([ABSENT, ABSENT, [],
                                                               B_TOOL_CALLS]))))
        put(message, "function_call", draw(st.sampled_from(
            [ABSENT] * 4 + [None, {"name": "get_weather", "arguments": "{}"}])))
        put(message, "audio", draw(st.sampled_from([ABSENT] * 4 + [None, {"id": "audio_1"}])))
        put(message, "reasoning_content", draw(maybe("thought")))
    elif role.lower() == "tool":
        message["tool_call_id"] = "call_1"
        message["content"] = draw(TEXT | st.lists(b_part(media=False), min_size=1, max_size=2))
    else:
        message["name"] = "get_weather"
        message["content"] = draw(TEXT)
    return put(message, "cache_control", draw(CACHE))


B_TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": SCHEMA}},
    {"type": "function", "function": {"name": "get_weather", "parameters": SCHEMA,
                                      "strict": True}},
    {"type": "custom", "custom": {"name": "grammar", "format": {
        "type": "grammar", "grammar": {"syntax": "lark", "definition": "start: /a+/"}}}},
]


@st.composite
def b_tool(draw: Any) -> dict[str, Any]:
    return put(copy.deepcopy(draw(st.sampled_from(B_TOOLS))), "cache_control", draw(CACHE))


@st.composite
def openai_requests(draw: Any) -> tuple[str, str, dict[str, Any]]:
    body: dict[str, Any] = {"model": MODEL,
                            "messages": draw(st.lists(b_message(), min_size=1, max_size=5))}
    put(body, "tools", draw(maybe(None) | st.lists(b_tool(), max_size=3)))
    put(body, "tool_choice", draw(fresh(st.sampled_from([
        ABSENT, ABSENT, None, "none", "auto", "required", "NONE",
        {"type": "function", "function": {"name": "get_weather"}},
        {"type": "custom", "custom": {"name": "grammar"}},
        {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [
            {"type": "function", "function": {"name": "get_weather"}}]}}]))))
    put(body, "parallel_tool_calls", draw(maybe(False)))
    put(body, "functions", draw(fresh(st.sampled_from([
        ABSENT, ABSENT, None, [], [{"name": "get_weather", "parameters": SCHEMA}]]))))
    put(body, "function_call", draw(st.sampled_from(
        [ABSENT, ABSENT, "none", "auto", {"name": "get_weather"}])))
    put(body, "response_format", draw(fresh(st.sampled_from([
        ABSENT, ABSENT, None, {"type": "text"}, {"type": "json_object"},
        {"type": "json_schema", "json_schema": {"name": "a", "schema": SCHEMA,
                                                "strict": True}}]))))
    put(body, "logprobs", draw(st.sampled_from([ABSENT, ABSENT, None, True, False])))
    put(body, "top_logprobs", draw(st.sampled_from([ABSENT] * 4 + [None, 0, 5, 20])))
    put(body, "reasoning_effort", draw(st.sampled_from(
        [ABSENT] * 4 + [None, "none", "minimal", "low", "medium", "high", "xhigh", "NONE"])))
    put(body, "reasoning", draw(fresh(st.sampled_from([
        ABSENT] * 4 + [None, {"effort": "high"}, {"effort": "none"}, {"enabled": True},
                       {"enabled": False}, {"max_tokens": 2000}, {"exclude": True},
                       {"enabled": False, "effort": "high"}]))))
    put(body, "thinking", draw(fresh(st.sampled_from([
        ABSENT] * 3 + [None, {"type": "enabled", "budget_tokens": 1024}, {"type": "disabled"},
                       {"type": "adaptive"}]))))
    put(body, "enable_thinking", draw(st.sampled_from([ABSENT] * 3 + [None, True, False])))
    put(body, "chat_template_kwargs", draw(fresh(st.sampled_from([
        ABSENT] * 3 + [{}, {"enable_thinking": True}, {"enable_thinking": False}]))))
    put(body, "modalities", draw(fresh(st.sampled_from([
        ABSENT] * 3 + [None, [], ["text"], ["text", "audio"], ["image", "text"]]))))
    put(body, "audio", draw(st.sampled_from([ABSENT] * 3 + [None,
                                                           {"voice": "alloy", "format": "wav"}])))
    stream = draw(st.sampled_from([ABSENT, ABSENT, True, False, None]))
    put(body, "stream", stream)
    if stream is True:
        put(body, "stream_options", draw(maybe({"include_usage": True})))
    put(body, "max_tokens", draw(maybe(None) | st.integers(0, 100000)))
    put(body, "max_completion_tokens", draw(maybe(None) | st.integers(0, 100000)))
    for key, value in (("web_search_options", {"search_context_size": "low"}),
                       ("prompt_cache_key", "k"), ("seed", 7), ("temperature", 0.2),
                       ("metadata", {"a": "b"}), ("store", False), ("n", 2),
                       ("prediction", {"type": "content", "content": "x"})):
        put(body, key, draw(maybe(value)))
    return OPENAI, draw(st.sampled_from(["/v1/chat/completions", "/chat/completions"])), body


# -- C -------------------------------------------------------------------------------------------

C_MIMES = ["image/png", "image/jpeg", "IMAGE/WEBP", "image/heic", "audio/wav", "audio/mp3",
           "audio/L16;rate=16000", "video/mp4", "video/*", "VIDEO/webm", "application/pdf",
           "text/plain", "text/csv", "text/html; charset=utf-8", "application/json",
           "application/x-python", "application/octet-stream"]
C_URIS = ["https://generativelanguage.googleapis.com/v1beta/files/abc123",
          "https://www.youtube.com/watch?v=9hE5-98ZeCg", "https://youtu.be/9hE5-98ZeCg",
          "gs://bucket/photo.png", "https://example.com/a.mp3", "https://example.com/doc.pdf",
          "https://example.com/notes.txt", "https://example.com/clip.mp4"]


def sp(draw: Any, name: str) -> str:
    """Either proto3 JSON spelling of a Gemini field."""
    return draw(st.sampled_from([name, snake(name)]))


@st.composite
def c_media(draw: Any) -> dict[str, Any]:
    if draw(st.booleans()):
        part = {sp(draw, "inlineData"): {sp(draw, "mimeType"): draw(st.sampled_from(C_MIMES)),
                                         "data": "AAAA"}}
    else:
        blob = {sp(draw, "fileUri"): draw(st.sampled_from(C_URIS))}
        put(blob, sp(draw, "mimeType"), draw(optional(st.sampled_from(C_MIMES))))
        part = {sp(draw, "fileData"): blob}
    return part


@st.composite
def c_part(draw: Any) -> dict[str, Any]:
    kind = draw(st.sampled_from(["text", "text", "media", "media", "functionCall",
                                 "functionResponse", "executableCode", "codeExecutionResult",
                                 "toolCall", "toolResponse"]))
    if kind == "text":
        part: dict[str, Any] = {"text": draw(TEXT)}
        if draw(st.booleans()):
            part["thought"] = True
            put(part, sp(draw, "thoughtSignature"), draw(maybe("c2lnbmF0dXJl")))
    elif kind == "media":
        part = draw(c_media())
        put(part, sp(draw, "videoMetadata"), draw(maybe({sp(draw, "startOffset"): "1s"})))
        put(part, sp(draw, "mediaResolution"), draw(maybe({"level": "MEDIA_RESOLUTION_LOW"})))
    elif kind == "functionCall":
        part = {sp(draw, kind): {"name": "get_weather", "args": {"city": "Paris"}}}
    elif kind == "functionResponse":
        response: dict[str, Any] = {"name": "get_weather", "response": {"ok": True}}
        put(response, "parts", draw(optional(st.lists(c_media(), max_size=2))))
        put(response, sp(draw, "willContinue"), draw(maybe(False)))
        part = {sp(draw, kind): response}
    elif kind == "executableCode":
        part = {sp(draw, kind): {"language": "PYTHON", "code": "print(1)"}}
    elif kind == "codeExecutionResult":
        part = {sp(draw, kind): {"outcome": "OUTCOME_OK", "output": "1"}}
    else:
        part = {sp(draw, kind): {"id": "t1", sp(draw, "toolType"): "GOOGLE_SEARCH_WEB",
                                 "args" if kind == "toolCall" else "response": {}}}
    return part


@st.composite
def c_content(draw: Any, parts: st.SearchStrategy[Any] | None = None) -> dict[str, Any]:
    parts = c_part() if parts is None else parts
    content: dict[str, Any] = {"parts": draw(st.lists(parts, min_size=1, max_size=3))}
    return put(content, "role", draw(st.sampled_from([ABSENT, "user", "model"])))


@st.composite
def c_tool(draw: Any) -> dict[str, Any]:
    kind = draw(st.sampled_from(["functionDeclarations", "functionDeclarations", "googleSearch",
                                 "codeExecution", "urlContext", "googleSearchRetrieval",
                                 "googleMaps", "fileSearch", "computerUse", "retrieval",
                                 "enterpriseWebSearch"]))
    if kind == "functionDeclarations":
        params = draw(st.sampled_from(["parameters", "parametersJsonSchema",
                                       "parameters_json_schema"]))
        declarations = [{"name": "get_weather", "description": "Weather.",
                         params: {"type": "OBJECT", "properties": {}}}]
        return {sp(draw, kind): draw(st.sampled_from([declarations, [], declarations]))}
    return {sp(draw, kind): {}}


@st.composite
def c_generation(draw: Any) -> dict[str, Any]:
    config: dict[str, Any] = {}
    put(config, "temperature", draw(maybe(0.3)))
    put(config, sp(draw, "maxOutputTokens"), draw(optional(
        st.integers(0, 100000) | st.integers(0, 100000).map(str))))
    put(config, sp(draw, "candidateCount"), draw(maybe(1)))
    put(config, sp(draw, "responseMimeType"), draw(st.sampled_from(
        [ABSENT, ABSENT, "text/plain", "application/json", "text/x.enum"])))
    schema_key = draw(st.sampled_from([ABSENT, ABSENT, ABSENT, "responseSchema",
                                       "response_schema", "responseJsonSchema",
                                       "response_json_schema", "_responseJsonSchema",
                                       "response_json_schema_ordered"]))
    if schema_key is not ABSENT:
        config[schema_key] = {"type": "OBJECT", "properties": {"a": {"type": "STRING"}}}
    put(config, sp(draw, "responseModalities"), draw(optional(st.lists(st.sampled_from(
        ["TEXT", "IMAGE", "AUDIO", "VIDEO", "text", "image", 1, 2, 3]), max_size=3))))
    put(config, sp(draw, "speechConfig"), draw(st.sampled_from(
        [ABSENT] * 4 + [{"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}}])))
    put(config, sp(draw, "imageConfig"), draw(st.sampled_from(
        [ABSENT] * 4 + [{"aspectRatio": "16:9"}])))
    put(config, sp(draw, "responseLogprobs"), draw(st.sampled_from([ABSENT] * 3 + [True, False])))
    put(config, "logprobs", draw(st.sampled_from([ABSENT] * 3 + [0, 3])))
    if draw(st.booleans()):
        thinking: dict[str, Any] = {}
        switch = draw(st.sampled_from(["budget", "level", "neither"]))
        if switch == "budget":
            thinking[sp(draw, "thinkingBudget")] = draw(st.sampled_from(
                [0, "0", -1, 1024, "2048"]))
        elif switch == "level":
            thinking[sp(draw, "thinkingLevel")] = draw(st.sampled_from(
                ["LOW", "HIGH", "MINIMAL", "THINKING_LEVEL_UNSPECIFIED", "low"]))
        put(thinking, sp(draw, "includeThoughts"), draw(optional(st.booleans())))
        config[sp(draw, "thinkingConfig")] = thinking
    if draw(st.integers(0, 4)) == 0:
        config[sp(draw, "responseFormat")] = draw(st.lists(fresh(st.sampled_from([
            {"text": {"mimeType": "application/json", "jsonSchema": SCHEMA}},
            {"text": {"mime_type": "text/plain"}}, {"image": {}}, {"audio": {}},
            {"video": {}}])), max_size=2))
    put(config, sp(draw, "mediaResolution"), draw(maybe("MEDIA_RESOLUTION_LOW")))
    return config


@st.composite
def gemini_requests(draw: Any) -> tuple[str, str, dict[str, Any]]:
    method = draw(st.sampled_from(["generateContent", "generateContent",
                                   "streamGenerateContent", "countTokens"]))
    version = draw(st.sampled_from(["v1", "v1beta", "v1alpha"]))
    body: dict[str, Any] = {"contents": draw(st.lists(c_content(), min_size=1, max_size=3))}
    put(body, sp(draw, "systemInstruction"), draw(maybe(None) | c_content(
        st.one_of(st.builds(lambda t: {"text": t}, TEXT), c_media()))))
    put(body, "tools", draw(maybe(None) | st.lists(c_tool(), max_size=3)))
    if draw(st.booleans()):
        mode = draw(st.sampled_from(["AUTO", "ANY", "NONE", "VALIDATED", "auto", "none", "Any",
                                     1, 2, 3, 4, "MODE_UNSPECIFIED", ABSENT]))
        calling = put({}, "mode", mode)
        if mode in ("ANY", "VALIDATED", "Any", 2, 4, "AUTO"):
            put(calling, sp(draw, "allowedFunctionNames"), draw(maybe(["get_weather"])))
        body[sp(draw, "toolConfig")] = {sp(draw, "functionCallingConfig"): calling}
    put(body, sp(draw, "cachedContent"), draw(st.sampled_from(
        [ABSENT] * 4 + [None, "cachedContents/abc123"])))
    put(body, sp(draw, "generationConfig"), draw(maybe(None) | c_generation()))
    put(body, sp(draw, "safetySettings"), draw(maybe([
        {"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}])))
    if method == "countTokens" and draw(st.booleans()):
        body = {sp(draw, "generateContentRequest"): {"model": f"models/{MODEL}", **body}}
    target = f"/{version}/models/{MODEL}:{method}"
    if method == "streamGenerateContent" and draw(st.booleans()):
        target += "?alt=sse"
    return GEMINI, target, body




# ==================================================================================================
# Property 1: generated bodies need exactly what the oracle says, and the guard acts on it.
# ==================================================================================================


def _vendor_pairs(expected: Expected, counting: bool) -> set[tuple[str, str | None]]:
    return {(tag, vendor) for tag, vendor, _ in expected.triples(counting)}


GENERATED = settings(max_examples=800 * SCALE, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@GENERATED
@given(request=anthropic_requests(), data=st.data())
def test_generated_anthropic_bodies(request: tuple[str, str, dict[str, Any]],
                                    data: st.DataObject) -> None:
    generated_body_property(request, data)


@GENERATED
@given(request=openai_requests(), data=st.data())
def test_generated_openai_bodies(request: tuple[str, str, dict[str, Any]],
                                 data: st.DataObject) -> None:
    generated_body_property(request, data)


@GENERATED
@given(request=gemini_requests(), data=st.data())
def test_generated_gemini_bodies(request: tuple[str, str, dict[str, Any]],
                                 data: st.DataObject) -> None:
    generated_body_property(request, data)


def generated_body_property(request: tuple[str, str, dict[str, Any]],
                            data: st.DataObject) -> None:
    """modelguard's required tags equal the oracle's; exactly those tags are allowed; one tag
    less (or another vendor, for server-run tools; or a lower output limit) is refused."""
    protocol, target, body = request
    raw = json.dumps(body, ensure_ascii=data.draw(st.booleans(), "ascii")).encode()
    note(f"{target} {raw.decode()}")
    route = match_route(target)
    assert route is not None and route.protocol == protocol, target
    counting = route.kind in ("count_tokens", "countTokens")
    expected = oracle_for(protocol, route.kind, strict_loads(raw), route.model)
    assert not expected.refuse and not expected.unknown, expected  # valid bodies only
    features = read_features(route, raw, [], Options())
    assert features.unknown == []
    assert [m.slug for m in features.models] == [MODEL]
    tags = expected.tags(counting)
    for tag in sorted(tags):
        event(f"{protocol} needs {tag}")
    event(f"{protocol} needs {len(tags)} tags")
    assert required_tags(features, route) == tags
    got = {(n.tag, n.vendor) for n in features.needs if not (counting and n.output)}
    assert got == _vendor_pairs(expected, counting)

    vendors = {v for _, v in got if v is not None}
    assert len(vendors) <= 1
    owner = vendors.pop() if vendors else data.draw(
        st.sampled_from(["anthropic", "openai", "google", "acme"]), "owner")
    as_modalities = data.draw(st.booleans(), "media tags as input_modalities")
    caps = [] if counting else [c for m in expected.models for c in m.caps]
    cap = int(max(caps)) if caps else None
    limit = None if cap is None else data.draw(st.none() | st.integers(cap, cap + 10**6), "limit")

    def verdict(tags: set[str], owned_by: str = owner, max_output: int | None = limit) -> Any:
        model = entry(MODEL, tags, owned_by, max_output_tokens=max_output,
                      as_modalities=as_modalities)
        other = entry("everything", set(ALL_TAGS), owned_by)
        return check(Guard(catalog(model, other)), target, raw)

    allowed = verdict(tags)
    assert allowed.allowed and allowed.status == 200, allowed.body
    assert allowed.required == frozenset(tags)
    for tag in sorted(tags):
        refused = verdict(tags - {tag})
        assert not refused.allowed and refused.status == 400, (tag, refused)
        assert {v.reason for v in refused.violations} == {"unsupported_capability"}, tag
        assert {v.capability for v in refused.violations} == {tag}
        assert envelope_token(protocol, refused) == CAPABILITY_TOKEN[protocol]
    if got != {(t, None) for t, _ in got}:  # a server-run tool: only its vendor's models
        refused = verdict(tags, owned_by="acme")
        assert not refused.allowed and refused.status == 400
        assert refused.violations[0].capability == "tool_use"
        assert envelope_token(protocol, refused) == CAPABILITY_TOKEN[protocol]
    if cap is not None and cap >= 1:
        refused = verdict(tags, max_output=cap - 1)
        assert not refused.allowed and refused.status == 400
        assert refused.violations[0].reason == "max_tokens_exceeded"
        assert envelope_token(protocol, refused) == CAP_TOKEN[protocol]


@given(st.sampled_from(FIXTURES))
@settings(max_examples=len(FIXTURES) * 2, deadline=None)
def test_oracle_agrees_with_the_sdk_fixtures(path: Path) -> None:
    """The oracle itself, checked against the tags recorded with each SDK capture."""
    fx = json.loads(path.read_text())
    route = match_route(fx["path"])
    assert route is not None
    expected = oracle_for(fx["protocol"], route.kind, fx["body"], route.model)
    assert not expected.refuse and not expected.unknown
    assert expected.tags(route.kind in ("count_tokens", "countTokens")) == set(fx["tags"])


# ==================================================================================================
# Property 2: mutated SDK fixtures never crash the guard, never 5xx, and never bypass it.
# ==================================================================================================


class Obj:
    """A JSON object as written: ordered pairs, so keys may repeat."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[list[Any]]) -> None:
        self.pairs = pairs

    def __repr__(self) -> str:
        return f"Obj({self.pairs!r})"


class Raw:
    """A token written as is (``NaN``, ``1e400``, ``"\\ud800"``)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Raw({self.text[:40]!r})"


class Esc:
    """A string written with its letters as ``\\u00XX`` escapes (the same value when read)."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Esc({self.value!r})"


class Deep:
    """``value`` wrapped in ``levels`` arrays or objects (written flat: no recursion)."""

    __slots__ = ("value", "levels", "as_object")

    def __init__(self, value: Any, levels: int, as_object: bool) -> None:
        self.value, self.levels, self.as_object = value, levels, as_object

    def __repr__(self) -> str:
        return f"Deep({self.value!r}, {self.levels}, {self.as_object})"


def tree(value: Any) -> Any:
    if isinstance(value, dict):
        return Obj([[k, tree(v)] for k, v in value.items()])
    if isinstance(value, list):
        return [tree(v) for v in value]
    return value


def emit(node: Any, ascii_only: bool = False) -> str:
    if isinstance(node, Obj):
        return "{" + ",".join(f"{emit(k, ascii_only)}:{emit(v, ascii_only)}"
                              for k, v in node.pairs) + "}"
    if isinstance(node, list):
        return "[" + ",".join(emit(v, ascii_only) for v in node) + "]"
    if isinstance(node, Raw):
        return node.text
    if isinstance(node, Deep):
        head, tail = ('{"v":', "}") if node.as_object else ("[", "]")
        return head * node.levels + emit(node.value, ascii_only) + tail * node.levels
    if isinstance(node, Esc):
        return '"' + "".join(f"\\u{ord(c):04x}" if c.isalnum() and c.isascii()
                             else json.dumps(c, ensure_ascii=ascii_only)[1:-1]
                             for c in node.value) + '"'
    return json.dumps(node, ensure_ascii=ascii_only)


def locations(node: Any) -> list[tuple[Any, int]]:
    """Every (container, index) slot in the tree, parents before children."""
    out: list[tuple[Any, int]] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, Obj):
            for i, pair in enumerate(item.pairs):
                out.append((item, i))
                stack.append(pair[1])
        elif isinstance(item, list):
            for i, child in enumerate(item):
                out.append((item, i))
                stack.append(child)
    return out


def value_at(slot: tuple[Any, int]) -> Any:
    container, i = slot
    return container.pairs[i][1] if isinstance(container, Obj) else container[i]


def set_at(slot: tuple[Any, int], value: Any) -> None:
    container, i = slot
    if isinstance(container, Obj):
        container.pairs[i][1] = value
    else:
        container[i] = value


def look_alikes(key: str) -> list[str]:
    """Spellings a case- or Unicode-folding decoder would take for ``key``."""
    out = [key.upper(), key.title(), key.swapcase(), key[:1].upper() + key[1:]]
    if "s" in key:
        out.append(key.replace("s", "\u017f", 1))  # LATIN SMALL LETTER LONG S
    if "k" in key:
        out.append(key.replace("k", "\u212a", 1))  # KELVIN SIGN
    if "st" in key:
        out.append(key.replace("st", "\ufb06", 1))  # LATIN SMALL LIGATURE ST
    if key[:1].isascii() and key[:1].isalpha():
        out.append(chr(ord(key[0]) + 0xFEE0) + key[1:])  # FULLWIDTH first letter
    return [k for k in out if k != key] or [key.upper() + "_"]


#: Features injected into bodies (then often disguised by a later mutation).
INJECT_ROOT = {
    ANTHROPIC: [("stream", True), ("thinking", {"type": "enabled", "budget_tokens": 2048}),
                ("tools", [{"type": "web_search_20250305", "name": "web_search"}]),
                ("tool_choice", {"type": "any"}), ("cache_control", {"type": "ephemeral"}),
                ("output_config", {"format": {"type": "json_schema", "schema": {}}}),
                ("output_format", {"type": "json_schema", "schema": {}}),
                ("mcp_servers", [{"type": "url", "url": "https://m", "name": "m"}]),
                ("container", "c1"), ("max_tokens", 10**9),
                ("fallbacks", [{"model": "gpt-5-4-nano"}]), ("model", "minimax-m2-5"),
                ("stream", "true"), ("stream", 1), ("thinking", {"type": ["enabled"]}),
                ("tool_choice", {"type": "ANY"}), ("max_tokens", "99999999")],
    OPENAI: [("stream", True), ("reasoning_effort", "high"), ("logprobs", True),
             ("top_logprobs", 3), ("tools", [{"type": "function", "function": {"name": "f"}}]),
             ("tool_choice", "required"), ("modalities", ["image"]), ("audio", {"voice": "a"}),
             ("response_format", {"type": "json_schema", "json_schema": {"name": "a"}}),
             ("reasoning", {"enabled": True}), ("enable_thinking", True),
             ("thinking", {"type": "enabled"}), ("functions", [{"name": "f"}]),
             ("function_call", {"name": "f"}), ("max_completion_tokens", 10**9),
             ("model", "minimax-m2-5"), ("stream", "true"), ("logprobs", 1),
             ("enable_thinking", "yes"), ("reasoning", {"enabled": "true"}),
             ("chat_template_kwargs", {"enable_thinking": 1}), ("modalities", "image"),
             ("max_tokens", "99999999")],
    GEMINI: [("cachedContent", "cachedContents/x"), ("cached_content", "cachedContents/x"),
             ("tools", [{"googleSearch": {}}]), ("tools", [{"code_execution": {}}]),
             ("toolConfig", {"functionCallingConfig": {"mode": "ANY"}}),
             ("generationConfig", {"responseModalities": ["IMAGE"]}),
             ("generation_config", {"thinking_config": {"thinking_budget": -1}}),
             ("generationConfig", {"responseLogprobs": True, "maxOutputTokens": 10**9}),
             ("generationConfig", {"response_schema": {"type": "OBJECT"}}),
             ("generationConfig", {"speechConfig": {}}),
             ("model", "models/minimax-m2-5"),
             ("generationConfig", {"responseLogprobs": "true"}),
             ("generationConfig", {"thinkingConfig": {"includeThoughts": 1}}),
             ("generationConfig", {"thinkingConfig": {"thinkingBudget": "-1"}}),
             ("generationConfig", {"responseModalities": "IMAGE"}),
             ("toolConfig", {"functionCallingConfig": {"mode": "any"}}),
             ("toolConfig", {"functionCallingConfig": {"mode": "REQUIRED"}})],
}
INJECT_CONTENT = {
    ANTHROPIC: [{"type": "image", "source": {"type": "url", "url": "https://x/a.png"}},
                {"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}},
                {"type": "tool_use", "id": "t", "name": "f", "input": {}},
                {"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}},
                {"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}],
    OPENAI: [{"type": "image_url", "image_url": {"url": "https://x/a.png"}},
             {"type": "input_audio", "input_audio": {"data": "AA==", "format": "wav"}},
             {"type": "video_url", "video_url": {"url": "https://x/a.mp4"}},
             {"type": "image_url", "image_url": {"url": "data:video/mp4;base64,AA=="}},
             {"type": "file", "file": {"file_id": "f"}}, {"video_url": "https://x/a.mp4"},
             {"role": "tool", "tool_call_id": "c", "content": "x"},
             {"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}],
    GEMINI: [{"inlineData": {"mimeType": "image/png", "data": "AA=="}},
             {"inline_data": {"mime_type": "video/mp4", "data": "AA=="}},
             {"fileData": {"fileUri": "https://youtu.be/x"}},
             {"fileData": {"fileUri": "https://x/a.bin", "mimeType": "application/octet-stream"}},
             {"functionCall": {"name": "f", "args": {}}},
             {"executableCode": {"language": "PYTHON", "code": "1"}},
             {"functionResponse": {"name": "f", "response": {}, "parts": [
                 {"inlineData": {"mimeType": "audio/wav", "data": "AA=="}}]}}],
}
UNKNOWN_BLOCKS = {
    ANTHROPIC: [{"type": "hologram", "data": "x"}, {"text": "no type"}, {"type": None}],
    OPENAI: [{"type": "input_hologram", "data": "x"}, {"text": "no type"}, {"type": 7}],
    GEMINI: [{"hologram": {"data": "x"}}, {"thought": True}, {},
             {"text": "a", "inlineData": {"mimeType": "image/png", "data": "AA=="}}],
}
NUMBERS = ["1e400", "-1e400", "NaN", "Infinity", "-Infinity", str(2**1024),
           str(2**1024 - 2**970), str(2**1024 - 2**971), "1" * 5000, "1e-400", "-0", "1E2",
           "0.5", "123456789012345678901234567890"]
ENCODINGS = ["utf-8"] * 24 + ["utf-8-sig", "utf-16-le", "utf-16-be", "utf-16", "utf-32",
                             "latin-1", "invalid", "overlong", "surrogate", "truncate"]
CODINGS = [None] * 16 + ["gzip", "deflate", "GZIP", "identity", "gzip, identity", "lie", "br",
                         "gzip, gzip"]
DEFAULT = Catalog.default()


def _pick(data: st.DataObject, slots: list[tuple[Any, int]], label: str) -> tuple[Any, int]:
    return slots[data.draw(st.integers(0, len(slots) - 1), label)]


def mutate(data: st.DataObject, root: Any, protocol: str) -> Any:
    """Apply one random mutation; returns the (possibly new) root."""
    kind = data.draw(st.sampled_from([
        "drop", "duplicate", "retype", "deepen", "look-alike", "respell", "unknown", "inject",
        "inject-content", "number", "escape-key", "escape-value", "surrogate", "retype-root",
        "retype-switch", "inject", "inject", "inject-content", "look-alike", "retype-switch"]),
        "mutation")
    slots = locations(root)
    keyed = [slot for slot in slots if isinstance(slot[0], Obj)]
    objects = [node for node in [root] + [value_at(s) for s in slots] if isinstance(node, Obj)]
    lists = [value_at(s) for s in slots if isinstance(value_at(s), list)]
    if kind == "retype-root":
        return data.draw(st.sampled_from([[root], None, "x", 1, Obj([["body", root]])]), "root")
    if kind == "inject" and objects:
        obj = data.draw(st.sampled_from(objects[:1] * 3 + objects), "into")
        key, value = data.draw(st.sampled_from(INJECT_ROOT[protocol]), "feature")
        if data.draw(st.booleans(), "disguise"):
            key = data.draw(st.sampled_from(look_alikes(key)), "as")
        obj.pairs.insert(data.draw(st.integers(0, len(obj.pairs)), "at"),
                         [key, tree(copy.deepcopy(value))])
        return root
    if kind in ("inject-content", "unknown") and lists:
        target = data.draw(st.sampled_from(lists), "list")
        menu = INJECT_CONTENT if kind == "inject-content" else UNKNOWN_BLOCKS
        block = tree(copy.deepcopy(data.draw(st.sampled_from(menu[protocol]), "block")))
        target.insert(data.draw(st.integers(0, len(target)), "at"), block)
        return root
    switches = [slot for slot in slots if value_at(slot) is True]
    if kind == "retype-switch" and switches:
        set_at(_pick(data, switches, "switch"), data.draw(st.sampled_from(
            ["true", "True", 1, [True], Obj([["enabled", True]]), "false", "yes", 1.0]), "as"))
        return root
    if not slots:
        return root
    if kind in ("duplicate", "look-alike", "respell", "escape-key") and keyed:
        container, i = _pick(data, keyed, "slot")
        key, value = container.pairs[i]
        if not isinstance(key, str):
            return root
        if kind == "duplicate":
            other = data.draw(st.sampled_from(
                [copy.deepcopy(value), None, True, "x", tree(INJECT_ROOT[protocol][0][1])]),
                "other")
            container.pairs.insert(data.draw(st.sampled_from([i, i + 1, len(container.pairs)]),
                                             "at"), [Esc(key) if data.draw(
                                                 st.booleans(), "escaped") else key, other])
            return root
        if kind == "escape-key":
            container.pairs[i][0] = Esc(key)
            return root
        new = (data.draw(st.sampled_from(look_alikes(key)), "as") if kind == "look-alike"
               else snake(key) if snake(key) != key else camel(key))
        if new == key:
            return root
        if data.draw(st.booleans(), "keep original"):
            container.pairs.insert(i + 1, [new, copy.deepcopy(value)])
        else:
            container.pairs[i][0] = new
        return root
    slot = _pick(data, slots, "slot")
    value = value_at(slot)
    if kind == "drop":
        container, i = slot
        del (container.pairs if isinstance(container, Obj) else container)[i]
    elif kind == "retype":
        set_at(slot, data.draw(st.sampled_from([
            None, 0, 1, -1, True, False, "", "true", "none", [], [value], Obj([]),
            Obj([["type", value]]), 1.5, str(value)[:30]]), "as"))
    elif kind == "deepen":
        levels = data.draw(st.sampled_from([1, 2, 3, 10, 126, 127, 128, 200, 600]), "levels")
        set_at(slot, Deep(value, levels, data.draw(st.booleans(), "in objects")))
    elif kind == "number":
        set_at(slot, Raw(data.draw(st.sampled_from(NUMBERS), "number")))
    elif kind == "escape-value" and isinstance(value, str):
        set_at(slot, Esc(value))
    elif kind == "surrogate" and isinstance(value, str):
        set_at(slot, Raw(data.draw(st.sampled_from(
            ['"\\ud800"', '"a\\udfff"', '"\\ud83d\\ude00"', '"\\u0000"', '"\\/"']), "escape")))
    return root


def encode(data: st.DataObject, text: str) -> bytes:
    how = data.draw(st.sampled_from(ENCODINGS), "encoding")
    raw = text.encode("utf-8")
    if how in ("utf-8-sig", "utf-16-le", "utf-16-be", "utf-16", "utf-32"):
        return text.encode(how)
    if how == "latin-1":
        return text.encode("latin-1", errors="replace")
    if how == "truncate":
        return raw[:data.draw(st.integers(0, max(len(raw) - 1, 0)), "cut")]
    if how in ("invalid", "overlong", "surrogate"):
        bad = {"invalid": b"\xff", "overlong": b"\xc0\xaf", "surrogate": b"\xed\xa0\x80"}[how]
        quote = [i for i, b in enumerate(raw) if b == ord('"')]
        at = data.draw(st.sampled_from(quote), "at") + 1 if quote else 0
        return raw[:at] + bad + raw[at:]
    return raw


def compress(data: st.DataObject, raw: bytes) -> tuple[bytes, dict[str, str], bool]:
    """(body, headers, whether ``raw`` is what the body decodes to)."""
    coding = data.draw(st.sampled_from(CODINGS), "content-encoding")
    headers = {"content-type": "application/json"}
    if coding is None:
        return raw, headers, True
    headers["content-encoding"] = "gzip" if coding == "lie" else coding
    if coding in ("lie", "br"):  # not what it says, or not decodable here: must be refused
        return raw, headers, False
    body = raw
    for item in coding.split(","):  # applied in the order listed
        item = item.strip().lower()
        if item == "gzip":
            body = gzip.compress(body, mtime=0)
        elif item == "deflate":
            body = zlib.compress(body)
    return body, headers, True


def model_tags(model: Any) -> set[str]:
    """decisions.md §3: the capability tags, or the media words in input_modalities."""
    return set(model.capabilities) | {MODALITY_TAGS[m] for m in model.input_modalities
                                      if m in MODALITY_TAGS}


def serving_models(fx: dict[str, Any]) -> list[str]:
    """Default-catalog models that can serve a fixture, fewest spare tags first."""
    route = match_route(fx["path"])
    assert route is not None
    expected = oracle_for(fx["protocol"], route.kind, fx["body"], route.model)
    tags, vendors = expected.tags(route.counting), expected.vendors()
    fits = [m for m in DEFAULT if tags <= model_tags(m)
            and all(m.owned_by == v for v in vendors)]
    return [m.id for m in sorted(fits, key=lambda m: len(model_tags(m)))]


FIXTURE_DATA = [json.loads(path.read_text()) for path in FIXTURES]
SERVING = [serving_models(fx) for fx in FIXTURE_DATA]
EXACT = "exact-fit"


def exact_catalog(fx: dict[str, Any]) -> Catalog:
    """The default catalog plus ``exact-fit``: a model with exactly the fixture's tags, so any
    feature a mutation adds and the guard misreads shows as a bypass."""
    route = match_route(fx["path"])
    assert route is not None
    expected = oracle_for(fx["protocol"], route.kind, fx["body"], route.model)
    vendors = expected.vendors() or {VENDOR[fx["protocol"]]}
    payload = json.loads(json.dumps(Catalog.listing(DEFAULT)))
    payload["data"].append(entry(EXACT, expected.tags(route.counting), vendors.pop(),
                                 max_output_tokens=1 << 20))
    return Catalog.model_validate(payload)


EXACT_CATALOGS = [exact_catalog(fx) for fx in FIXTURE_DATA]


def assert_no_bypass(models: Catalog, protocol: str, kind: str, payload: bytes | None,
                     path_model: str | None, *, policy: bool = True,
                     allow_unknown: bool = False) -> None:
    """An allowed request is strict JSON whose every reading the chosen model can serve.

    ``policy=False`` (report mode) checks only what is refused in every mode; with
    ``allow_unknown`` the needs of a body holding unknown content are not knowable."""
    assert payload is not None, "allowed a body that is not in its declared Content-Encoding"
    try:
        doc = strict_loads(payload)
    except NotStrict as exc:
        raise AssertionError(f"allowed a body that is not strict JSON: {exc}") from None
    assert isinstance(doc, dict), "allowed a body that is not a JSON object"
    expected = oracle_for(protocol, kind, doc, path_model)
    assert not expected.refuse, f"allowed a body that must be refused: {expected.refuse}"
    if not policy or (allow_unknown and expected.unknown):
        return
    assert not expected.unknown, f"allowed unknown content: {expected.unknown}"
    counting = kind in ("count_tokens", "countTokens")
    for use in expected.models:
        model = models.get(use.slug) if isinstance(use.slug, str) else None
        assert model is not None, f"allowed unknown model {use.slug!r}"
        for tag, vendor, _ in expected.triples(counting, use):
            assert tag in model_tags(model), f"{use.slug} lacks {tag}: bypass"
            assert vendor is None or model.owned_by == vendor, f"{use.slug} is not {vendor}'s"
        for cap in use.caps:
            limit = model.max_output_tokens
            assert limit is None or cap <= limit, f"cap {cap} above {use.slug}'s {limit}"


# -- Known bugs ----------------------------------------------------------------------------------
# Each is pinned by a strict xfail in tests/test_fuzz_regressions.py; here a mutant that only
# shows a known bug is counted (``event``) rather than failed, so the property keeps hunting
# for new ones. Delete an entry when its bug is fixed (its xfail will then XPASS and fail).


def _fields(obj: Any, name: str, gemini: bool = False) -> list[Any]:
    """Values under ``name`` in ``obj`` in any spelling a lenient reader would take."""
    if not isinstance(obj, dict):
        return []
    names = {fold(n) for n in ({name, snake(name)} if gemini else {name})}
    return [v for k, v in obj.items() if fold(k) in names]


KNOWN_BUGS: tuple = ()  # none open; add a predicate here while a found bug is being fixed


def known_bug(protocol: str, raw: bytes) -> str | None:
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    for bug in KNOWN_BUGS:
        if bug(protocol, doc):
            return bug.__name__
    return None


INTERNAL_ERROR = "could not be inspected"


@settings(max_examples=4000 * SCALE, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(index=st.integers(0, len(FIXTURES) - 1), data=st.data())
def test_mutated_fixtures_never_crash_or_bypass(index: int, data: st.DataObject) -> None:
    fx, serving = FIXTURE_DATA[index], SERVING[index]
    protocol = fx["protocol"]
    # Mostly a model with exactly the fixture's tags, or the leanest default model that serves
    # it, or a text-only one: where a misread feature shows as a bypass.
    model = data.draw(st.sampled_from([EXACT] * 8 + serving[:1] * 4 + serving + DEFAULT.ids
                                      + ["minimax-m2-5", "gpt-5-4-nano"] * 2), "model")
    models = EXACT_CATALOGS[index] if model == EXACT else DEFAULT
    body = copy.deepcopy(fx["body"])
    target = fx["path"]
    if protocol == GEMINI:
        head, _, method = target.rpartition(":")
        target = head.rsplit("/", 1)[0] + f"/{model}:{method}"
    else:
        body["model"] = model
    if fx["query"]:
        target += "?" + fx["query"]
    root = tree(body)
    for _ in range(data.draw(st.integers(1, 4), "mutations")):
        root = mutate(data, root, protocol)
    text = emit(root, ascii_only=data.draw(st.booleans(), "ascii"))
    raw = encode(data, text)
    wire, headers, faithful = compress(data, raw)
    note(f"{target} {headers} {raw[:2000]!r}")
    mutant_property(models, protocol, target, wire, headers, raw if faithful else None)


def mutant_property(models: Catalog, protocol: str, target: str, wire: bytes,
                    headers: dict[str, str], payload: bytes | None) -> None:
    """The guard's verdict on one request, checked against the strict reader and the oracle."""
    verdict = check(Guard(models), target, wire, headers)  # must not raise
    assert verdict.status < 500, verdict
    route = match_route(target)
    assert route is not None
    event("allowed" if verdict.allowed else f"refused {verdict.status} {verdict.reason}")
    try:
        if verdict.allowed:
            assert verdict.status == 200 and verdict.guarded
            assert_no_bypass(models, protocol, route.kind, payload, route.model)
        else:
            token = envelope_token(protocol, verdict)
            assert token == verdict.token, (token, verdict.token)
            assert INTERNAL_ERROR not in verdict.violations[0].message, "internal error"
    except AssertionError:
        bug = known_bug(protocol, payload) if payload is not None else None
        if bug is None:
            raise
        event(f"known bug: {bug}")
