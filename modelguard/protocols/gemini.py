"""Gemini ``generateContent`` / ``streamGenerateContent`` / ``countTokens`` bodies.

Gemini speaks proto3 JSON: every field may be spelled camelCase or snake_case (the Python SDK
mixes both), enums may be names or integers, int64 may be a string. A field spelled both ways
in one object is ambiguous and refused. The model comes from the path, never the body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..body import Settled, SettledItems, SettleRule, settle_table
from ..routing import STREAM
from ._base import (
    AUDIO,
    CACHE_CONTROL,
    IMAGE_GEN,
    JSON_SCHEMA,
    LOGPROBS,
    THINKING,
    TOOL_USE,
    VIDEO,
    VIDEO_GEN,
    VISION,
    Features,
    Keys,
    ModelRef,
    join,
    malformed,
    media_tag,
    need_bool,
    need_dict,
    need_list,
    shown,
    token_count,
    uri_tags,
)

if TYPE_CHECKING:
    from ..policy import Options
    from ..routing import Route

__all__ = ["read"]

VENDOR = "google"

#: Part data keys (a proto ``oneof``: exactly one per part) → what they need.
#: ``"media"`` means the MIME type decides; ``"server"`` is Google-run tool traffic.
PART_DATA: dict[str, str | None] = {
    "text": None,
    "inlineData": "media",
    "fileData": "media",
    "functionCall": TOOL_USE,
    "functionResponse": TOOL_USE,
    "executableCode": "server",
    "codeExecutionResult": "server",
    "toolCall": "server",
    "toolResponse": "server",
}
#: Part keys that qualify the data and need nothing of their own.
PART_METADATA = ("thought", "thoughtSignature", "videoMetadata", "mediaResolution",
                 "partMetadata", "mediaProcessing", "speechMetadata", "documentMetadata",
                 "spreadsheetMetadata", "audioMetadata")
#: Function responses may carry media parts (FunctionResponsePart).
RESPONSE_PART_DATA = ("inlineData", "fileData")

#: ``tools[*]`` entries: function declarations, or a Google-run built-in tool.
BUILTIN_TOOLS = ("googleSearch", "googleSearchRetrieval", "codeExecution", "urlContext",
                 "googleMaps", "fileSearch", "computerUse", "mcpServers", "retrieval",
                 "enterpriseWebSearch", "parallelAiSearch", "exaAiSearch")

#: ``responseModalities`` values (names and GenerationConfig.Modality integers) → tag.
MODALITIES: dict[str | int, str | None] = {
    "MODALITY_UNSPECIFIED": None, 0: None, "TEXT": None, 1: None, "IMAGE": IMAGE_GEN, 2: IMAGE_GEN,
    "AUDIO": AUDIO, 3: AUDIO, "VIDEO": VIDEO_GEN,
}
#: ``responseFormat[*]`` members → tag.
RESPONSE_FORMATS = {"image": IMAGE_GEN, "audio": AUDIO, "video": VIDEO_GEN}
#: generationConfig keys that each mean a schema-constrained response.
SCHEMA_KEYS = ("responseSchema", "responseJsonSchema", "_responseJsonSchema",
               "responseJsonSchemaOrdered")
#: functionCallingConfig modes: NONE switches function calling off; ANY/VALIDATED force it.
MODE_NONE = frozenset({"NONE", 3})
MODE_FORCED = frozenset({"ANY", 2, "VALIDATED", 4})
MODES = MODE_NONE | MODE_FORCED | {None, "MODE_UNSPECIFIED", 0, "AUTO", 1}

ROOT = Keys("contents", "systemInstruction", "tools", "toolConfig", "generationConfig",
            "cachedContent", "generateContentRequest", "model", gemini=True)
CONTENT = Keys("role", "parts", gemini=True)
PART = Keys(*PART_DATA, *PART_METADATA, gemini=True)
BLOB = Keys("mimeType", "data", "fileUri", gemini=True)
FUNCTION_RESPONSE = Keys("name", "response", "parts", gemini=True)
RESPONSE_PART = Keys(*RESPONSE_PART_DATA, gemini=True)
TOOL = Keys("functionDeclarations", *BUILTIN_TOOLS, gemini=True)
TOOL_CONFIG = Keys("functionCallingConfig", "retrievalConfig",
                   "includeServerSideToolInvocations", gemini=True)
CALLING = Keys("mode", "allowedFunctionNames", gemini=True)
GENERATION = Keys(
    "temperature", "topP", "topK", "candidateCount", "maxOutputTokens", "stopSequences", "seed",
    "presencePenalty", "frequencyPenalty", "responseLogprobs", "logprobs", "responseMimeType",
    "responseSchema", "responseJsonSchema", "_responseJsonSchema", "responseJsonSchemaOrdered",
    "responseModalities", "speechConfig", "imageConfig", "thinkingConfig", "mediaResolution",
    "responseFormat", "enableEnhancedCivicAnswers", "audioTimestamp", gemini=True)
THINKING_CONFIG = Keys("thinkingBudget", "thinkingLevel", "includeThoughts", gemini=True)
FORMAT = Keys("text", "image", "audio", "video", gemini=True)
FORMAT_TEXT = Keys("mimeType", "jsonSchema", gemini=True)

#: Plain text parts (and thought summaries): the decoders hand them back as one
#: :class:`Settled` marker, never built (their full reading needs nothing).
_TEXT = Settled("text")
#: A function call part: it needs tool use, at ``...parts[i].functionCall``.
_CALL = Settled("functionCall")
_PART_RULE = SettleRule({"text": _TEXT, "functionCall": _CALL},
                        frozenset({"text", "thought", "thoughtSignature", "functionCall"}),
                        type_key=None)
#: The ids of the settled parts a turn may hold and be skipped whole (by id, so that a
#: built part, a dict, is simply not among them): text, and calls once tool use is needed.
_QUIET_TEXT = frozenset({id(_TEXT)})
_QUIET_CALLS = frozenset({id(_TEXT), id(_CALL)})
#: The same as markers, for a turn of settled parts only (:class:`SettledItems`).
_QUIET_TEXT_PARTS = frozenset({_TEXT})
_QUIET_CALL_PARTS = frozenset({_TEXT, _CALL})
#: A turn (role optional) whose parts all settle: handed back as the list of their markers
#: (:class:`SettledItems`).
_TURN = Settled("content")
_TURN_RULE = SettleRule({"user": _TURN, "model": _TURN, None: _TURN},
                        frozenset({"role", "parts"}), type_key="role", required="parts",
                        nested="parts")
SETTLE = settle_table({
    ("contents", "*"): _TURN_RULE,
    ("systemInstruction",): _TURN_RULE,
    ("contents", "*", "parts", "*"): _PART_RULE,
    ("systemInstruction", "parts", "*"): _PART_RULE,
})

_YOUTUBE = ("youtube.com", "www.youtube.com", "m.youtube.com", "youtu.be", "music.youtube.com")


def read(body: dict[str, Any], route: Route, options: Options) -> Features:
    """generateContent, streamGenerateContent and countTokens on the path's model (a
    ``policy.Reader``)."""
    model = route.model or ""
    counting = route.counting
    camel = ROOT.camel_only(body)
    if not camel or not ROOT.accepts(body):  # else no look-alike and no field spelled twice
        ROOT.check(body, "")
    f = Features()
    f.models.append(ModelRef("model", model))
    rare = not _ROOT_RARE.isdisjoint(body)
    key, nested = ROOT.get(body, "generateContentRequest") if rare else ("", None)
    if nested is not None:
        if not counting:
            raise malformed(key, "generateContentRequest belongs in countTokens bodies only.")
        if ROOT.get(body, "contents")[1] is not None:
            raise malformed(key, "send either contents or generateContentRequest, not both.")
        ROOT.check(need_dict(nested, key), key)
        _same_model(nested, model, key, required=True)
        _request(f, nested, key, True)
    else:
        if rare:
            _same_model(body, model, "", required=False)
        _request(f, body, "", counting, rare, camel)  # positional: keywords cost a little
    if route.kind == STREAM:
        f.need("streaming", "streamGenerateContent", "streaming", output=True)
    return f


def _same_model(body: dict[str, Any], model: str, path: str, *, required: bool) -> None:
    """A body ``model`` must name the path's model: two model ids are one too many."""
    key, value = ROOT.get(body, "model")
    where = join(path, key)
    if value is None:
        if required:
            raise malformed(where, "the nested request needs model (models/...).")
        return
    if type(value) is not str or value.removeprefix("models/") != model:
        raise malformed(where, f"the body names model {value!r} but the URL names {model!r}.")


