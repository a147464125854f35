"""OpenAI Responses (``/v1/responses``, ``/input_tokens``, ``/compact``): routes.md §2–§3.

Every rule is a row of the tables below: input item types, content part types, tool types,
``tool_choice`` forms and ``include`` values. Items, parts and tools nest (tool outputs hold
parts, ``additional_tools`` and ``tool_search_output`` items and ``namespace`` tools hold
tools), so the same tables are applied at every level.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from ..body import Settled, SettledItems, SettleRule, settle_table
from . import openai
from ._base import (
    AUDIO,
    CACHE_CONTROL,
    IMAGE_GEN,
    JSON_SCHEMA,
    LOGPROBS,
    STREAMING,
    THINKING,
    TOOL_USE,
    VENDOR_ONLY,
    VIDEO,
    VISION,
    Features,
    Keys,
    ModelRef,
    malformed,
    need_bool,
    need_dict,
    need_list,
    need_str,
    token_count,
)

if TYPE_CHECKING:
    from ..policy import Options
    from ..routing import Route

__all__ = ["read"]

#: The vendor that runs OpenAI-hosted tools and expands OpenAI-held context.
VENDOR = "openai"


class Item(NamedTuple):
    """What one input item ``type`` needs."""

    #: Tool traffic: needs ``tool_use``.
    tool: bool = False
    #: Runs on (or is held by) OpenAI: needs an ``owned_by: openai`` model.
    openai: bool = False
    #: The tool type whose vendor rule applies (``tool_vendors`` keys).
    tool_type: str | None = None
    #: Key holding content parts (a string or a list of parts).
    parts: str | None = None
    #: Further reading: see ``_SPECIAL``.
    special: str | None = None


def _hosted(tool_type: str, special: str | None = None) -> Item:
    return Item(True, True, tool_type, special=special)


#: Input item types (routes.md §2.2).
ITEMS: dict[str, Item] = {
    "message": Item(parts="content", special="message"),
    "function_call": Item(True),
    "function_call_output": Item(True, parts="output"),
    "custom_tool_call": Item(True),
    "custom_tool_call_output": Item(True, parts="output"),
    "reasoning": Item(),
    "compaction": Item(openai=True),
    "compaction_trigger": Item(),
    "item_reference": Item(special="stored"),
    "configuration_update": Item(special="configuration"),
    "additional_tools": Item(True, special="tools"),
    "tool_search_call": _hosted("tool_search"),
    "tool_search_output": _hosted("tool_search", "tools"),
    "web_search_call": _hosted("web_search"),
    "file_search_call": _hosted("file_search"),
    "code_interpreter_call": _hosted("code_interpreter", "interpreter"),
    "image_generation_call": _hosted("image_generation", "generated"),
    "computer_call": _hosted("computer"),
    "computer_call_output": _hosted("computer", "screenshot"),
    "local_shell_call": _hosted("local_shell"),
    "local_shell_call_output": _hosted("local_shell"),
    "shell_call": _hosted("shell"),
    "shell_call_output": _hosted("shell"),
    "apply_patch_call": _hosted("apply_patch"),
    "apply_patch_call_output": _hosted("apply_patch"),
    "mcp_list_tools": _hosted("mcp"),
    "mcp_approval_request": _hosted("mcp"),
    "mcp_approval_response": _hosted("mcp"),
    "mcp_call": _hosted("mcp"),
    "program": _hosted("programmatic_tool_calling"),
    "program_output": _hosted("programmatic_tool_calling"),
    "agent_message": Item(openai=True, parts="content"),
    "multi_agent_call": _hosted("multi_agent"),
    "multi_agent_call_output": _hosted("multi_agent"),
}

#: Content part types (routes.md §2.3) → the tag they need; ``"media"`` and ``"file"`` are
#: decided by their URL or data, ``"openai"`` is OpenAI-encrypted context.
PARTS: dict[str, str | None] = {
    "input_text": None,
    "output_text": None,
    "refusal": None,
    "summary_text": None,
    "reasoning_text": None,
    "input_image": "media",
    "computer_screenshot": VISION,
    "input_file": "file",
    "input_audio": AUDIO,
    "input_video": VIDEO,
    "encrypted_content": "openai",
}

#: Tool types (routes.md §2.4): None runs on the client, a string names the tool type whose
#: runner (OpenAI by default) the model must be owned by.
TOOLS: dict[str, str | None] = {
    "function": None,
    "custom": None,
    "namespace": None,
    "file_search": "file_search",
    "web_search": "web_search",
    "web_search_2025_08_26": "web_search_2025_08_26",
    "web_search_preview": "web_search_preview",
    "web_search_preview_2025_03_11": "web_search_preview_2025_03_11",
    "code_interpreter": "code_interpreter",
    "image_generation": "image_generation",
    "mcp": "mcp",
    "computer_use_preview": "computer_use_preview",
    "computer": "computer",
    "local_shell": "local_shell",
    "shell": "shell",
    "apply_patch": "apply_patch",
    "tool_search": "tool_search",
    "programmatic_tool_calling": "programmatic_tool_calling",
}

TOOL_CHOICE_STRINGS = frozenset({"none", "auto", "required"})
#: ``tool_choice`` object types (routes.md §2.5): False forces a client tool, True a hosted
#: or OpenAI-defined one (+ openai).
TOOL_CHOICE_TYPES: dict[str, bool] = {
    "function": False, "custom": False, "allowed_tools": False,
    "mcp": True, "file_search": True, "web_search": True, "web_search_preview": True,
    "web_search_preview_2025_03_11": True, "computer": True, "computer_use_preview": True,
    "computer_use": True, "image_generation": True, "code_interpreter": True,
    "apply_patch": True, "shell": True, "programmatic_tool_calling": True,
}

#: ``include`` values (routes.md §2.6) → tag (None: nothing).
INCLUDES: dict[str, str | None] = {
    "message.output_text.logprobs": LOGPROBS,
    "reasoning.encrypted_content": THINKING,
    "message.input_image.image_url": None,
    "computer_call_output.output.image_url": None,
    "file_search_call.results": None,
    "web_search_call.results": None,
    "web_search_call.action.sources": None,
    "code_interpreter_call.outputs": None,
}

#: ``text.format.type`` → tag (``json_object`` is JSON mode: nothing).
FORMATS: dict[str, str | None] = {"json_schema": JSON_SCHEMA, "json_object": None, "text": None}

ROOT = Keys(
    "model", "input", "instructions", "stream", "stream_options", "max_output_tokens",
    "max_tool_calls", "tools", "tool_choice", "parallel_tool_calls", "text", "reasoning",
    "include", "top_logprobs", "previous_response_id", "conversation", "prompt", "background",
    "background_options", "store", "truncation", "service_tier", "metadata", "user",
    "safety_identifier", "temperature", "top_p", "prompt_cache_key", "prompt_cache_retention",
    "prompt_cache_options", "context_management", "image", "moderation", "access_programs",
    "multi_agent", "personality", "stream_id", "generate", "response_format", "modalities",
    "audio", "grounding",
)
ITEM = Keys("type", "role", "content", "output", "id", "tools", "reasoning", "text", "result",
            "outputs", "phase", "status")
PART = Keys("type", "image_url", "file_data", "file_url", "file_id", "input_audio",
            "video_url", "prompt_cache_breakpoint", "encrypted_content")
TOOL = Keys("type", "tools", "model", "svg", "function")
#: Tool types that need nothing past the tools array's own need, and hold nothing to read
#: (their full reading, on a tool with only known keys, adds nothing).
_INERT_TOOLS = frozenset(kind for kind, runner in TOOLS.items()
                         if runner is None and kind not in ("namespace", "image_generation"))
#: What the decoders hand back as :class:`Settled` markers (never built): text parts of
#: messages and function tools with plain keys, whose full reading needs nothing.
_TEXT_PART = Settled("input_text")
_TOOL = Settled("function")
_PART_RULE = SettleRule({"input_text": _TEXT_PART, "output_text": _TEXT_PART},
                        frozenset({"type", "text", "annotations", "logprobs"}))
_TOOL_RULE = SettleRule({None: _TOOL, **{kind: _TOOL for kind in _INERT_TOOLS}},
                        frozenset({"type", "name", "description", "parameters", "strict"}))
#: Tool calls and their plain-text outputs in the history: they need tool_use, nothing more.
_CALL_ITEMS = ("function_call", "function_call_output", "custom_tool_call",
               "custom_tool_call_output")
#: A typed message item whose content is a string or text parts needs nothing, whatever its
#: (string) role; with parts it is handed back as :class:`SettledItems` of them. (The keys
#: are shared by every kind: no kind's full reading reads another kind's keys.)
_MESSAGE = Settled("message")
_ITEM_RULE = SettleRule({"message": _MESSAGE, **{kind: Settled(kind) for kind in _CALL_ITEMS}},
                        frozenset({"type", "id", "status", "name", "arguments", "call_id",
                                   "output", "input", "role", "content", "phase"}),
                        strings=frozenset({"output", "role", "content"}), nested="content")
_TOOL_NEED = (TOOL_USE, None, False)
SETTLE = settle_table({
    ("input", "*"): _ITEM_RULE,
    ("instructions", "*"): _ITEM_RULE,
    ("input", "*", "content", "*"): _PART_RULE,
    ("instructions", "*", "content", "*"): _PART_RULE,
    ("tools", "*"): _TOOL_RULE,
    ("tools", "*", "tools", "*"): _TOOL_RULE,
})
TYPED = Keys("type")
CHOICE = Keys("type", "mode", "tools", "name", "server_label")
TEXT = Keys("format", "verbosity")
FORMAT = Keys("type", "name", "schema", "strict", "description")
REASONING = Keys("effort", "summary", "generate_summary", "context", "mode", "enabled",
                 "max_tokens")
PROMPT = Keys("id", "version", "variables")
CACHE_OPTIONS = Keys("mode", "ttl", "comparison_response_id", "prewarm")
MULTI_AGENT = Keys("enabled", "max_concurrent_subagents")
CONFIGURATION = Keys("reasoning", "text")
INTERPRETER_OUTPUT = Keys("type", "url", "logs")

_MESSAGE_ROLES = frozenset({"user", "assistant", "system", "developer"})


def read(body: dict[str, Any], route: Route, options: Options) -> Features:
    """What a Responses body needs (a ``policy.Reader``); the counting routes (input_tokens,
    compact) drop output caps."""
    counting, stored_state = route.counting, options.stored_state
    ROOT.check(body, "")
    f = Features()
    openai.require_model(f, body)
    reader = _Reader(f, stored_state == "refuse")
    if not counting:
        cap = token_count(body.get("max_output_tokens"), "max_output_tokens")
        if cap is not None:
            f.models[0].caps.append(("max_output_tokens", cap))
    for key in ("input", "instructions"):
        value = body.get(key)
        if value is None or type(value) is str:
            continue
        if type(value) is not list:
            raise malformed(key, f"{key} must be a string or a list of items.")
        for i, item in enumerate(value):
            if type(item) is dict:
                if _plain_message(item):
                    continue
            elif item is _MESSAGE:
                continue  # a message with string content, never built
            elif type(item) is SettledItems:
                if item.marker is _MESSAGE:
                    continue  # a message of text parts, never built
                item = item.marker  # a call item whose content holds only text parts
                if _TOOL_NEED in f.recorded:
                    continue
            elif type(item) is Settled and _TOOL_NEED in f.recorded:
                continue  # a tool call or output, and tool use is already needed
            reader.item(item, f"{key}[{i}]")
    choice = body.get("tool_choice")
    reader.tools(body.get("tools"), "tools", off=choice == "none", body_level=True)
    reader.tool_choice(choice)
    _text(f, body.get("text"), "text")
    thinking_off = _reasoning(f, body.get("reasoning"), "reasoning")
    _include(f, body.get("include"), thinking_off)
    if body.get("top_logprobs") is not None:
        f.need(LOGPROBS, "top_logprobs", "top_logprobs", output=True)
    if need_bool(body.get("stream"), "stream"):
        f.need(STREAMING, "stream", "streaming", output=True)
    if not _RARE.isdisjoint(body):  # each reading below is a no-op for an absent field
        _rare(f, reader, body)
    return f


#: Top-level fields few bodies carry, read by :func:`_rare` in this order.
_RARE = frozenset({"background", "prompt", "prompt_cache_options", "multi_agent",
                   "previous_response_id", "conversation", "response_format", "modalities",
                   "audio", "grounding"})


def _rare(f: Features, reader: _Reader, body: dict[str, Any]) -> None:
    need_bool(body.get("background"), "background")
    _prompt(reader, body.get("prompt"))
    _cache_options(f, body.get("prompt_cache_options"))
    _multi_agent(f, body.get("multi_agent"))
    for key in ("previous_response_id", "conversation"):
        if body.get(key) is not None and reader.refuse_stored:
            f.stored.append((key, f"{key} (stored conversation state)"))
    openai._response_format(f, body.get("response_format"))
    openai._output_modalities(f, body)
    openai.grounding(f, body)


_MESSAGE_KEYS = frozenset({"type", "role", "content", "id", "status", "phase"}).issuperset
_TEXT_PART_KEYS = frozenset({"type", "text", "annotations", "logprobs"}).issuperset
_TEXT_PARTS = frozenset({"input_text", "output_text"})


def _plain_message(item: dict[str, Any]) -> bool:
    """The common case, decided without building a path: a message (typed or not) whose
    content is a string or text parts, with only known keys (so no look-alike key either).
    It needs nothing; anything else goes through the full reading."""
    if not _MESSAGE_KEYS(item) or type(item.get("role")) is not str:
        return False
    kind = item.get("type")
    if kind is not None and kind != "message":
        return False
    content = item.get("content")
    if type(content) is str:
        return True
    if type(content) is not list:
        return False
    for part in content:
        if part is _TEXT_PART:
            continue
        if type(part) is not dict or not _TEXT_PART_KEYS(part):
            return False
        kind = part.get("type")
        if type(kind) is not str or kind not in _TEXT_PARTS:
            return False
    return True


class _Reader:
    """Items, parts and tools, at any depth."""

    __slots__ = ("f", "refuse_stored")

    def __init__(self, f: Features, refuse_stored: bool) -> None:
        self.f = f
        self.refuse_stored = refuse_stored

    def item(self, item: Any, path: str) -> None:
        if type(item) is Settled:  # a tool call or its plain output: its kind is all it needs
            self.f.need(TOOL_USE, path, f"the {item.kind} item (tool traffic in the history)")
            return
        ITEM.check(need_dict(item, path, "an input item object"), path)
        kind = item.get("type")
        if kind is None:
            # Two shapes may omit their type: a message (it has a role) and an item reference.
            if "role" in item:
                kind = "message"
            elif "id" in item:
                kind = "item_reference"
            else:
                self.f.unknown.append((path, "(an item without a type, role or id)"))
                return
        elif type(kind) is not str:
            raise malformed(f"{path}.type", "an item type must be a string.")
        rule = ITEMS.get(kind)
        if rule is None:
            self.f.unknown.append((path, kind))
            return
        f = self.f
        if rule.tool:
            what = f"the {kind} item" + (" (OpenAI-run tool traffic)" if rule.openai else
                                         " (tool traffic in the history)")
            f.need(TOOL_USE, path, what, VENDOR if rule.openai else None, tool=rule.tool_type)
        elif rule.openai:
            f.need(VENDOR_ONLY, path, f"the {kind} item (context only OpenAI can read)", VENDOR)
        if rule.parts is not None:
            self.content(item.get(rule.parts), f"{path}.{rule.parts}")
        if rule.special is not None:
            getattr(self, "_" + rule.special)(item, path)

    def content(self, content: Any, path: str) -> None:
        if content is None or type(content) is str:
            return
        for i, part in enumerate(need_list(content, path)):
            self.part(part, f"{path}[{i}]")

    def part(self, part: Any, path: str) -> None:
        if part is _TEXT_PART:
            return  # a text part, never built
        PART.check(need_dict(part, path, "a content part object"), path)
        kind = part.get("type")
        if kind is None:
            self.f.unknown.append((path, "(a part without a type)"))
            return
        if type(kind) is not str:
            raise malformed(f"{path}.type", "a content part type must be a string.")
        if kind not in PARTS:
            self.f.unknown.append((path, kind))
            return
        rule = PARTS[kind]
        f = self.f
        if rule == "media":
            for tag in _image_tags(part.get("image_url"), f"{path}.image_url"):
                f.need(tag, path, f"the {kind} part")
        elif rule == "file":
            for tag in _file_tags(part):
                f.need(tag, path, f"the {kind} part")
        elif rule == "openai":
            f.need(VENDOR_ONLY, path, f"the {kind} part (context only OpenAI can read)", VENDOR)
        elif rule is not None:
            f.need(rule, path, f"the {kind} part")
        if part.get("prompt_cache_breakpoint") is not None:
            f.need(CACHE_CONTROL, path, f"a cache breakpoint on a {kind} part")

    def tools(self, tools: Any, path: str, *, off: bool = False,
              body_level: bool = False) -> None:
        """A tools array; ``off`` (tool_choice none) makes the body's tools request nothing."""
        tools = [] if tools is None else need_list(tools, path)
        if off:
            for i, tool in enumerate(tools):  # still read strictly, never needed
                if tool is not _TOOL:
                    self._tool_kind(tool, f"{path}[{i}]")
            return
        if tools:
            self.f.need(TOOL_USE, path, "tool definitions" if body_level else
                        f"tool definitions at {path}")
        accepts = TOOL.accepts
        for i, tool in enumerate(tools):
            if tool is _TOOL:
                continue  # a function tool with plain keys, never built
            if type(tool) is dict and accepts(tool):
                kind = tool.get("type", "function")
                if type(kind) is str and kind in _INERT_TOOLS:
                    continue  # the common case (a function tool), settled without a path
            self.tool(tool, f"{path}[{i}]")

    def _tool_kind(self, tool: Any, path: str) -> str | None:
        TOOL.check(need_dict(tool, path, "a tool object"), path)
        kind = tool.get("type", "function")
        if type(kind) is not str:
            raise malformed(f"{path}.type", "a tool type must be a string.")
        if kind not in TOOLS:
            self.f.unknown.append((path, kind))
            return None
        return kind

    def tool(self, tool: Any, path: str) -> None:
        kind = self._tool_kind(tool, path)
        if kind is None:
            return
        runner = TOOLS[kind]
        f = self.f
        if runner is not None:
            f.need(TOOL_USE, path, f"the {kind} tool (OpenAI-hosted or OpenAI-defined)",
                   VENDOR, tool=runner)
        if kind == "namespace":
            self.tools(tool.get("tools"), f"{path}.tools")
        elif kind == "image_generation":
            model = tool.get("model")
            if model is not None:
                mpath = f"{path}.model"
                f.models.append(ModelRef(mpath, need_str(model, mpath), only=(IMAGE_GEN,)))
            openai.svg_model(f, tool.get("svg"), f"{path}.svg")

    def tool_choice(self, choice: Any) -> None:
        """Record what ``tool_choice`` needs (``"none"`` switches the tools off)."""
        f = self.f
        if choice is None:
            return
        if type(choice) is str:
            if choice not in TOOL_CHOICE_STRINGS:
                f.unknown.append(("tool_choice", choice))
            elif choice == "required":
                f.need(TOOL_USE, "tool_choice", "tool_choice required")
            return
        CHOICE.check(need_dict(choice, "tool_choice", "a string or an object"), "tool_choice")
        kind = need_str(choice.get("type"), "tool_choice.type")
        hosted = TOOL_CHOICE_TYPES.get(kind)
        if hosted is None:
            f.unknown.append(("tool_choice", kind))
        elif hosted:
            f.need(TOOL_USE, "tool_choice", f"a forced {kind} tool (run by OpenAI)", VENDOR,
                   tool=kind)
        else:
            f.need(TOOL_USE, "tool_choice", f"a forced tool_choice {kind}")

    # -- items that need more than their row -------------------------------------------------

    def _message(self, item: dict[str, Any], path: str) -> None:
        role = item.get("role")
        if role is not None:
            need_str(role, f"{path}.role")

    def _stored(self, item: dict[str, Any], path: str) -> None:
        if self.refuse_stored:
            self.f.stored.append((path, "an item_reference (stored conversation state)"))

    def _tools(self, item: dict[str, Any], path: str) -> None:
        self.tools(item.get("tools"), f"{path}.tools")

    def _configuration(self, item: dict[str, Any], path: str) -> None:
        reasoning = item.get("reasoning")
        if reasoning is not None:
            REASONING.check(need_dict(reasoning, f"{path}.reasoning"), f"{path}.reasoning")
            effort = reasoning.get("effort")
            if effort is not None and need_str(effort, f"{path}.reasoning.effort") != "none":
                self.f.need(THINKING, path, f"reasoning effort {effort} (configuration update)",
                            output=True)
        text = item.get("text")
        if text is not None and _text_tag(text, f"{path}.text") is not None:
            self.f.need(JSON_SCHEMA, path, "structured output (configuration update)",
                        output=True)

    def _interpreter(self, item: dict[str, Any], path: str) -> None:
        outputs = item.get("outputs")
        if outputs is None:
            return
        for i, output in enumerate(need_list(outputs, f"{path}.outputs")):
            opath = f"{path}.outputs[{i}]"
            INTERPRETER_OUTPUT.check(need_dict(output, opath), opath)
            kind = need_str(output.get("type"), f"{opath}.type")
            if kind == "image":
                self.f.need(VISION, opath, "an image output of code_interpreter")
            elif kind != "logs":
                self.f.unknown.append((opath, kind))

    def _generated(self, item: dict[str, Any], path: str) -> None:
        if item.get("result") is not None:
            self.f.need(VISION, path, "a generated image in the history")

    def _screenshot(self, item: dict[str, Any], path: str) -> None:
        output = item.get("output")
        if output is None:
            return
        self.part(output, f"{path}.output")


