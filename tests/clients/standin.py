"""A loopback stand-in gateway for the coding-agent CLIs.

It serves ``GET /v1/models`` (and ``/models``) from a catalog payload, answers the four wire
shapes the agents speak, streaming included (Anthropic Messages SSE, Gemini
``streamGenerateContent`` SSE, OpenAI Responses SSE, OpenAI Chat SSE), and records every request
exactly as it arrived.

It can answer with a tool call: when the user text holds ``MGREAD <path>`` and the conversation
holds no tool result yet, it asks the agent to read that file with the agent's own tool (found in
the request's tool list by name, its path argument by the tool's schema). Once a tool result is
in the history it answers with text naming how many tool results it saw, so a test can tell that
the agent sent the file back.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.upstream import RecordedRequest

__all__ = ["AgentStandIn", "ANSWER", "read_request", "tool_results"]

#: The text every final answer starts with (the tests look for it in the CLI's output).
ANSWER = "STANDIN-ANSWER"
#: Tool names the agents give their file-reading tool, best first.
READ_TOOLS = ("Read", "read_file")
#: Shell tools (name, argument) used to read a text file when there is no read tool.
SHELL_TOOLS = (("exec_command", "cmd"), ("shell_command", "command"))
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")
#: Argument names those tools take for the path, best first.
PATH_ARGS = ("file_path", "absolute_path", "path")
READ_MARK = re.compile(r"MGREAD (\S+)")
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


# -- reading what the agent sent ----------------------------------------------------------------


def _texts(node: Any) -> Iterator[str]:
    """Every string value in ``node`` (depth-first, document order)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _texts(value)
    elif isinstance(node, list):
        for value in node:
            yield from _texts(value)


def _turns(doc: dict[str, Any]) -> list[Any]:
    for key in ("messages", "contents", "input"):
        value = doc.get(key)
        if isinstance(value, list):
            return value
    return []


_RESULT_TYPES = {"tool_result", "function_call_output", "custom_tool_call_output"}


def tool_results(doc: dict[str, Any]) -> int:
    """How many tool results the conversation in ``doc`` holds (any of the four shapes)."""
    count = 0
    for turn in _turns(doc):
        if not isinstance(turn, dict):
            continue
        if turn.get("role") == "tool" or turn.get("type") in _RESULT_TYPES:
            count += 1
        for part in turn.get("content") or turn.get("parts") or []:
            if isinstance(part, dict) and (part.get("type") == "tool_result"
                                           or "functionResponse" in part):
                count += 1
    return count


def read_request(doc: dict[str, Any]) -> str | None:
    """The path after ``MGREAD`` in the conversation, if any."""
    for text in _texts(_turns(doc)):
        match = READ_MARK.search(text)
        if match:
            return match.group(1)
    return None


