"""OpenAI Chat Completions (``/v1/chat/completions``) and the images/videos generation routes."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..body import Settled, SettledItems, SettleRule, settle_table
from ..routing import IMAGES
from ._base import (
    AUDIO,
    CACHE_CONTROL,
    IMAGE_GEN,
    JSON_SCHEMA,
    LOGPROBS,
    STREAMING,
    THINKING,
    TOOL_USE,
    VIDEO,
    VIDEO_GEN,
    VISION,
    Features,
    Keys,
    ModelRef,
    data_url_mime,
    malformed,
    media_tag,
    need_bool,
    need_dict,
    need_list,
    need_str,
    token_count,
    uri_tags,
    url_shaped,
)

if TYPE_CHECKING:
    from ..policy import Options
    from ..routing import Route

__all__ = ["read", "read_embeddings", "read_generation", "read_task"]

#: The vendor of the gateway's ``grounding`` extension (Google Search for Gemini models).
GROUNDING_VENDOR = "google"

#: Part ``type`` → the tag it needs (None: nothing). Gateway extensions included.
PARTS: dict[str, str | None] = {
    "text": None,
    "input_text": None,
    "refusal": None,
    "prompt_embeds": None,
    "image_url": VISION,
    "input_image": VISION,
    "image_embeds": VISION,
    "input_audio": AUDIO,
    "audio_url": AUDIO,
    "audio_embeds": AUDIO,
    "video_url": VIDEO,
    "input_video": VIDEO,
    "file": VISION,        # Chat Completions files are PDFs: vision by policy
    "input_file": VISION,
}
#: Type-less shorthand parts (vLLM): the key present decides.
SHORTHANDS: dict[str, str] = {"image_url": VISION, "audio_url": AUDIO, "video_url": VIDEO}
#: Part types whose media may be a ``data:`` URL that tells the real kind.
_URL_KEYS = {"image_url": "image_url", "input_image": "image_url", "video_url": "video_url",
             "input_video": "video_url", "audio_url": "audio_url"}
_FILE_KEYS = {"file", "input_file"}
#: Where a file part's bytes may come from; a part naming several needs what each needs.
FILE_SOURCES = ("file_data", "file_id", "file_url")
#: The order in which one part's needs are recorded (its own kind first).
_MEDIA_ORDER = (VISION, AUDIO, VIDEO)

#: Roles whose messages need nothing by themselves (compared exactly: the fast path).
PLAIN_ROLES = frozenset({"user", "assistant", "system", "developer"})
#: Keys of a message that can need nothing beyond its content (the fast path).
_PLAIN_MESSAGE = frozenset({"role", "content", "name"})
#: Roles whose messages are tool traffic.
TOOL_ROLES = frozenset({"tool", "function"})
_TOOL_NEED = (TOOL_USE, None, False)
TOOL_TYPES = frozenset({"function", "custom"})
RESPONSE_FORMATS = {"json_schema": JSON_SCHEMA, "json_object": None, "text": None}
TOOL_CHOICE_STRINGS = frozenset({"none", "auto", "required"})
TOOL_CHOICE_TYPES = frozenset({"function", "custom", "allowed_tools"})
THINKING_ON = frozenset({"enabled", "adaptive"})
THINKING_OFF = frozenset({"disabled"})
#: ``modalities`` entries → tag (output audio needs ``audio``, decisions.md §4).
MODALITIES = {"image": IMAGE_GEN, "audio": AUDIO, "text": None}

ROOT = Keys("model", "messages", "stream", "tools", "tool_choice", "functions", "function_call",
            "response_format", "logprobs", "top_logprobs", "reasoning_effort", "reasoning",
            "thinking", "enable_thinking", "chat_template_kwargs", "modalities", "audio",
            "max_tokens", "max_completion_tokens", "grounding")
MESSAGE = Keys("role", "content", "tool_calls", "function_call", "audio", "cache_control")
PART = Keys("type", "image_url", "input_audio", "file", "video_url", "audio_url",
            "cache_control", "prompt_cache_breakpoint", *FILE_SOURCES, "format")
FILE = Keys(*FILE_SOURCES, "format", "filename")
MEDIA_URL = Keys("url", "format", "detail")
TYPED = Keys("type")
REASONING = Keys("enabled", "effort", "max_tokens")
TEMPLATE = Keys("enable_thinking")
TOOL = Keys("type", "cache_control")
#: What the decoders hand back as :class:`Settled` markers (never built): plain text parts
#: and function (or custom) tools, whose full reading needs nothing.
_TEXT_PART = Settled("text")
_TOOL = Settled("function")
#: A chat turn of a plain role with string content (or none): it needs nothing. A tool
#: result turn with string content needs tool use, at the turn. A turn whose tool calls all
#: settle is handed back as :class:`SettledItems` of them (its role's marker in ``marker``).
_PLAIN = Settled("message")
_RESULTS = {role: Settled(role) for role in TOOL_ROLES}
#: A tool call of an assistant turn: only the list's being non-empty is read.
_CALL = Settled("tool_call")
SETTLE = settle_table({
    ("messages", "*"): SettleRule({role: _PLAIN for role in PLAIN_ROLES} | _RESULTS,
                                  _PLAIN_MESSAGE | {"tool_call_id", "tool_calls"},
                                  type_key="role", strings=frozenset({"content"}),
                                  nested="tool_calls"),
    ("messages", "*", "tool_calls", "*"): SettleRule({"function": _CALL},
                                                     frozenset({"id", "type", "function"})),
    ("messages", "*", "content", "*"): SettleRule({"text": _TEXT_PART},
                                                  frozenset({"type", "text"})),
    ("tools", "*"): SettleRule({None: _TOOL, "function": _TOOL, "custom": _TOOL},
                               frozenset({"type", "function", "custom"})),
})


#: Top-level fields few bodies carry: a body with none of them skips their readings (each a
#: no-op for an absent field) in one set test.
_RARE = frozenset({"functions", "function_call", "response_format", "logprobs", "top_logprobs",
                   "reasoning_effort", "reasoning", "thinking", "enable_thinking",
                   "chat_template_kwargs", "modalities", "audio", "grounding"})
#: Without either, :func:`_tools` reads nothing.
_TOOL_KEYS = frozenset({"tools", "tool_choice"})
#: The output caps, in the order their paths are recorded.
_CAP_KEYS_IN_ORDER = ("max_completion_tokens", "max_tokens")
_CAP_KEYS = frozenset(_CAP_KEYS_IN_ORDER)


def read(body: dict[str, Any], route: Route, options: Options) -> Features:
    """Chat Completions (a ``policy.Reader``: every reader takes the route and options)."""
    if not ROOT.accepts(body):
        ROOT.check(body, "")
    f = Features()
    model = body.get("model")
    if type(model) is str:  # the common case of _model, in this frame
        f.models.append(ModelRef("model", model))
    else:
        _model(f, body)
    if not _CAP_KEYS.isdisjoint(body):
        for name in _CAP_KEYS_IN_ORDER:
            value = body.get(name)
            if value is not None:
                cap = token_count(value, name)
                if cap is not None:
                    f.models[0].caps.append((name, cap))
    messages = body.get("messages")
    if messages is None:
        raise malformed("messages", "the messages field is required.")
    if type(messages) is not list:
        need_list(messages, "messages")
    plain = _PLAIN_MESSAGE.issuperset
    for i, message in enumerate(messages):
        if message is _PLAIN:
            continue  # a plain turn with string content, never built
        if type(message) is SettledItems:  # a turn whose tool calls all settled
            if message.marker is not _PLAIN and _TOOL_NEED not in f.recorded:
                f.need(TOOL_USE, f"messages[{i}]",
                       f"a {message.marker.kind} message (tool result in the history)")
            if message and _TOOL_NEED not in f.recorded:
                f.need(TOOL_USE, f"messages[{i}].tool_calls", "tool calls in the history")
            continue
        if type(message) is Settled:  # a tool result turn with string content
            if _TOOL_NEED not in f.recorded:
                f.need(TOOL_USE, f"messages[{i}]",
                       f"a {message.kind} message (tool result in the history)")
            continue
        # The common case, decided without building a path: a chat turn with string content.
        if type(message) is dict and plain(message):
            role = message.get("role")
            content = message.get("content")
            if (type(role) is str and role in PLAIN_ROLES
                    and (content is None or isinstance(content, str))):
                continue
        _message(f, message, f"messages[{i}]")
    if not _TOOL_KEYS.isdisjoint(body):
        _tools(f, body)
    if not _RARE.isdisjoint(body):
        _functions(f, body)
        _response_format(f, body.get("response_format"))
        if need_bool(body.get("logprobs"), "logprobs"):
            f.need(LOGPROBS, "logprobs", "logprobs", output=True)
        if body.get("top_logprobs") is not None:
            f.need(LOGPROBS, "top_logprobs", "top_logprobs", output=True)
        _thinking(f, body)
        _output_modalities(f, body)
        grounding(f, body)
    stream = body.get("stream")
    if stream is True or (stream is not None and need_bool(stream, "stream")):
        f.need(STREAMING, "stream", "streaming", output=True)
    return f


def grounding(f: Features, body: dict[str, Any]) -> None:
    """The gateway's ``grounding: {}``: Google Search grounding, run by Google (D14)."""
    value = body.get("grounding")
    if value is None or value is False:
        return
    if value is not True:
        need_dict(value, "grounding", "an object or a boolean")
    f.need(TOOL_USE, "grounding", "Google Search grounding (grounding)", GROUNDING_VENDOR,
           tool="grounding")