def _image_tags(url: Any, path: str) -> list[str]:
    """``input_image``: vision, and what its ``data:`` URL or ``format`` names when that
    differs (the Chat Completions rules, decisions.md §11)."""
    tags = {VISION} | openai._url_tags(url, path)  # noqa: SLF001  (one rule set)
    return [tag for tag in (VISION, AUDIO, VIDEO) if tag in tags]


def _file_tags(part: dict[str, Any]) -> list[str]:
    """``input_file``: what each source needs (``file_data``, a URL-shaped ``file_id`` or a
    ``file_url`` by extension, ``format``); no source at all needs ``vision``."""
    tags = openai._source_tags(part) or {VISION}  # noqa: SLF001  (one rule set)
    return [tag for tag in (VISION, AUDIO, VIDEO) if tag in tags]


def _text_tag(text: Any, path: str) -> str | None:
    TEXT.check(need_dict(text, path), path)
    fmt = text.get("format")
    if fmt is None:
        return None
    fpath = f"{path}.format"
    FORMAT.check(need_dict(fmt, fpath), fpath)
    kind = need_str(fmt.get("type"), f"{fpath}.type")
    if kind not in FORMATS:
        return "unknown:" + kind
    return FORMATS[kind]


def _text(f: Features, text: Any, path: str) -> None:
    if text is None:
        return
    tag = _text_tag(text, path)
    if tag is not None and tag.startswith("unknown:"):
        f.unknown.append((f"{path}.format", tag[8:]))
    elif tag is not None:
        f.need(tag, path, "structured output (text.format json_schema)", output=True)