#: ``generationConfig`` in both spellings: a body with neither skips its reading.
_GENERATION_KEYS = frozenset({"generationConfig", ROOT.snake("generationConfig")})
#: Root fields few bodies carry (both spellings): without any, their readings are skipped.
_ROOT_RARE = frozenset(name for key in ("generateContentRequest", "model", "cachedContent",
                                        "toolConfig") for name in (key, ROOT.snake(key)))


def _request(f: Features, body: dict[str, Any], path: str, counting: bool,
             rare: bool = True, camel: bool | None = None) -> None:
    if camel or (camel is None and ROOT.camel_only(body)):  # one lookup per field
        key, system = "systemInstruction", body.get("systemInstruction")
    else:
        key, system = ROOT.get(body, "systemInstruction")
    if type(system) is SettledItems:  # parts that all settled: their markers
        if not _QUIET_TEXT_PARTS.issuperset(system):
            _parts(f, system, f"{join(path, key)}.parts")
    elif system is not None and not isinstance(system, str):
        _content(f, system, join(path, key))
    key, contents = ("contents", body["contents"]) if "contents" in body else \
        ROOT.get(body, "contents")
    if contents is not None:
        cpath = join(path, key)
        if type(contents) is dict:  # a single Content, as some clients send
            _content(f, contents, cpath)
        else:
            if type(contents) is not list:
                need_list(contents, cpath)
            calls = _TOOL_NEED in f.recorded
            quiet = _QUIET_CALLS if calls else _QUIET_TEXT
            settled = _QUIET_CALL_PARTS if calls else _QUIET_TEXT_PARTS
            for i, content in enumerate(contents):
                if type(content) is SettledItems:  # a turn of settled parts: their markers
                    if not settled.issuperset(content):
                        _parts(f, content, f"{cpath}[{i}].parts")
                        if _TOOL_NEED in f.recorded:
                            quiet, settled = _QUIET_CALLS, _QUIET_CALL_PARTS
                    continue
                if type(content) is dict and _PLAIN_CONTENT.issuperset(content):
                    parts = content.get("parts")
                    if type(parts) is list and quiet.issuperset(map(id, parts)):
                        continue  # settled parts whose reading adds nothing now
                if not _plain_text(content):
                    _content(f, content, f"{cpath}[{i}]")
                    if _TOOL_NEED in f.recorded:
                        quiet, settled = _QUIET_CALLS, _QUIET_CALL_PARTS
    if rare or "tools" in body:  # else no toolConfig and no tools: nothing to read
        _tools(f, body, path, rare)
    key, cached = ROOT.get(body, "cachedContent") if rare else ("", None)
    if cached is not None:
        f.need(CACHE_CONTROL, join(path, key), "a cached content reference")
    if not counting and not _GENERATION_KEYS.isdisjoint(body):
        key, config = ROOT.get(body, "generationConfig")
        if config is not None:
            gpath = join(path, key)
            _generation(f, need_dict(config, gpath), gpath)
            cap_key, cap = GENERATION.get(config, "maxOutputTokens")
            if cap is not None:  # the output cap of the body's model (read's first ModelRef)
                cpath = f"{gpath}.{cap_key}"
                f.models[0].caps.append((cpath, token_count(cap, cpath, strings=True)))