#: Fields of the generation and task routes that carry an input image (image-to-image,
#: image-to-video): present and not null → vision, or their ``data:`` URL's media tag.
MEDIA_FIELDS = ("source_image", "image_init", "image", "images", "image_url", "input_image",
                "reference_image", "reference_images", "mask", "input_reference",
                "first_frame", "last_frame", "first_frame_image", "last_frame_image")
GENERATION = Keys("model", "stream", "svg", *MEDIA_FIELDS)
SVG = Keys("model")
TASK = Keys("model", "params", *MEDIA_FIELDS)
PARAMS = Keys(*MEDIA_FIELDS)
EMBEDDING = Keys("model", "input")


def read_generation(body: dict[str, Any], route: Route, options: Options) -> Features:
    """``/v1/images/generations`` and ``/v1/videos/generations``: the model, its tag, input
    images, and (images) streaming of partial images and the SVG author model (D9)."""
    tag, images = route.tag or "", route.kind == IMAGES
    GENERATION.check(body, "")
    f = Features()
    _model(f, body)
    f.need(tag, "model", "image generation" if tag == IMAGE_GEN else "video generation")
    _media_fields(f, body, "")
    if images:
        if need_bool(body.get("stream"), "stream"):
            f.need(STREAMING, "stream", "streaming partial images", output=True)
        svg_model(f, body.get("svg"), "svg")
    return f