def _reasoning(f: Features, reasoning: Any, path: str) -> bool:
    """Record a thinking request; True when reasoning is switched off (D7)."""
    if reasoning is None:
        return False
    REASONING.check(need_dict(reasoning, path), path)
    effort = reasoning.get("effort")
    if effort is not None:
        effort = need_str(effort, f"{path}.effort")
    enabled = reasoning.get("enabled")
    need_bool(enabled, f"{path}.enabled")
    budget = token_count(reasoning.get("max_tokens"), f"{path}.max_tokens")
    for key in ("summary", "generate_summary"):
        value = reasoning.get(key)
        if value is not None:
            need_str(value, f"{path}.{key}")
    off = effort == "none" or enabled is False
    on = ((effort is not None and effort != "none") or enabled is True or budget is not None
          or reasoning.get("summary") is not None
          or reasoning.get("generate_summary") is not None)
    if on and not off:
        f.need(THINKING, path, f"reasoning{f' effort {effort}' if effort else ''}", output=True)
    return off


def _include(f: Features, include: Any, thinking_off: bool) -> None:
    if include is None:
        return
    for i, value in enumerate(need_list(include, "include")):
        path = f"include[{i}]"
        need_str(value, path)
        if value not in INCLUDES:
            f.unknown.append((path, f"include value {value}"))
            continue
        tag = INCLUDES[value]
        if tag == THINKING and thinking_off:
            continue
        if tag is not None:
            f.need(tag, path, f"include {value}", output=True)