def _plain_text(content: Any) -> bool:
    """A turn made of plain text parts only: the common case, needing nothing."""
    if type(content) is not dict or not _PLAIN_CONTENT.issuperset(content):
        return False
    parts = content.get("parts")
    if type(parts) is not list:
        return False
    for part in parts:
        if part is _TEXT:
            continue
        if type(part) is not dict or "text" not in part or not _TEXT_PART.issuperset(part) \
                or _BOTH_SIGNATURES.issubset(part):
            return False
    return True


def _content(f: Features, content: Any, path: str) -> None:
    CONTENT.check(need_dict(content, path, "a Content object"), path)
    key, parts = CONTENT.get(content, "parts")
    if parts is not None:
        _parts(f, parts, f"{path}.{key}")


def _parts(f: Features, parts: Any, ppath: str) -> None:
    accepts = PART.accepts
    if type(parts) is not SettledItems:
        need_list(parts, ppath)
    for i, part in enumerate(parts):
        if part is _TEXT:
            continue  # a plain text part, never built
        if part is _CALL:  # a function call part, never built
            if _TOOL_NEED not in f.recorded:
                f.need(TOOL_USE, f"{ppath}[{i}].functionCall", "functionCall")
            continue
        if type(part) is dict:
            if ("text" in part and accepts(part) and _TEXT_PART.issuperset(part)
                    and not _BOTH_SIGNATURES.issubset(part)):
                continue  # a plain text part (or thought summary)
            if _settled_call(f, part):
                continue
        _part(f, part, f"{ppath}[{i}]", PART, PART_DATA)