def read_task(body: dict[str, Any], route: Route, options: Options) -> Features:
    """``/v1/tasks/submit`` (D12): a video or image model; media at the top or in params."""
    TASK.check(body, "")
    f = Features()
    _model(f, body)
    f.need(VIDEO_GEN, "model", "an asynchronous generation task", any_of=(IMAGE_GEN,))
    _media_fields(f, body, "")
    params = body.get("params")
    if params is not None:
        PARAMS.check(need_dict(params, "params"), "params")
        _media_fields(f, params, "params")
    return f


def read_embeddings(body: dict[str, Any], route: Route, options: Options) -> Features:
    """``/v1/embeddings`` (D13): the model must exist; ``input`` must be text or tokens."""
    EMBEDDING.check(body, "")
    f = Features()
    _model(f, body)
    if not _embedding_input(body.get("input")):
        f.unknown.append(("input", "embedding input other than text or token ids"))
    return f


def _embedding_input(value: Any) -> bool:
    if type(value) is str:
        return True
    if type(value) is not list or not value:
        return value is None
    kinds = {type(item) for item in value}
    if kinds == {str} or kinds == {int}:
        return True
    return kinds == {list} and all(
        item and all(type(token) is int for token in item) for item in value)


def svg_model(f: Features, svg: Any, path: str) -> None:
    """``svg.model`` names the SVG author model: it must be in the catalog (D9)."""
    if svg is None:
        return
    SVG.check(need_dict(svg, path), path)
    model = svg.get("model")
    if model is not None:
        f.models.append(ModelRef(f"{path}.model", need_str(model, f"{path}.model"), only=()))