def _prompt(reader: _Reader, prompt: Any) -> None:
    """A stored prompt (D2): only OpenAI can expand it; its variables are content."""
    if prompt is None:
        return
    f = reader.f
    PROMPT.check(need_dict(prompt, "prompt"), "prompt")
    f.need(VENDOR_ONLY, "prompt", "a stored prompt (only OpenAI can expand it)", VENDOR)
    variables = prompt.get("variables")
    if variables is None:
        return
    for name, value in need_dict(variables, "prompt.variables").items():
        path = f"prompt.variables.{name}"
        if type(value) is str:
            continue
        if type(value) is dict and value.get("type") in ("input_text", "input_image",
                                                          "input_file"):
            reader.part(value, path)
        else:
            f.unknown.append((path, "a prompt variable that is not text, an image or a file"))


def _cache_options(f: Features, options: Any) -> None:
    if options is None:
        return
    CACHE_OPTIONS.check(need_dict(options, "prompt_cache_options"), "prompt_cache_options")
    if need_bool(options.get("prewarm"), "prompt_cache_options.prewarm"):
        f.need(CACHE_CONTROL, "prompt_cache_options", "a prompt cache prewarm")


def _multi_agent(f: Features, multi: Any) -> None:
    if multi is None:
        return
    MULTI_AGENT.check(need_dict(multi, "multi_agent"), "multi_agent")
    if need_bool(multi.get("enabled"), "multi_agent.enabled"):
        f.need(TOOL_USE, "multi_agent", "multi-agent sub-agents (run by OpenAI)", VENDOR,
               tool="multi_agent")