def _tool_specs(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, JSON schema of the arguments) for every function tool in any of the four shapes."""
    for tool in doc.get("tools") or []:
        if not isinstance(tool, dict):
            continue
        for decl in tool.get("functionDeclarations") or tool.get("function_declarations") or []:
            schema = decl.get("parametersJsonSchema") or decl.get("parameters") or {}
            yield decl.get("name", ""), schema
        fn = tool.get("function") if isinstance(tool.get("function"), dict) else tool
        if "name" in fn:
            yield fn["name"], fn.get("input_schema") or fn.get("parameters") or {}


def read_call(doc: dict[str, Any], path: str) -> tuple[str, dict[str, Any]] | None:
    """The agent's own tool call that reads ``path``: its read tool, an image viewer for
    pictures when it has one, or its shell (``cat``) when it has no read tool (Codex)."""
    specs = dict(_tool_specs(doc))
    names = list(READ_TOOLS)
    if path.lower().endswith(IMAGE_SUFFIXES):
        names.insert(0, "view_image")
    for name in names:
        if name in specs:
            props = (specs[name] or {}).get("properties") or {}
            arg = next((a for a in PATH_ARGS if a in props), PATH_ARGS[0])
            return name, {arg: path}
    for name, arg in SHELL_TOOLS:
        if name in specs:
            return name, {arg: f"cat {path}"}
    return None


# -- answers per wire shape ---------------------------------------------------------------------


def _sse(events: list[tuple[str | None, Any]], crlf: bool = False) -> list[bytes]:
    end = "\r\n\r\n" if crlf else "\n\n"
    out = []
    for event, data in events:
        line = f"event: {event}\n" if event else ""
        payload = data if isinstance(data, str) else json.dumps(data)
        out.append(f"{line}data: {payload}{end}".encode())
    return out


def anthropic_events(model: str, text: str | None, call: tuple[str, dict] | None) -> list[bytes]:
    usage = {"input_tokens": 10, "output_tokens": 0, "cache_creation_input_tokens": 0,
             "cache_read_input_tokens": 0}
    start = {"id": "msg_standin", "type": "message", "role": "assistant", "model": model,
             "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage}
    events: list[tuple[str | None, Any]] = [("message_start", {"type": "message_start",
                                                               "message": start})]
    if call is not None:
        block = {"type": "tool_use", "id": "toolu_standin1", "name": call[0], "input": {}}
        delta = {"type": "input_json_delta", "partial_json": json.dumps(call[1])}
        stop = "tool_use"
    else:
        block = {"type": "text", "text": ""}
        delta = {"type": "text_delta", "text": text}
        stop = "end_turn"
    events += [
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": block}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta",
                           "delta": {"stop_reason": stop, "stop_sequence": None},
                           "usage": {"output_tokens": 5}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    return _sse(events)


def anthropic_json(model: str, text: str | None, call: tuple[str, dict] | None) -> dict[str, Any]:
    content = ([{"type": "tool_use", "id": "toolu_standin1", "name": call[0], "input": call[1]}]
               if call else [{"type": "text", "text": text}])
    return {"id": "msg_standin", "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": "tool_use" if call else "end_turn",
            "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 5}}


def gemini_chunk(model: str, text: str | None, call: tuple[str, dict] | None) -> dict[str, Any]:
    part = ({"functionCall": {"name": call[0], "args": call[1]}} if call else {"text": text})
    return {"candidates": [{"content": {"role": "model", "parts": [part]},
                            "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5,
                              "totalTokenCount": 15},
            "modelVersion": model, "responseId": "standin"}


def chat_events(model: str, text: str | None, call: tuple[str, dict] | None) -> list[bytes]:
    base = {"id": "chatcmpl-standin", "object": "chat.completion.chunk",
            "created": 1_700_000_000, "model": model}
    if call:
        delta = {"role": "assistant", "content": None, "tool_calls": [{
            "index": 0, "id": "call_standin1", "type": "function",
            "function": {"name": call[0], "arguments": json.dumps(call[1])}}]}
        finish = "tool_calls"
    else:
        delta = {"role": "assistant", "content": text}
        finish = "stop"
    chunks = [
        {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]},
        {**base, "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 5,
                                          "total_tokens": 15}},
    ]
    return _sse([(None, c) for c in chunks]) + _sse([(None, "[DONE]")])


def chat_json(model: str, text: str | None, call: tuple[str, dict] | None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if call:
        message = {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_standin1", "type": "function",
            "function": {"name": call[0], "arguments": json.dumps(call[1])}}]}
    return {"id": "chatcmpl-standin", "object": "chat.completion", "created": 1_700_000_000,
            "model": model, "choices": [{"index": 0, "message": message,
                                         "finish_reason": "tool_calls" if call else "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}


def responses_events(model: str, text: str | None, call: tuple[str, dict] | None) -> list[bytes]:
    resp = {"id": "resp_standin", "object": "response", "created_at": 1_700_000_000,
            "status": "in_progress", "model": model, "output": []}
    if call:
        item = {"type": "function_call", "id": "fc_standin1", "call_id": "call_standin1",
                "name": call[0], "arguments": json.dumps(call[1]), "status": "completed"}
    else:
        item = {"type": "message", "id": "msg_standin1", "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}]}
    events: list[tuple[str | None, Any]] = [
        ("response.created", {"type": "response.created", "sequence_number": 0,
                              "response": resp}),
        ("response.output_item.added", {"type": "response.output_item.added",
                                        "sequence_number": 1, "output_index": 0,
                                        "item": {**item, "status": "in_progress"}}),
    ]
    if not call:
        events.append(("response.output_text.delta", {
            "type": "response.output_text.delta", "sequence_number": 2,
            "item_id": "msg_standin1", "output_index": 0, "content_index": 0, "delta": text}))
    done = {**resp, "status": "completed", "output": [item],
            "usage": {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 0},
                      "total_tokens": 15}}
    events += [
        ("response.output_item.done", {"type": "response.output_item.done",
                                       "sequence_number": 3, "output_index": 0, "item": item}),
        ("response.completed", {"type": "response.completed", "sequence_number": 4,
                                "response": done}),
    ]
    return _sse(events)


# -- the app ------------------------------------------------------------------------------------


@dataclass
class AgentStandIn:
    """The stand-in gateway. ``models`` is the ``GET /v1/models`` payload it serves."""

    models: dict[str, Any]
    #: Answer text; the number of tool results seen is appended.
    answer: str = ANSWER
    #: A hook that may answer a request first (return a Response) or defer (None).
    handler: Callable[[RecordedRequest], Response | None] | None = None
    #: Seconds a stream stays open after its last event (real gateways close a little later
    #: than the final event; clients that stop reading at the final event then hang up first).
    linger: float = 0.0
    _items: list[RecordedRequest] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self._endpoint, methods=ALL_METHODS)])

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._items)

    def posts(self) -> list[RecordedRequest]:
        """The model requests (every POST), in arrival order."""
        return [r for r in self.requests if r.method == "POST"]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    async def _endpoint(self, request: Request) -> Response:
        scope = request.scope
        recorded = RecordedRequest(
            method=request.method, path=scope["path"], raw_path=scope.get("raw_path"),
            root_path=scope.get("root_path", ""),
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=[(k.decode("latin-1").lower(), v.decode("latin-1"))
                     for k, v in scope.get("headers", [])],
            body=await request.body())
        with self._lock:
            self._items.append(recorded)
        if self.handler is not None:
            early = self.handler(recorded)
            if early is not None:
                return early
        return self.respond(recorded)

    def respond(self, req: RecordedRequest) -> Response:
        path = req.path.rstrip("/")
        if req.method in ("GET", "HEAD") and path.endswith("/models"):
            return JSONResponse(self.models)
        if req.method != "POST":
            return JSONResponse({"error": {"message": f"stand-in: no route {req.path}"}}, 404)
        try:
            doc = req.json()
        except ValueError:
            return JSONResponse({"error": {"message": "stand-in: body is not JSON"}}, 400)
        if not isinstance(doc, dict):
            doc = {}
        model = str(doc.get("model", ""))
        stream = doc.get("stream") is True
        seen = tool_results(doc)
        target = read_request(doc)
        call = read_call(doc, target) if target and not seen else None
        text = f"{self.answer} tools={seen}"
        if path.endswith("/count_tokens"):
            return JSONResponse({"input_tokens": 10})
        if path.endswith("/messages"):
            if stream:
                return self._stream(anthropic_events(model, text, call))
            return JSONResponse(anthropic_json(model, text, call))
        if path.endswith("/chat/completions"):
            if stream:
                return self._stream(chat_events(model, text, call))
            return JSONResponse(chat_json(model, text, call))
        if path.endswith("/responses"):
            return self._stream(responses_events(model, text, call))
        if ":" in path:
            name, method = path.rsplit(":", 1)
            model = name.rsplit("/", 1)[-1]
            if method == "countTokens":
                return JSONResponse({"totalTokens": 10})
            chunk = gemini_chunk(model, text, call)
            if method == "streamGenerateContent":
                return self._stream(_sse([(None, chunk)], crlf=True))
            return JSONResponse(chunk)
        return JSONResponse({"error": {"message": f"stand-in: no route {req.path}"}}, 404)

    def _stream(self, chunks: list[bytes]) -> StreamingResponse:
        return _stream(chunks, self.linger)


def _stream(chunks: list[bytes], linger: float = 0.0) -> StreamingResponse:
    async def gen() -> Any:
        for chunk in chunks:
            yield chunk
        if linger:
            await asyncio.sleep(linger)

    return StreamingResponse(gen(), media_type="text/event-stream",
                             headers={"cache-control": "no-cache"})