def _media_fields(f: Features, obj: dict[str, Any], base: str) -> None:
    for key, value in obj.items():
        if value is None:
            continue
        path = f"{base}.{key}" if base else key
        if key in MEDIA_FIELDS:
            f.need(_value_tag(value) or VISION, path, f"an input image ({key})")
        elif type(value) is str:
            mime = data_url_mime(value)
            if mime is not None and _MIME.fullmatch(mime.strip()):
                tag = media_tag(mime)
                if tag is not None:
                    f.need(tag, path, f"inline media ({key})")


_MIME = re.compile(r"[\w.+-]+/[\w.+-]+")


def _value_tag(value: Any) -> str | None:
    """A ``data:`` URL (or a list of them) names its media kind; anything else is an image."""
    values = value if type(value) is list else [value]
    tags = [media_tag(mime) for mime in map(data_url_mime, values) if mime is not None]
    return next((t for t in tags if t is not None), None)


def _model(f: Features, body: dict[str, Any]) -> None:
    model = body.get("model")
    if model is None:
        raise malformed("model", "the model field is required.")
    f.models.append(ModelRef("model", model if type(model) is str else need_str(model, "model")))


def require_model(f: Features, body: dict[str, Any]) -> None:
    """A non-empty string ``model`` (routes.md D1): anything else is ``invalid_param``."""
    model = body.get("model")
    if type(model) is not str or not model:
        raise malformed("model", "a non-empty string model field is required.")
    f.models.append(ModelRef("model", model))


def _message(f: Features, message: Any, path: str) -> None:
    MESSAGE.check(need_dict(message, path), path)
    role = message.get("role")
    if role is not None and need_str(role, f"{path}.role").lower() in TOOL_ROLES:
        f.need(TOOL_USE, path, f"a {role} message (tool result in the history)")
    if message.get("cache_control") is not None:
        f.need(CACHE_CONTROL, path, "a cache_control breakpoint")
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        cpath = f"{path}.content"
        accepts = PART.accepts
        for i, part in enumerate(need_list(content, cpath)):
            if part is _TEXT_PART:
                continue  # a plain text part, never built
            if (type(part) is dict and accepts(part) and part.get("type") == "text"
                    and part.get("cache_control") is None
                    and part.get("prompt_cache_breakpoint") is None):
                continue  # a plain text part
            _part(f, part, f"{cpath}[{i}]")
    calls = message.get("tool_calls")
    if calls is not None and need_list(calls, f"{path}.tool_calls"):
        f.need(TOOL_USE, f"{path}.tool_calls", "tool calls in the history")
    if message.get("function_call") is not None:
        f.need(TOOL_USE, f"{path}.function_call", "a function call in the history")
    if message.get("audio") is not None:
        f.need(AUDIO, f"{path}.audio", "audio output in the history")