def _part(f: Features, part: Any, path: str, keys: Keys, kinds: dict[str, str | None]) -> None:
    keys.check(need_dict(part, path, "a Part object"), path)
    found = None
    unknown = False
    for key in part:
        kind = keys.camel(key)
        if kind in kinds:
            if found is not None:
                raise malformed(
                    path, f"a part holds one kind of data, got {found[0]!r} and {key!r}.")
            found = (key, kind)
        elif kind not in PART_METADATA:
            f.unknown.append((path, key))
            unknown = True
    if found is None:
        if not unknown:
            raise malformed(path, "a part needs data (text, inlineData, fileData, ...).")
        return
    key, kind = found
    dpath = f"{path}.{key}"
    need = kinds[kind]
    value = part[key]
    if need == "media":
        mime = _mime_of(value)
        label = shown(mime) if type(mime) is str else "unknown type"
        for tag in _media(value, dpath, kind):
            f.need(tag, dpath, f"{kind} ({label})")
    elif need == "server":
        f.need(TOOL_USE, dpath, f"{kind} (Google-run tool traffic)", VENDOR, tool=kind)
    elif need is not None:
        f.need(need, dpath, kind)
    if kind == "functionResponse":
        response = need_dict(value, dpath)
        FUNCTION_RESPONSE.check(response, dpath)
        rkey, rparts = FUNCTION_RESPONSE.get(response, "parts")
        if rparts is not None:
            rpath = f"{dpath}.{rkey}"
            for i, rpart in enumerate(need_list(rparts, rpath)):
                _part(f, rpart, f"{rpath}[{i}]", RESPONSE_PART, _RESPONSE_KINDS)


def _settled_call(f: Features, part: dict[str, Any]) -> bool:
    """A function call or response part whose full reading adds nothing (tool use already
    needed, only camelCase keys, a response without media parts): decided without a path."""
    if not _CALL_PART.issuperset(part) or _TOOL_NEED not in f.recorded \
            or not PART.settled(part):
        return False
    if "functionCall" in part:
        return "functionResponse" not in part
    response = part.get("functionResponse")
    return (type(response) is dict and FUNCTION_RESPONSE.settled(response)
            and response.get("parts") is None)


