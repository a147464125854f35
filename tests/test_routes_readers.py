"""The Responses, tasks, generation and embeddings readers on what no SDK call sends (routes.md
§2–§4, D1–D14), the route table, and the route settings."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelguard import Guard
from modelguard.routing import FAMILIES, ROUTES, families, match_route

from .conftest import catalog_of, model_entry

ALL = {"vision", "audio", "video", "tool_use", "streaming", "thinking", "json_schema",
       "logprobs", "cache_control", "image_gen", "video_gen"}
CATALOG = catalog_of(model_entry("gpt", ALL, "openai"),
                     model_entry("plain", set(), "openai"),
                     model_entry("ds", ALL, "deepseek"),
                     model_entry("gem", ALL, "google"),
                     model_entry("img", {"image_gen"}, "openai"),
                     model_entry("txt-img", set(), "openai"))


async def verdict(body: Any, path: str = "/v1/responses", **options):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await Guard(options.pop("catalog", CATALOG), **options).check(
        "POST", path, {"content-type": "application/json"}, raw)


async def needs(body: dict, path: str = "/v1/responses", **options) -> set[str]:
    result = await verdict(body, path, **options)
    assert result.allowed, result.body
    return set(result.required)


async def refused(body: Any, path: str = "/v1/responses", **options) -> tuple[str, str | None]:
    result = await verdict(body, path, **options)
    assert not result.allowed and result.status == 400, result
    error = json.loads(result.body)["error"]
    return error["code"], error["param"]


def r(**fields: Any) -> dict[str, Any]:
    return {"model": "gpt", **fields}


# -- D1: a model is required ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/responses", "/v1/responses/input_tokens",
                                  "/v1/responses/compact", "/responses"])
@pytest.mark.parametrize("model", [None, "", 3, ["gpt"], {"id": "gpt"}])
async def test_model_required_on_every_responses_route(path: str, model: Any) -> None:
    body = {"input": "hi"} if model is None else {"model": model, "input": "hi"}
    assert await refused(body, path) == ("invalid_param", "model")


# -- items, parts and their nesting ---------------------------------------------------------------


@pytest.mark.parametrize(("item", "tags"), [
    ({"role": "system", "content": [{"type": "input_image", "file_id": "f"}]}, {"vision"}),
    ({"role": "user", "content": [{"type": "input_image",
                                   "image_url": "data:video/mp4;base64,AAAA"}]},
     {"video", "vision"}),
    ({"role": "user", "content": [{"type": "input_file", "file_data": "JVBERi0x"}]}, {"vision"}),
    ({"role": "user", "content": [{"type": "input_file", "file_url": "https://x/a.txt"}]},
     {"vision"}),
    ({"role": "user", "content": [{"type": "input_file",
                                   "file_data": "data:audio/wav;base64,AA"}]}, {"audio"}),
    ({"role": "user", "content": [{"type": "input_file",
                                   "file_data": "data:application/json;base64,e30="}]}, set()),
    ({"role": "user", "content": [{"type": "input_video", "video_url": "https://x/v"}]},
     {"video"}),
    ({"role": "assistant", "content": [{"type": "output_text", "text": "x", "annotations": []},
                                       {"type": "refusal", "refusal": "no"}]}, set()),
    ({"type": "custom_tool_call_output", "call_id": "c", "output": [
        {"type": "input_image", "image_url": "https://x/a.png"}]}, {"tool_use", "vision"}),
    ({"type": "code_interpreter_call", "id": "ci", "code": "plot()", "outputs": [
        {"type": "logs", "logs": "ok"}, {"type": "image", "url": "https://x/p.png"}]},
     {"tool_use", "vision"}),
    ({"type": "image_generation_call", "id": "ig", "result": "iVBOR", "status": "completed"},
     {"tool_use", "vision"}),
    ({"type": "image_generation_call", "id": "ig", "result": None}, {"tool_use"}),
    ({"type": "agent_message", "author": "a", "recipient": "b", "content": [
        {"type": "input_text", "text": "x"}, {"type": "encrypted_content",
                                              "encrypted_content": "gAAA"}]}, set()),
    ({"type": "reasoning", "id": "rs", "summary": [], "encrypted_content": "gAAA"}, set()),
    ({"type": "compaction_trigger", "id": "ct"}, set()),
    ({"id": "msg_1"}, set()),  # a type-less item reference
    ({"type": "configuration_update", "reasoning": {"effort": "none"},
      "text": {"format": {"type": "json_schema", "name": "a", "schema": {}}}}, {"json_schema"}),
    ({"type": "tool_search_output", "execution": "server", "tools": [
        {"type": "function", "name": "f"}]}, {"tool_use"}),
    *[({"type": kind, "id": "x"}, {"tool_use"}) for kind in (
        "local_shell_call", "shell_call_output", "apply_patch_call", "mcp_call",
        "mcp_list_tools", "program", "program_output", "multi_agent_call", "computer_call",
        "file_search_call", "tool_search_call", "mcp_approval_request")],
])
async def test_item_needs(item: dict, tags: set[str]) -> None:
    assert await needs(r(input=[item])) == tags


@pytest.mark.parametrize("item", [
    {"type": "mcp_call", "id": "x"}, {"type": "compaction", "encrypted_content": "g"},
    {"type": "agent_message", "content": []}, {"type": "shell_call", "action": {}},
    {"type": "computer_call_output", "output": {"type": "computer_screenshot", "file_id": "f"}},
])
async def test_openai_held_items_need_an_openai_model(item: dict) -> None:
    body = {"model": "ds", "input": [item]}
    code, param = await refused(body)
    assert (code, param) == ("unsupported_capability", "input[0]") or param.startswith("input[0]")


@pytest.mark.parametrize(("body", "path"), [
    (r(input=[{"type": "hologram"}]), "input[0]"),
    (r(input=[{"content": "no role, no id, no type"}]), "input[0]"),
    (r(input=[{"role": "user", "content": [{"type": "input_smell"}]}]), "input[0].content[0]"),
    (r(input=[{"role": "user", "content": [{"text": "no type"}]}]), "input[0].content[0]"),
    (r(tools=[{"type": "teleport"}]), "tools[0]"),
    (r(tools=[{"type": "namespace", "tools": [{"type": "teleport"}]}]), "tools[0].tools[0]"),
    (r(tool_choice="sometimes"), "tool_choice"),
    (r(tool_choice={"type": "teleport"}), "tool_choice"),
    (r(include=["everything.secret"]), "include[0]"),
    (r(text={"format": {"type": "yaml"}}), "text.format"),
    (r(prompt={"id": "pmpt_1", "variables": {"x": {"type": "input_audio"}}}),
     "prompt.variables.x"),
    (r(input=[{"type": "code_interpreter_call", "outputs": [{"type": "video"}]}]),
     "input[0].outputs[0]"),
])
async def test_unknown_content_refused_with_its_path(body: dict, path: str) -> None:
    assert await refused(body) == ("unsupported_content", path)
    assert (await verdict(body, allow_unknown_content=True)).allowed


@pytest.mark.parametrize(("body", "param"), [
    (r(input=3), "input"),
    (r(input=[{"role": "user", "content": 3}]), "input[0].content"),
    (r(input=[{"type": 3}]), "input[0].type"),
    (r(input=[{"role": "user", "content": [{"type": ["input_text"]}]}]),
     "input[0].content[0].type"),
    (r(include="reasoning.encrypted_content"), "include"),
    (r(include=[1]), "include[0]"),
    (r(stream="true"), "stream"),
    (r(background=1), "background"),
    (r(multi_agent={"enabled": "yes"}), "multi_agent.enabled"),
    (r(prompt_cache_options={"prewarm": "true"}), "prompt_cache_options.prewarm"),
    (r(tools=[{"type": 1}]), "tools[0].type"),
    (r(tools={"type": "function"}), "tools"),
    (r(reasoning="high"), "reasoning"),
    (r(text={"format": "json"}), "text.format"),
    (r(tool_choice={"type": None}), "tool_choice.type"),
    (r(prompt={"id": "p", "variables": []}), "prompt.variables"),
])
async def test_wrong_types_are_malformed(body: dict, param: str) -> None:
    assert await refused(body) == ("invalid_param", param)


@pytest.mark.parametrize("body", [
    {"model": "gpt", "MODEL": "plain", "input": "x"},
    {"model": "gpt", "input": "x", "ſtream": True},
    r(input=[{"role": "user", "content": [{"type": "input_text", "TYPE": "input_image"}]}]),
    r(tools=[{"type": "function", "Type": "web_search"}]),
    r(reasoning={"effort": "none", "Effort": "high"}),
    r(text={"format": {"type": "text", "Type": "json_schema"}}),
    r(prompt={"id": "p", "ID": "q"}),
])
async def test_look_alike_keys_refused(body: dict) -> None:
    code, _ = await refused(body)
    assert code == "invalid_param"


async def test_duplicate_keys_refused() -> None:
    code, _ = await refused(b'{"model": "plain", "model": "gpt", "input": "x"}')
    assert code == "invalid_param"


# -- tools, tool_choice, vendors, secondary models ------------------------------------------------


async def test_tool_choice_none_switches_the_tools_off_but_not_the_history() -> None:
    tools = [{"type": "web_search"}, {"type": "function", "name": "f"}]
    assert await needs({"model": "ds", "tools": tools, "tool_choice": "none"}) == set()
    history = [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}]
    assert await needs(r(tools=tools, tool_choice="none", input=history)) == {"tool_use"}


async def test_chat_shaped_function_tool_and_forced_choices() -> None:
    assert await needs(r(tools=[{"type": "function", "function": {"name": "f"}}],
                         tool_choice={"type": "function", "name": "f"})) == {"tool_use"}
    assert await refused({"model": "ds", "tool_choice": {"type": "mcp", "server_label": "x"}}) \
        == ("unsupported_capability", "tool_choice")
    assert await needs({"model": "ds", "tool_choice": {"type": "allowed_tools",
                                                       "mode": "auto", "tools": []}}) \
        == {"tool_use"}


@pytest.mark.parametrize("kind", [
    "file_search", "web_search", "web_search_2025_08_26", "web_search_preview",
    "web_search_preview_2025_03_11", "code_interpreter", "image_generation", "mcp",
    "computer_use_preview", "computer", "local_shell", "shell", "apply_patch", "tool_search",
    "programmatic_tool_calling"])
async def test_every_hosted_tool_needs_openai(kind: str) -> None:
    assert await refused({"model": "ds", "tools": [{"type": kind}]}) == (
        "unsupported_capability", "tools[0]")
    assert await needs(r(tools=[{"type": kind}])) == {"tool_use"}


async def test_tool_vendors_override_one_tool_type_only() -> None:
    vendors = {"web_search": {"openai", "deepseek"}}
    assert await needs({"model": "ds", "tools": [{"type": "web_search"}]},
                       tool_vendors=vendors) == {"tool_use"}
    assert await refused({"model": "ds", "tools": [{"type": "web_search"},
                                                   {"type": "file_search"}]},
                         tool_vendors=vendors) == ("unsupported_capability", "tools[1]")
    # the same mapping governs the other protocols' server tools
    anthropic = {"model": "ds", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}],
                 "tools": [{"type": "web_search_20250305", "name": "web_search"}]}
    assert not (await verdict(anthropic, "/v1/messages")).allowed
    assert (await verdict(anthropic, "/v1/messages", tool_vendors={
        "web_search": {"anthropic", "deepseek"}})).allowed
    gemini = {"contents": [{"parts": [{"text": "x"}]}], "tools": [{"googleSearch": {}}]}
    assert not (await verdict(gemini, "/v1beta/models/ds:generateContent")).allowed
    assert (await verdict(gemini, "/v1beta/models/ds:generateContent",
                          tool_vendors={"googleSearch": {"google", "deepseek"}})).allowed


def test_tool_vendors_validated() -> None:
    for bad in ({"web_search": set()}, {"web_search": [1]}, {"": {"openai"}}, ["web_search"]):
        with pytest.raises(ValueError):
            Guard(CATALOG, tool_vendors=bad)


async def test_image_generation_tool_model_is_checked() -> None:
    tool = {"type": "image_generation", "model": "img", "svg": {"model": "gpt"}}
    assert await needs(r(tools=[tool])) == {"tool_use"}
    assert await refused(r(tools=[dict(tool, model="nope")])) == ("unsupported_model",
                                                                   "tools[0].model")
    assert await refused(r(tools=[dict(tool, model="txt-img")])) == ("unsupported_capability",
                                                                      "tools[0].model")
    assert await refused(r(tools=[dict(tool, svg={"model": "nope"})])) == (
        "unsupported_model", "tools[0].svg.model")
    # the main model needs no image_gen for the tool
    assert await needs({"model": "ds", "tools": [tool]},
                       tool_vendors={"image_generation": {"deepseek"}}) == {"tool_use"}


async def test_moderation_model_ignored() -> None:
    assert await needs(r(input="x", moderation={"model": "omni-nope"})) == set()


# -- reasoning, include, text, caching, streaming --------------------------------------------------


@pytest.mark.parametrize(("fields", "tags"), [
    ({"reasoning": {"effort": "minimal"}}, {"thinking"}),
    ({"reasoning": {"effort": "none", "summary": "detailed"}}, set()),
    ({"reasoning": {"generate_summary": "concise"}}, {"thinking"}),
    ({"reasoning": {}}, set()),
    ({"reasoning": None}, set()),
    ({"reasoning": {"context": "all_turns", "mode": "pro"}}, set()),
    ({"reasoning": {"enabled": True}}, {"thinking"}),
    ({"reasoning": {"enabled": False, "summary": "auto"}}, set()),
    ({"reasoning": {"max_tokens": 2048}}, {"thinking"}),
    ({"reasoning": {"effort": "none"}, "include": ["reasoning.encrypted_content"]}, set()),
    ({"include": ["web_search_call.action.sources", "message.input_image.image_url"]}, set()),
    ({"top_logprobs": 0}, {"logprobs"}),
    ({"top_logprobs": None}, set()),
    ({"text": {"format": {"type": "json_schema", "name": "a", "schema": {}, "strict": False}}},
     {"json_schema"}),
    ({"text": {"verbosity": "low"}}, set()),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "a"}}},
     {"json_schema"}),
    ({"modalities": ["text", "image"]}, {"image_gen"}),
    ({"prompt_cache_options": {"mode": "explicit", "ttl": "12h"}}, set()),
    ({"prompt_cache_options": {"prewarm": True}}, {"cache_control"}),
    ({"stream": False, "background": True}, set()),
    ({"stream": True, "background": True}, {"streaming"}),
    ({"multi_agent": {"enabled": False}}, set()),
    ({"grounding": None}, set()),
])
async def test_body_level_readings(fields: dict, tags: set[str]) -> None:
    assert await needs(r(input="x", **fields)) == tags


async def test_counting_routes_drop_output_needs_and_caps() -> None:
    capped = catalog_of(model_entry("gpt", ALL - {"thinking", "streaming"}, "openai",
                                    max_output_tokens=10))
    body = r(input="x", reasoning={"effort": "high"}, stream=True, max_output_tokens=99,
             tools=[{"type": "function", "name": "f"}])
    for path in ("/v1/responses/input_tokens", "/v1/responses/compact"):
        assert await needs(body, path, catalog=capped) == {"tool_use"}
    assert not (await verdict(body, catalog=capped)).allowed


async def test_output_cap() -> None:
    capped = catalog_of(model_entry("gpt", ALL, "openai", max_output_tokens=100))
    assert await refused(r(input="x", max_output_tokens=101), catalog=capped) == (
        "max_tokens_exceeded", "max_output_tokens")
    assert (await verdict(r(input="x", max_output_tokens=100), catalog=capped)).allowed


# -- stored state and prompts (D2, D3) -----------------------------------------------------------


@pytest.mark.parametrize(("fields", "param"), [
    ({"previous_response_id": "resp_1"}, "previous_response_id"),
    ({"conversation": {"id": "conv_1"}}, "conversation"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
    ({"input": [{"id": "msg_1"}]}, "input[0]"),
])
async def test_stored_state_allowed_or_refused(fields: dict, param: str) -> None:
    assert await needs({"model": "plain", **fields}) == set()
    assert await refused({"model": "plain", **fields}, stored_state="refuse") == (
        "unsupported_content", param)


def test_settings_validated() -> None:
    with pytest.raises(ValueError):
        Guard(CATALOG, stored_state="maybe")
    with pytest.raises(ValueError):
        Guard(CATALOG, websockets="sometimes")
    with pytest.raises(ValueError):
        Guard(CATALOG, route_families={"telepathy": True})


async def test_stored_prompt_needs_openai_and_reads_variables() -> None:
    prompt = {"id": "pmpt_1", "variables": {"name": "x", "doc": {
        "type": "input_file", "file_id": "file_1"}}}
    assert await needs(r(prompt=prompt)) == {"vision"}
    assert await refused({"model": "ds", "prompt": prompt}) == ("unsupported_capability",
                                                                 "prompt")


# -- grounding (D14) ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/responses"])
async def test_grounding_needs_a_google_model(path: str) -> None:
    body = {"model": "gpt", "grounding": {}, "input": "x", "messages": [
        {"role": "user", "content": "x"}]}
    if path.endswith("responses"):
        body.pop("messages")
    else:
        body.pop("input")
    assert await refused(body, path) == ("unsupported_capability", "grounding")
    assert await needs(dict(body, model="gem"), path) == {"tool_use"}
    assert await refused(dict(body, grounding="yes"), path) == ("invalid_param", "grounding")


# -- tasks, generations, embeddings -----------------------------------------------------------


@pytest.mark.parametrize(("body", "tags"), [
    ({"model": "gpt", "prompt": "x"}, {"video_gen|image_gen"}),
    ({"model": "gpt", "source_image": "https://x/a.png"}, {"video_gen|image_gen", "vision"}),
    ({"model": "gpt", "params": {"ref": "data:audio/mp3;base64,AA"}},
     {"video_gen|image_gen", "audio"}),
    ({"model": "gpt", "stream": True, "out_task_id": "t", "callback_url": "https://x"},
     {"video_gen|image_gen"}),
])
async def test_tasks(body: dict, tags: set[str]) -> None:
    assert await needs(body, "/v1/tasks/submit") == tags


async def test_tasks_model_and_params_checked() -> None:
    assert await refused({"params": {"model": "img"}}, "/v1/tasks/submit") == (
        "invalid_param", "model")
    assert await refused({"model": "plain"}, "/v1/tasks/submit") == (
        "unsupported_capability", "model")
    assert await refused({"model": "img", "params": []}, "/v1/tasks/submit") == (
        "invalid_param", "params")


@pytest.mark.parametrize(("body", "tags"), [
    ({"model": "gpt", "prompt": "x", "stream": True}, {"image_gen", "streaming"}),
    ({"model": "gpt", "prompt": "x", "source_image": "data:image/png;base64,AA"},
     {"image_gen", "vision"}),
    ({"model": "gpt", "prompt": "data: not a data url"}, {"image_gen"}),
    ({"model": "gpt", "prompt": "x", "svg": {"model": "gpt", "reasoning": {"effort": "low"}}},
     {"image_gen"}),
])
async def test_image_generation_additions(body: dict, tags: set[str]) -> None:
    assert await needs(body, "/v1/images/generations") == tags


async def test_image_generation_svg_model_must_exist() -> None:
    assert await refused({"model": "img", "prompt": "x", "svg": {"model": "nope"}},
                         "/v1/images/generations") == ("unsupported_model", "svg.model")


@pytest.mark.parametrize("value", ["x", ["a", "b"], [1, 2], [[1, 2], [3]]])
async def test_embeddings_inputs(value: Any) -> None:
    assert await needs({"model": "plain", "input": value}, "/v1/embeddings",
                       embeddings=True) == set()


@pytest.mark.parametrize("value", [[{"image": "x"}], ["a", 1], [[1, "a"]], [[]], 3, [True]])
async def test_embeddings_other_inputs_are_unknown_content(value: Any) -> None:
    assert await refused({"model": "plain", "input": value}, "/v1/embeddings",
                         embeddings=True) == ("unsupported_content", "input")


async def test_embeddings_only_when_enabled() -> None:
    body = {"model": "unknown-embedder", "input": "x"}
    assert not (await verdict(body, "/v1/embeddings")).guarded
    assert await refused(body, "/v1/embeddings", embeddings=True) == (
        "unsupported_model", "model")
    assert await refused(body, "/embeddings", route_families={"embeddings": True}) == (
        "unsupported_model", "model")


# -- the route table ----------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "name"), [
    ("/v1/responses?beta=true", "/v1/responses"),
    ("/responses", "/v1/responses"),
    ("/Responses/Input_Tokens", "/v1/responses/input_tokens"),
    ("/v1/responses/compact/", "/v1/responses/compact"),
    ("/images/edits", "/v1/images/edits"),
    ("/v1/images/variations", "/v1/images/variations"),
    ("/videos", "/v1/videos"),
    ("/tasks/submit", "/v1/tasks/submit"),
    ("/v1beta/openai/chat/completions", "/v1beta/openai/chat/completions"),
    ("/v1beta/models/g:countTokens", "/{version}/{model}:countTokens"),
])
def test_route_table(path: str, name: str) -> None:
    route = match_route(path)
    assert route is not None and route.name == name and route.protocol in (
        "openai", "gemini")


@pytest.mark.parametrize("path", [
    "/v1/responses/resp_1", "/v1/responses/resp_1/cancel", "/v1/responses/resp_1/input_items",
    "/v1/conversations", "/v1/conversations/c/items", "/v1/tasks/query", "/v1/tasks/cancel/t",
    "/v1/videos/video_1", "/v1/images", "/v1/embeddings",
])
def test_routes_without_a_model_pass(path: str) -> None:
    assert match_route(path) is None


def test_every_row_is_reachable_and_families_switch() -> None:
    everything = families(embeddings=True)
    for row in ROUTES:
        path = row.pattern.replace("{version}", "v1beta").replace("{model}", "models/m")
        route = match_route(path, enabled=everything)
        assert route is not None and route.name == row.pattern
        assert match_route(path, enabled=everything - {row.family}) is None
    assert set(FAMILIES) >= {"messages", "chat", "gemini", "responses", "images", "videos",
                             "tasks", "embeddings"}
    assert "embeddings" not in families() and "responses" in families()


async def test_disabled_family_passes_untouched() -> None:
    result = await verdict({"model": "nope"}, route_families={"responses": False})
    assert result.allowed and not result.guarded
    assert (await verdict({"model": "nope"}, "/v1/images/generations",
                          route_families={"responses": False})).status == 400


#: routes.md §2.2, written out independently of the reader: item type → (tags, needs openai).
SPEC_ITEMS: dict[str, tuple[set[str], bool]] = {
    "message": (set(), False), "function_call": ({"tool_use"}, False),
    "function_call_output": ({"tool_use"}, False), "custom_tool_call": ({"tool_use"}, False),
    "custom_tool_call_output": ({"tool_use"}, False), "reasoning": (set(), False),
    "compaction": (set(), True), "compaction_trigger": (set(), False),
    "item_reference": (set(), False), "configuration_update": (set(), False),
    "additional_tools": ({"tool_use"}, False), "agent_message": (set(), True),
    **{kind: ({"tool_use"}, True) for kind in (
        "tool_search_call", "tool_search_output", "web_search_call", "file_search_call",
        "code_interpreter_call", "image_generation_call", "computer_call",
        "computer_call_output", "local_shell_call", "local_shell_call_output", "shell_call",
        "shell_call_output", "apply_patch_call", "apply_patch_call_output", "mcp_list_tools",
        "mcp_approval_request", "mcp_approval_response", "mcp_call", "program",
        "program_output", "multi_agent_call", "multi_agent_call_output")},
}


def test_spec_item_table_is_the_readers() -> None:
    from modelguard.protocols import responses
    assert set(SPEC_ITEMS) == set(responses.ITEMS)


@pytest.mark.parametrize("kind", sorted(SPEC_ITEMS))
async def test_every_item_type_as_the_spec_says(kind: str) -> None:
    tags, openai_only = SPEC_ITEMS[kind]
    item = {"type": kind, "role": "user", "content": "x"} if kind == "message" else \
        {"type": kind, "id": "x"}
    assert await needs(r(input=[item])) == tags
    other = await verdict({"model": "ds", "input": [item]})
    assert other.allowed is not openai_only
    if openai_only:
        error = json.loads(other.body)["error"]
        assert (error["code"], error["param"]) == ("unsupported_capability", "input[0]")
        assert "deepseek" in error["message"] and "openai" in error["message"]
    if tags:
        missing = await refused(r(input=[item]), catalog=catalog_of(
            model_entry("gpt", ALL - tags, "openai")))
        assert missing == ("unsupported_capability", "input[0]")