def _part(f: Features, part: Any, path: str) -> None:
    PART.check(need_dict(part, path, "a content part object"), path)
    kind = part.get("type")
    if kind is None:
        tags = [tag for key, tag in SHORTHANDS.items() if key in part]
        if not tags:
            f.unknown.append((path, "(a part without a type)"))
        for tag in tags:
            f.need(tag, path, "a media part")
        what = None
    elif type(kind) is not str:
        raise malformed(f"{path}.type", "a content part type must be a string.")
    elif kind not in PARTS:
        f.unknown.append((path, kind))
        return
    else:
        tags = {PARTS[kind]}
        if kind in _URL_KEYS:
            tags |= _url_tags(part.get(_URL_KEYS[kind]), f"{path}.{_URL_KEYS[kind]}")
        elif kind in _FILE_KEYS:
            tags = _file_tags(part, kind, path)
        for tag in sorted(filter(None, tags), key=lambda t: (t != PARTS[kind],
                                                              _MEDIA_ORDER.index(t))):
            f.need(tag, path, f"the {kind} part")
        what = kind
    if part.get("cache_control") is not None or part.get("prompt_cache_breakpoint") is not None:
        f.need(CACHE_CONTROL, path, f"a cache breakpoint on a {what or 'media'} part")


def _url_tags(media: Any, path: str) -> set[str | None]:
    """What a media URL object adds to its part's own tag: the kind of a ``data:`` URL and a
    gateway ``format`` MIME type, each needed when it differs from the part type (§11)."""
    url = media
    tags: set[str | None] = set()
    if type(media) is dict:
        MEDIA_URL.check(media, path)
        url = media.get("url")
        if media.get("format") is not None:
            tags.add(media_tag(media.get("format")))
    mime = data_url_mime(url)
    if mime is not None:
        tags.add(media_tag(mime))
    return tags


def _file_tags(part: dict[str, Any], kind: str, path: str) -> set[str | None]:
    """A file part needs what each of its sources would need (``file_data``, ``file_id``,
    ``file_url``, and the gateway ``format``); with no readable source, ``vision``."""
    holders = []
    file = part.get("file")
    if type(file) is dict:
        FILE.check(file, f"{path}.file")
        holders.append(file)
    elif file is not None:
        return {VISION}
    if kind == "input_file":  # the Responses-style spelling keeps its sources on the part
        holders.append(part)
    tags: set[str | None] = set()
    for holder in holders:
        tags |= _source_tags(holder)
    return tags or {VISION}


def _linked_tags(url: Any) -> set[str | None]:
    """A file named by URL: ``vision`` (files are documents by policy) plus every kind its
    extension names. An extension can add a need, never lower one (routes.md: URL extensions
    are not trusted); only a declared ``data:`` MIME type can."""
    if data_url_mime(url) is not None:
        return uri_tags(url)
    return {VISION} | uri_tags(url)


def _source_tags(holder: dict[str, Any]) -> set[str | None]:
    tags: set[str | None] = set()
    data = holder.get("file_data")
    if data is not None:
        mime = data_url_mime(data)
        tags.add(VISION if mime is None else media_tag(mime))
    file_id = holder.get("file_id")
    if file_id is not None:
        tags |= _linked_tags(file_id) if url_shaped(file_id) else {VISION}
    if holder.get("file_url") is not None:
        tags |= _linked_tags(holder.get("file_url"))
    if holder.get("format") is not None:
        tags.add(media_tag(holder.get("format")))
    return tags


def _tools(f: Features, body: dict[str, Any]) -> None:
    """Tools and tool_choice (a body with neither skips this, in :func:`read`)."""
    choice = body.get("tool_choice")
    forced = False
    off = False
    if type(choice) is str:
        value = choice.lower()
        if value not in TOOL_CHOICE_STRINGS:
            f.unknown.append(("tool_choice", choice))
        off, forced = value == "none", value == "required"
    elif choice is not None:
        TYPED.check(need_dict(choice, "tool_choice"), "tool_choice")
        kind = need_str(choice.get("type"), "tool_choice.type")
        if kind not in TOOL_CHOICE_TYPES:
            f.unknown.append(("tool_choice", kind))
        forced = True
    tools = body.get("tools")
    tools = [] if tools is None else need_list(tools, "tools")
    if tools and not off:
        f.need(TOOL_USE, "tools", "tool definitions")
    for i, tool in enumerate(tools):
        if tool is _TOOL:
            continue  # a function tool with plain keys, never built
        path = f"tools[{i}]"
        TOOL.check(need_dict(tool, path), path)
        kind = need_str(tool.get("type", "function"), f"{path}.type")
        if kind not in TOOL_TYPES:
            f.unknown.append((path, kind))
        if tool.get("cache_control") is not None:
            f.need(CACHE_CONTROL, path, "a cache_control breakpoint on a tool")
    if forced:
        f.need(TOOL_USE, "tool_choice", "a forced tool_choice")