#: Keys of a function call or response part (the fast path above; camelCase only).
_CALL_PART = frozenset({"functionCall", "functionResponse", *PART_METADATA})
#: The need a function call or response part records (``Features.need``'s key).
_TOOL_NEED = (TOOL_USE, None, False)
_RESPONSE_KINDS = {kind: PART_DATA[kind] for kind in RESPONSE_PART_DATA}
#: Keys of a part that holds text only, and of a turn (the fast paths). A part spelling one
#: field both ways is left to the full path, which refuses it (one rule set, §11).
_TEXT_PART = frozenset({"text", "thought", "thoughtSignature", "thought_signature"})
_BOTH_SIGNATURES = frozenset({"thoughtSignature", "thought_signature"})
_PLAIN_CONTENT = frozenset({"role", "parts"})


def _mime_of(blob: Any) -> Any:
    """The blob's ``mimeType``; an empty one means "not set" (decisions.md §11)."""
    if type(blob) is not dict:
        return None
    mime = BLOB.get(blob, "mimeType")[1]
    if type(mime) is str and not mime.strip():
        return None
    return mime


def _media(blob: Any, path: str, kind: str) -> list[str]:
    """The tags one blob needs, its own kind first."""
    BLOB.check(need_dict(blob, path), path)
    mime = _mime_of(blob)
    if mime is not None:
        tags = {media_tag(mime)}
    elif kind == "fileData":
        tags = _uri_tags(BLOB.get(blob, "fileUri")[1])
    else:
        tags = {VISION}  # bytes of an unknown kind: assume the worst
    return [tag for tag in (VISION, AUDIO, VIDEO) if tag in tags]


def _uri_tags(uri: Any) -> set[str | None]:
    """No MIME type on a file: a YouTube link is video, else the extension tells."""
    if type(uri) is not str:
        return {VISION}
    try:
        host = (urlsplit(uri.strip()).hostname or "").lower()
    except ValueError:
        return {VISION}
    if host in _YOUTUBE:
        return {VIDEO}
    return uri_tags(uri)


def _tools(f: Features, body: dict[str, Any], path: str, rare: bool = True) -> None:
    key, config = ROOT.get(body, "toolConfig") if rare else ("toolConfig", None)
    mode = None
    names = None
    cpath = join(path, key)
    if config is not None:
        TOOL_CONFIG.check(need_dict(config, cpath), cpath)
        ckey, calling = TOOL_CONFIG.get(config, "functionCallingConfig")
        if calling is not None:
            fpath = f"{cpath}.{ckey}"
            CALLING.check(need_dict(calling, fpath), fpath)
            mkey, mode = CALLING.get(calling, "mode")
            mode = _enum(mode, f"{fpath}.{mkey}")
            if mode not in MODES:
                f.unknown.append((f"{fpath}.{mkey}", f"function calling mode {mode}"))
            names = CALLING.get(calling, "allowedFunctionNames")[1]
    off = mode in MODE_NONE
    key, tools = ROOT.get(body, "tools")
    tpath = join(path, key)
    declared = False
    builtins = []
    if tools is not None:
        for i, tool in enumerate(need_list(tools, tpath)):
            ipath = f"{tpath}[{i}]"
            TOOL.check(need_dict(tool, ipath), ipath)
            for name in tool:
                kind = TOOL.camel(name)
                if kind not in TOOL.names:
                    f.unknown.append((ipath, name))
                elif kind == "functionDeclarations":
                    declared = declared or bool(tool[name])
                elif tool[name] is not None:
                    builtins.append((ipath, kind))
    if (declared and not off) or builtins:
        f.need(TOOL_USE, tpath, "tool definitions")
    for ipath, kind in builtins:
        f.need(TOOL_USE, ipath, f"built-in tool {kind}", VENDOR, tool=kind)
    if mode in MODE_FORCED or (names and not off):
        f.need(TOOL_USE, cpath, f"function calling mode {mode}")



def _enum(value: Any, path: str) -> str | int | None:
    """An enum given by name (any case) or number, as proto3 JSON allows."""
    if type(value) is str:
        return value.upper()
    if value is None or type(value) is int:
        return value
    raise malformed(path, "expected an enum name or number.")


