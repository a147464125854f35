"""Anthropic Messages (``/v1/messages``, ``/v1/messages/count_tokens``): features of a body."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from ..body import Settled, SettledItems, SettleRule, settle_table
from ._base import (
    AUDIO,
    CACHE_CONTROL,
    JSON_SCHEMA,
    STREAMING,
    THINKING,
    TOOL_USE,
    VIDEO,
    VISION,
    Features,
    Keys,
    ModelRef,
    Need,
    data_url_mime,
    malformed,
    media_tag,
    need_bool,
    need_dict,
    need_list,
    need_str,
    shown,
    token_count,
)

if TYPE_CHECKING:
    from ..policy import Options
    from ..routing import Route

__all__ = ["read"]

VENDOR = "anthropic"


class Block(NamedTuple):
    """What one content block ``type`` needs, and where its nested blocks live."""

    tag: str | None = None
    #: Runs on Anthropic's servers: needs an ``owned_by: anthropic`` model.
    server: bool = False
    #: Key of nested content blocks (a string or a list of blocks).
    nested: str | None = None

    @property
    def need_key(self) -> tuple[str | None, str | None, bool]:
        return (self.tag, VENDOR if self.server else None, False)


_TOOL = TOOL_USE
_SERVER = Block(_TOOL, server=True)

#: Content block types (``messages[*].content[*]``, ``system[*]`` and nested content).
BLOCKS: dict[str, Block] = {
    "text": Block(),
    "thinking": Block(),
    "redacted_thinking": Block(),
    "compaction": Block(),
    "fallback": Block(),
    "image": Block(VISION),
    "document": Block(),  # needs depend on its source, see _document
    "search_result": Block(nested="content"),
    "tool_use": Block(_TOOL),
    "tool_result": Block(_TOOL, nested="content"),
    "tool_reference": Block(_TOOL),
    "browser_state": Block(_TOOL),
    "tool_addition": Block(_TOOL),
    "tool_removal": Block(_TOOL),
    "mcp_tool_listing": Block(_TOOL),
    "server_tool_use": _SERVER,
    "web_search_tool_result": _SERVER,
    "web_fetch_tool_result": _SERVER,  # its fetched document is read by _web_fetch
    "code_execution_tool_result": _SERVER,
    "bash_code_execution_tool_result": _SERVER,
    "text_editor_code_execution_tool_result": _SERVER,
    "tool_search_tool_result": _SERVER,
    "container_upload": _SERVER,
    "mcp_tool_use": _SERVER,
    "mcp_tool_result": Block(_TOOL, server=True, nested="content"),
    "advisor_tool_result": _SERVER,
}

#: Block types with no nested or special content → the key of their need.
_SIMPLE = {kind: (rule.tag, VENDOR, False, kind, ()) if rule.server else rule.need_key
           for kind, rule in BLOCKS.items()
           if rule.nested is None and kind not in ("document", "web_fetch_tool_result", "image")}

#: Document ``source.type`` → tag (None: plain text, needs nothing). PDFs need vision (§4).
DOCUMENT_SOURCES: dict[str, str | None] = {
    "url": VISION,   # a PDF by URL
    "file": VISION,  # an uploaded file: its type is not visible, assume the worst
    "text": None,
    "content": None,  # its nested blocks decide
    "base64": None,   # its media_type decides
}

#: Tool ``type`` prefixes: server-run tools and Anthropic-defined client tools both need an
#: Anthropic model with tool_use; custom tools need tool_use only.
SERVER_TOOLS = ("web_search_", "web_fetch_", "code_execution_", "tool_search_tool_", "mcp_toolset")
CLIENT_TOOLS = ("bash_", "text_editor_", "memory_", "computer_", "browser_")

#: What the decoders hand back as :class:`Settled` markers (never built): content blocks of a
#: simple kind holding only keys whose values no reading looks at, and plain custom tools.
#: Blocks with nested content settle when that content is a string (it needs nothing).
_NESTED = {kind: (rule.tag, VENDOR, False, kind, ()) if rule.server else rule.need_key
           for kind, rule in BLOCKS.items() if rule.nested == "content"}
_KINDS = (*_SIMPLE, *_NESTED)
#: A block with a cache_control breakpoint (not null) settles as its kind's flagged marker:
#: the breakpoint is a need of its own, its value is never read.
_BLOCK_RULE = SettleRule(
    {kind: Settled(kind) for kind in _KINDS},
    frozenset({"type", "text", "id", "name", "input", "thinking", "signature", "data",
               "citations", "tool_use_id", "content", "is_error", "cache_control"}),
    strings=frozenset({"content"}), flag="cache_control",
    flagged={kind: Settled(kind, flagged=True) for kind in _KINDS})
_CACHE_NEED = (CACHE_CONTROL, None, False)
#: Each settled block's marker → the keys of the needs its full reading records.
_MARKER_NEEDS: dict[int, tuple[tuple[Any, ...], ...]] = {
    id(marker): ((_CACHE_NEED,) if marker.flagged else ()) + (
        () if key[0] is None else (key,))
    for markers in (_BLOCK_RULE.kinds, _BLOCK_RULE.flagged)
    for marker, key in ((m, (_SIMPLE | _NESTED)[m.kind]) for m in markers.values())}
#: ``Features.recorded`` (frozen) → the settled blocks with nothing left to add, and their ids.
_QUIET: dict[frozenset[tuple[Any, ...]], tuple[frozenset[Settled], frozenset[int]]] = {}
_MARKERS = {id(m): m for m in (*_BLOCK_RULE.kinds.values(), *_BLOCK_RULE.flagged.values())}
_CUSTOM_TOOL = Settled("custom")
_TOOL_RULE = SettleRule({None: _CUSTOM_TOOL, "custom": _CUSTOM_TOOL}, frozenset({
    "type", "name", "description", "input_schema", "strict", "defer_loading"}))
#: A turn whose content is a string: it needs nothing. A turn whose content blocks all
#: settle is handed back as the list of their markers (:class:`SettledItems`).
_PLAIN = Settled("message")
SETTLE = settle_table({
    ("messages", "*"): SettleRule({"user": _PLAIN, "assistant": _PLAIN},
                                  frozenset({"role", "content"}), type_key="role",
                                  required="content", strings=frozenset({"content"}),
                                  nested="content"),
    ("messages", "*", "content", "*"): _BLOCK_RULE,
    ("messages", "*", "content", "*", "content", "*"): _BLOCK_RULE,
    ("system", "*"): _BLOCK_RULE,
    ("tools", "*"): _TOOL_RULE,
})

THINKING_ON = frozenset({"enabled", "adaptive", "between_tools"})
THINKING_OFF = frozenset({"disabled"})
TOOL_CHOICES = frozenset({"auto", "any", "tool", "none"})

ROOT = Keys("model", "messages", "system", "tools", "tool_choice", "stream", "max_tokens",
            "thinking", "cache_control", "output_config", "output_format", "fallbacks",
            "mcp_servers", "container")
MESSAGE = Keys("role", "content")
BLOCK = Keys("type", "source", "content", "cache_control")
SOURCE = Keys("type", "media_type", "content", "url")
TYPED = Keys("type")
OUTPUT_CONFIG = Keys("format")
FALLBACK = Keys("model", "max_tokens", "thinking")
TOOL = Keys("type", "cache_control", "strict")


#: Top-level fields few bodies carry: a body with none of them skips their readings (each a
#: no-op for an absent field) in one set test.
_UNREAD: Any = object()
_RARE = frozenset({"tool_choice", "mcp_servers", "container", "thinking", "output_config",
                   "output_format", "fallbacks", "cache_control"})


def read(body: dict[str, Any], route: Route, options: Options) -> Features:
    """``/v1/messages`` and its token count (no output cap); a ``policy.Reader``."""
    counting = route.counting
    if not ROOT.accepts(body):
        ROOT.check(body, "")
    f = Features()
    model = body.get("model")
    if model is None:
        raise malformed("model", "the model field is required.")
    cap = None if counting else body.get("max_tokens")
    if type(cap) is not int and cap is not None:  # an int is the common, valid case
        cap = token_count(cap, "max_tokens")
    caps = [] if cap is None else [("max_tokens", cap)]
    f.models.append(ModelRef("model", model if type(model) is str else need_str(model, "model"),
                             caps))
    rare = not _RARE.isdisjoint(body)
    if rare and body.get("cache_control") is not None:
        f.need(CACHE_CONTROL, "cache_control", "automatic prompt caching")
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        _blocks(f, need_list(system, "system"), "system")
    messages = body.get("messages")
    if messages is None:
        raise malformed("messages", "the messages field is required.")
    accepts = MESSAGE.accepts
    quiet = quiet_ids = _UNREAD  # looked up at the first turn that is not plain
    if type(messages) is not list:
        need_list(messages, "messages")
    for i, message in enumerate(messages):
        if message is _PLAIN:
            continue  # a turn with string content, never built
        if quiet is _UNREAD:
            quiet, quiet_ids = _quiet(f)
        if type(message) is SettledItems:  # a turn of settled blocks: their markers
            if quiet.issuperset(message):
                continue  # whose needs are none or already recorded
            content: Any = message
        else:
            if type(message) is not dict or not accepts(message):
                path = f"messages[{i}]"
                MESSAGE.check(need_dict(message, path), path)
            content = message.get("content")
            if type(content) is not list:
                if not isinstance(content, str):
                    _content(f, content, f"messages[{i}].content", required=True)
                continue
            if quiet_ids.issuperset(map(id, content)):  # by id: built blocks are dicts
                continue
        first = _first_unsettled(f, content)
        if first < len(content):  # the path is built only when a block is read in full
            _blocks(f, content, f"messages[{i}].content", first)
            quiet, quiet_ids = _quiet(f)
    if rare:
        _tools(f, body)
        thinking = _thinking(f, body.get("thinking"), "thinking")
        for need in thinking:
            need.body_thinking = True
        f.needs.extend(thinking)
        _output_format(f, body)
    else:
        tools = body.get("tools")
        if tools is not None:  # the tools alone (no tool_choice, MCP servers or container)
            _tool_list(f, need_list(tools, "tools"), False)
    stream = body.get("stream")
    if stream is True or (stream is not None and need_bool(stream, "stream")):
        f.need(STREAMING, "stream", "streaming", output=True)
    if rare:
        fallbacks = body.get("fallbacks")
        if fallbacks is not None:
            _fallbacks(f, need_list(fallbacks, "fallbacks"), caps)
    return f


def _content(f: Features, content: Any, path: str, *, required: bool = False) -> None:
    if isinstance(content, str) or (content is None and not required):
        return
    _blocks(f, need_list(content, path), path)


def _blocks(f: Features, blocks: list[Any], path: str, start: int = 0) -> None:
    """Read every block from ``start`` on (the ones before it are known to be settled)."""
    i = start
    while i < len(blocks):
        _block(f, blocks[i], f"{path}[{i}]")
        i = _first_unsettled(f, blocks, i + 1)


def _quiet(f: Features) -> tuple[frozenset[Settled], frozenset[int]]:
    """The settled blocks whose reading would add nothing now (their needs are none or
    already recorded), and their ids: a turn of them only is skipped in one set test (a list
    that may hold built blocks, dicts, by id)."""
    recorded = frozenset(f.recorded)
    quiet = _QUIET.get(recorded)
    if quiet is None:
        ids = frozenset(marker for marker, keys in _MARKER_NEEDS.items()
                        if recorded.issuperset(keys))
        quiet = (frozenset(_MARKERS[i] for i in ids), ids)
        if len(_QUIET) >= 256:
            _QUIET.clear()
        _QUIET[recorded] = quiet
    return quiet


def _first_unsettled(f: Features, blocks: list[Any], start: int = 0) -> int:
    """The index of the first block from ``start`` on that needs the full reading (or the
    length): the common case is decided without building a path. A settled block is a
    simple one with only known keys, no cache_control, and a need that is none or already
    recorded, so reading it in full would add nothing."""
    accepts = BLOCK.accepts
    recorded = f.recorded
    simple = _SIMPLE.get
    for i in range(start, len(blocks)):
        block = blocks[i]
        if type(block) is Settled:  # a simple kind with plain keys, never built
            if recorded.issuperset(_MARKER_NEEDS[id(block)]):
                continue
            return i
        if type(block) is dict and accepts(block) and block.get("cache_control") is None:
            kind = block.get("type")
            key = simple(kind) if type(kind) is str else None
            if key is not None and (key[0] is None or key in recorded):
                continue
        return i
    return len(blocks)


def _block(f: Features, block: Any, path: str) -> None:
    if type(block) is Settled:  # all its full reading would look at is its kind
        if block.flagged:
            f.need(CACHE_CONTROL, path, "a cache_control breakpoint")
        rule = BLOCKS[block.kind]
        if rule.tag is not None:
            f.need(rule.tag, path, f"the {block.kind} block",
                   *((VENDOR, False, block.kind) if rule.server else ()))
        return
    BLOCK.check(need_dict(block, path, "a content block object"), path)
    kind = block.get("type")
    rule = BLOCKS.get(kind) if type(kind) is str else None
    if rule is None:
        if type(kind) is not str:
            raise malformed(f"{path}.type", "every content block needs a string type.")
        f.unknown.append((path, kind))
        return
    if block.get("cache_control") is not None:
        f.need(CACHE_CONTROL, path, "a cache_control breakpoint")
    if rule.tag is not None:
        f.need(rule.tag, path, f"the {kind} block", *((VENDOR, False, kind) if rule.server
                                                       else ()))
    if kind == "document":
        _document(f, block, path)
    elif kind == "web_fetch_tool_result":
        _web_fetch(f, block.get("content"), f"{path}.content")
    elif kind == "image":
        source = block.get("source")
        if type(source) is dict:
            SOURCE.check(source, f"{path}.source")
            for tag in _declared_kinds(source) - {VISION, None}:
                f.need(tag, path, f"an image block holding {tag} media")
    if rule.nested is not None:
        _content(f, block.get(rule.nested), f"{path}.{rule.nested}")


def _document(f: Features, block: dict[str, Any], path: str) -> None:
    spath = f"{path}.source"
    source = block.get("source")
    SOURCE.check(need_dict(source, spath, "a document source object"), spath)
    kind = source.get("type")
    if type(kind) is not str:
        raise malformed(f"{spath}.type", "a document source needs a string type.")
    if kind not in DOCUMENT_SOURCES:
        f.unknown.append((spath, kind))
        return
    tags = {DOCUMENT_SOURCES[kind]}
    if kind == "base64":
        tags = {media_tag(source.get("media_type"))}
    elif kind == "content":
        _content(f, source.get("content"), f"{spath}.content", required=True)
    elif kind == "url":
        tags |= _declared_kinds(source)
    what = source.get("media_type") if type(source.get("media_type")) is str else kind
    for tag in (VISION, AUDIO, VIDEO):
        if tag in tags:
            f.need(tag, path, f"a document ({shown(what)})")


def _declared_kinds(source: dict[str, Any]) -> set[str | None]:
    """The media kinds a source declares: its ``media_type`` and a ``data:`` URL's type. Each
    is needed when it differs from the block type (decisions.md §11)."""
    kinds: set[str | None] = set()
    if source.get("media_type") is not None:
        kinds.add(media_tag(source.get("media_type")))
    mime = data_url_mime(source.get("url"))
    if mime is not None:
        kinds.add(media_tag(mime))
    return kinds


def _web_fetch(f: Features, result: Any, path: str) -> None:
    """A fetched page carries its own document block (often a PDF)."""
    if type(result) is dict:
        TYPED.check(result, path)
        document = result.get("content")
        if type(document) is dict:
            _block(f, document, f"{path}.content")


def _tools(f: Features, body: dict[str, Any]) -> None:
    """The tools with tool_choice, MCP servers and a container (a body with none of them
    reads its tools alone, in :func:`read`)."""
    choice = body.get("tool_choice")
    choice_type = None
    if choice is not None:
        TYPED.check(need_dict(choice, "tool_choice"), "tool_choice")
        choice_type = need_str(choice.get("type"), "tool_choice.type").lower()
        if choice_type not in TOOL_CHOICES:
            f.unknown.append(("tool_choice", choice_type))
    tools = body.get("tools")
    _tool_list(f, [] if tools is None else need_list(tools, "tools"), choice_type == "none")
    if choice_type in ("any", "tool"):
        f.need(TOOL_USE, "tool_choice", f"tool_choice {choice_type}")
    servers = body.get("mcp_servers")
    if servers is not None and need_list(servers, "mcp_servers"):
        f.need(TOOL_USE, "mcp_servers", "MCP servers", VENDOR, tool="mcp_servers")
    if body.get("container") is not None:
        f.need(TOOL_USE, "container", "a code-execution container", VENDOR,
               tool="container")


def _tool_list(f: Features, tools: list[Any], off: bool) -> None:
    """The tool definitions; ``off``: tool_choice none (they are not offered)."""
    if tools and not off:
        f.need(TOOL_USE, "tools", "tool definitions")
    accepts = TOOL.accepts
    for i, tool in enumerate(tools):
        if type(tool) is Settled or (type(tool) is dict and accepts(tool) and tool.get(
                "type") is None and tool.get("cache_control") is None):
            continue  # a plain custom tool
        path = f"tools[{i}]"
        TOOL.check(need_dict(tool, path), path)
        if tool.get("cache_control") is not None:
            f.need(CACHE_CONTROL, path, "a cache_control breakpoint on a tool")
        kind = tool.get("type")
        if kind is None or kind == "custom":
            continue
        if type(kind) is not str:
            raise malformed(f"{path}.type", "a tool type must be a string.")
        if kind.startswith(SERVER_TOOLS):
            what = f"server tool {kind}"
        elif kind.startswith(CLIENT_TOOLS):
            what = f"Anthropic-defined tool {kind}"
        else:
            f.unknown.append((path, kind))
            continue
        if not off:
            f.need(TOOL_USE, path, what, VENDOR, tool=kind)


def _thinking(f: Features, thinking: Any, path: str) -> list[Need]:
    if thinking is None:
        return []
    TYPED.check(need_dict(thinking, path), path)
    kind = need_str(thinking.get("type"), f"{path}.type").lower()
    if kind in THINKING_ON:
        return [Need(THINKING, path, f"thinking {kind}", output=True)]
    if kind not in THINKING_OFF:
        f.unknown.append((path, f"thinking {kind}"))
    return []


def _output_format(f: Features, body: dict[str, Any]) -> None:
    config = body.get("output_config")
    if config is not None:
        OUTPUT_CONFIG.check(need_dict(config, "output_config"), "output_config")
        _format(f, config.get("format"), "output_config", "output_config.format")
    _format(f, body.get("output_format"), "output_format", "output_format")


def _format(f: Features, fmt: Any, path: str, where: str) -> None:
    if fmt is None:
        return
    TYPED.check(need_dict(fmt, where), where)
    kind = need_str(fmt.get("type"), f"{where}.type").lower()
    if kind == "json_schema":
        f.need(JSON_SCHEMA, path, "structured output (json_schema)", output=True)
    else:
        f.unknown.append((where, kind))


def _fallbacks(f: Features, fallbacks: list[Any], caps: list[tuple[str, int]]) -> None:
    """Beta fallbacks bring in more models; each is checked like ``model``."""
    for i, fallback in enumerate(fallbacks):
        path = f"fallbacks[{i}]"
        FALLBACK.check(need_dict(fallback, path), path)
        slug = need_str(fallback.get("model"), f"{path}.model")
        if slug == "default":
            continue  # the upstream's own default chain, not a model id
        ref = ModelRef(f"{path}.model", slug, caps)
        own_cap = token_count(fallback.get("max_tokens"), f"{path}.max_tokens")
        if own_cap is not None:
            ref.caps = [(f"{path}.max_tokens", own_cap)]
        if "thinking" in fallback:
            ref.thinking = _thinking(f, fallback.get("thinking"), f"{path}.thinking")
        f.models.append(ref)