def _functions(f: Features, body: dict[str, Any]) -> None:
    """The legacy ``functions`` / ``function_call`` (read after the tools)."""
    functions = body.get("functions")
    call = body.get("function_call")
    if call is not None and type(call) is not str:
        need_dict(call, "function_call", "a string or an object")
    call_off = type(call) is str and call.lower() == "none"
    if functions is not None and need_list(functions, "functions") and not call_off:
        f.need(TOOL_USE, "functions", "functions")
    if type(call) is dict:
        f.need(TOOL_USE, "function_call", "a forced function_call")


def _response_format(f: Features, fmt: Any) -> None:
    if fmt is None:
        return
    TYPED.check(need_dict(fmt, "response_format"), "response_format")
    kind = need_str(fmt.get("type"), "response_format.type")
    if kind not in RESPONSE_FORMATS:
        f.unknown.append(("response_format", kind))
    elif RESPONSE_FORMATS[kind] is not None:
        f.need(JSON_SCHEMA, "response_format", "structured output (json_schema)", output=True)


def _thinking(f: Features, body: dict[str, Any]) -> None:
    """Reasoning switches: OpenAI's own and the gateways' (OpenRouter, LiteLLM, vLLM, Qwen)."""
    effort = body.get("reasoning_effort")
    if effort is not None and need_str(effort, "reasoning_effort").lower() != "none":
        f.need(THINKING, "reasoning_effort", f"reasoning_effort {effort}", output=True)
    reasoning = body.get("reasoning")
    if reasoning is not None:
        REASONING.check(need_dict(reasoning, "reasoning"), "reasoning")
        enabled = reasoning.get("enabled")
        need_bool(enabled, "reasoning.enabled")
        effort = reasoning.get("effort")
        if effort is not None:
            effort = need_str(effort, "reasoning.effort")
        budget = token_count(reasoning.get("max_tokens"), "reasoning.max_tokens")
        on = enabled is True or budget is not None or (
            effort is not None and effort.lower() != "none")
        if on and enabled is not False:
            f.need(THINKING, "reasoning", "reasoning", output=True)
    thinking = body.get("thinking")
    if thinking is not None:
        TYPED.check(need_dict(thinking, "thinking"), "thinking")
        kind = need_str(thinking.get("type"), "thinking.type").lower()
        if kind in THINKING_ON:
            f.need(THINKING, "thinking", f"thinking {kind}", output=True)
        elif kind not in THINKING_OFF:
            f.unknown.append(("thinking", f"thinking {kind}"))
    if need_bool(body.get("enable_thinking"), "enable_thinking"):
        f.need(THINKING, "enable_thinking", "enable_thinking", output=True)
    template = body.get("chat_template_kwargs")
    if template is not None:
        TEMPLATE.check(need_dict(template, "chat_template_kwargs"), "chat_template_kwargs")
        if need_bool(template.get("enable_thinking"), "chat_template_kwargs.enable_thinking"):
            f.need(THINKING, "chat_template_kwargs", "enable_thinking", output=True)


def _output_modalities(f: Features, body: dict[str, Any]) -> None:
    modalities = body.get("modalities")
    if modalities is not None:
        for i, modality in enumerate(need_list(modalities, "modalities")):
            name = need_str(modality, f"modalities[{i}]").lower()
            if name not in MODALITIES:
                f.unknown.append(("modalities", f"output modality {name}"))
            elif MODALITIES[name] is not None:
                f.need(MODALITIES[name], "modalities", f"{name} output", output=True)
    if body.get("audio") is not None:
        f.need(AUDIO, "audio", "audio output", output=True)