def _generation(f: Features, config: dict[str, Any], path: str) -> None:
    GENERATION.check(config, path)
    # Only the fields present are read, in this fixed order (sampling knobs need nothing).
    present = {GENERATION.camel(key) for key in _GENERATION_READ.intersection(config)}
    if not present:
        return
    _, modalities = GENERATION.get(config, "responseModalities") \
        if "responseModalities" in present else (None, None)
    if modalities is not None:
        for modality in need_list(modalities, path):
            modality = _enum(modality, path)
            if modality not in MODALITIES:
                f.unknown.append((path, f"response modality {modality}"))
            elif MODALITIES[modality] is not None:
                f.need(MODALITIES[modality], path, f"{modality} output", output=True)
    if "speechConfig" in present and GENERATION.get(config, "speechConfig")[1] is not None:
        f.need(AUDIO, path, "speech output (speechConfig)", output=True)
    if "imageConfig" in present and GENERATION.get(config, "imageConfig")[1] is not None:
        f.need(IMAGE_GEN, path, "image output (imageConfig)", output=True)
    _, formats = GENERATION.get(config, "responseFormat") \
        if "responseFormat" in present else (None, None)
    if formats is not None:
        for fmt in need_list(formats, path):
            FORMAT.check(need_dict(fmt, path), path)
            for name, tag in RESPONSE_FORMATS.items():
                if fmt.get(name) is not None:
                    f.need(tag, path, f"{name} output (responseFormat)", output=True)
            text = FORMAT.get(fmt, "text")[1]
            if text is not None:
                FORMAT_TEXT.check(need_dict(text, path), path)
                if FORMAT_TEXT.get(text, "jsonSchema")[1] is not None:
                    f.need(JSON_SCHEMA, path, "a response JSON schema", output=True)
    if not present.isdisjoint(SCHEMA_KEYS) and any(
            GENERATION.get(config, key)[1] is not None for key in SCHEMA_KEYS):
        f.need(JSON_SCHEMA, path, "a response schema", output=True)
    if "responseLogprobs" in present:
        key, logprobs = GENERATION.get(config, "responseLogprobs")
        if need_bool(logprobs, f"{path}.{key}"):
            f.need(LOGPROBS, path, "responseLogprobs", output=True)
    if "logprobs" in present:
        key, top = GENERATION.get(config, "logprobs")
        top = token_count(top, f"{path}.{key}", strings=True)
        if top is not None and top > 0:
            f.need(LOGPROBS, path, "logprobs", output=True)
    key, thinking = GENERATION.get(config, "thinkingConfig") \
        if "thinkingConfig" in present else (None, None)
    if thinking is not None:
        tpath = f"{path}.{key}"
        THINKING_CONFIG.check(need_dict(thinking, tpath), tpath)
        if _thinks(thinking, tpath):
            f.need(THINKING, path, "thinking (thinkingConfig)", output=True)


#: The generationConfig fields :func:`_generation` reads, in both spellings.
_GENERATION_READ = frozenset(
    name for key in ("responseModalities", "speechConfig", "imageConfig", "responseFormat",
                     *SCHEMA_KEYS, "responseLogprobs", "logprobs", "thinkingConfig")
    for name in (key, GENERATION.snake(key)))


def _thinks(config: dict[str, Any], path: str) -> bool:
    """thinkingBudget 0 is off and wins; otherwise a budget, a level or includeThoughts."""
    key, budget = THINKING_CONFIG.get(config, "thinkingBudget")
    budget = token_count(budget, f"{path}.{key}", strings=True)
    if budget == 0:
        return False
    if budget is not None:
        return True
    key, level = THINKING_CONFIG.get(config, "thinkingLevel")
    level = _enum(level, f"{path}.{key}")
    if level not in (None, "THINKING_LEVEL_UNSPECIFIED", 0):
        return True
    key, include = THINKING_CONFIG.get(config, "includeThoughts")
    return need_bool(include, f"{path}.{key}")
