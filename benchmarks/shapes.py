"""Request bodies for the benchmarks: the shapes gateways see, for each protocol."""

from __future__ import annotations

import base64
import json
import random
from dataclasses import dataclass
from pathlib import Path

#: Request bodies captured from the coding-agent CLIs (tests/fixtures/agents, JSON records).
AGENTS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "agents"
#: The captures benchmarked, one name each: (file stem, shape name).
AGENT_CAPTURES = (
    ("claude-first-turn-0", "first-turn"), ("claude-read-file-1", "read-file"),
    ("gemini-first-turn-0", "first-turn"), ("gemini-read-file-1", "read-file"),
    ("qwen-first-turn-0", "first-turn"), ("qwen-read-file-1", "read-file"),
    ("codex-first-turn-0", "first-turn"), ("codex-read-file-1", "read-file"),
)
_AGENT_NAMES = {"claude": "claude-code", "gemini": "gemini-cli", "qwen": "qwen-code",
                "codex": "codex"}
#: The model entries the captured agents ask for, with every capability, so that their bodies
#: are checked all the way to an allowed verdict.
_AGENT_MODELS = {"claude-sonnet-4-6": "anthropic", "gemini-3-1-pro": "google",
                 "gemini-2-5-pro": "google", "qwen3-coder-plus": "alibaba",
                 "qwen3-vl-plus": "alibaba", "gpt-5-4": "openai", "gpt-5.5": "openai"}
_ALL_TAGS = ["text", "vision", "audio", "video", "tool_use", "streaming", "cache_control",
             "thinking", "json_schema", "logprobs"]


@dataclass(frozen=True)
class Shape:
    name: str
    protocol: str
    target: str
    body: bytes
    allowed: bool
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        return f"{self.protocol}/{self.name}"


_rng = random.Random(7)
_WORDS = (
    "the", "model", "reads", "every", "message", "and", "answers", "with", "care", "while",
    "the", "gateway", "checks", "capabilities", "before", "anything", "reaches", "the",
    "upstream", "provider",
)


def _text(n_words: int) -> str:
    return " ".join(_rng.choice(_WORDS) for _ in range(n_words))


def _b64(n_bytes: int) -> str:
    return base64.b64encode(_rng.randbytes(n_bytes)).decode()


def _schema(i: int) -> dict:
    return {"type": "object", "properties": {
        "query": {"type": "string", "description": _text(16)},
        "limit": {"type": "integer", "minimum": 1, "maximum": 100},
        "filters": {"type": "array", "items": {"type": "string"}},
        f"option_{i}": {"type": "boolean"},
    }, "required": ["query"]}


# -- Anthropic ------------------------------------------------------------------------------------


def _anthropic(model: str, messages: list, **extra) -> bytes:
    return json.dumps({"model": model, "max_tokens": 4096, "messages": messages, **extra}).encode()


def _anthropic_agent(model: str = "claude-sonnet-4-6") -> bytes:
    tools = [{"name": f"tool_{i}", "description": _text(25), "input_schema": _schema(i)}
             for i in range(12)]
    messages = []
    for i in range(10):
        messages.append({"role": "user", "content": [{"type": "text", "text": _text(40)}]})
        messages.append({"role": "assistant", "content": [
            {"type": "text", "text": _text(30)},
            {"type": "tool_use", "id": f"toolu_{i:04d}", "name": f"tool_{i}",
             "input": {"query": _text(8), "limit": 10}},
        ]})
    messages[-1] = {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_0009", "content": _text(40)}]}
    return _anthropic(model, messages, tools=tools, system=_text(60), stream=True)


def _anthropic_history(model: str = "claude-sonnet-4-6") -> bytes:
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": _text(160)}
                for i in range(160)]
    return _anthropic(model, messages)


def _anthropic_image(model: str = "claude-sonnet-4-6", size: int = 1_500_000) -> bytes:
    return _anthropic(model, [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": _b64(size)}},
        {"type": "text", "text": "What is in this picture?"}]}])


# -- OpenAI ---------------------------------------------------------------------------------------


def _openai(model: str, messages: list, **extra) -> bytes:
    return json.dumps({"model": model, "messages": messages, **extra}).encode()


def _openai_agent(model: str = "gpt-5-4") -> bytes:
    tools = [{"type": "function", "function": {"name": f"tool_{i}", "description": _text(30),
                                               "parameters": _schema(i)}} for i in range(12)]
    messages = [{"role": "system", "content": _text(140)}]
    for i in range(9):
        messages.append({"role": "user", "content": _text(40)})
        messages.append({"role": "assistant", "content": _text(20), "tool_calls": [
            {"id": f"call_{i}", "type": "function",
             "function": {"name": f"tool_{i}", "arguments": json.dumps({"query": _text(8)})}}]})
    messages.append({"role": "tool", "tool_call_id": "call_8", "content": _text(40)})
    return _openai(model, messages, tools=tools, tool_choice="auto", stream=True)


def _openai_history(model: str = "gpt-5-4") -> bytes:
    return _openai(model, [{"role": "user" if i % 2 == 0 else "assistant", "content": _text(160)}
                           for i in range(160)])


def _openai_image(model: str = "gpt-5-4", size: int = 1_500_000) -> bytes:
    url = "data:image/png;base64," + _b64(size)
    return _openai(model, [{"role": "user", "content": [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": url}}]}])


# -- Gemini ---------------------------------------------------------------------------------------


def _gemini(contents: list, **extra) -> bytes:
    return json.dumps({"contents": contents, **extra}).encode()


def _gemini_agent() -> bytes:
    tools = [{"functionDeclarations": [{"name": f"tool_{i}", "description": _text(30),
                                        "parameters": _schema(i)} for i in range(12)]}]
    contents = []
    for i in range(10):
        contents.append({"role": "user", "parts": [{"text": _text(40)}]})
        contents.append({"role": "model", "parts": [
            {"text": _text(30)},
            {"functionCall": {"name": f"tool_{i}", "args": {"query": _text(8)}}}]})
    contents[-1] = {"role": "user", "parts": [
        {"functionResponse": {"name": "tool_9", "response": {"result": _text(40)}}}]}
    return _gemini(contents, tools=tools, systemInstruction={"parts": [{"text": _text(90)}]},
                   generationConfig={"maxOutputTokens": 4096, "temperature": 0.2})


def _gemini_history() -> bytes:
    return _gemini([{"role": "user" if i % 2 == 0 else "model", "parts": [{"text": _text(160)}]}
                    for i in range(160)])


def _gemini_media(mime: str, size: int) -> bytes:
    return _gemini([{"role": "user", "parts": [
        {"inlineData": {"mimeType": mime, "data": _b64(size)}},
        {"text": "Describe it."}]}])


GEMINI = "/v1beta/models/{model}:generateContent"


def all_shapes() -> list[Shape]:
    a, o = "/v1/messages", "/v1/chat/completions"
    g = GEMINI.format(model="gemini-3-1-pro")
    hello = [{"role": "user", "content": "Hello! Tell me a joke."}]
    tiny_a = _anthropic("claude-sonnet-4-6", hello)
    tiny_o = _openai("gpt-5-4", [{"role": "user", "content": "Hello! Tell me a short joke."}])
    tiny_g = _gemini([{"role": "user", "parts": [{"text": "Hello! Tell me a short joke."}]}])
    return [
        Shape("tiny", "anthropic", a, tiny_a, True),
        Shape("agent", "anthropic", a, _anthropic_agent(), True),
        Shape("history", "anthropic", a, _anthropic_history(), True),
        Shape("image-2MB", "anthropic", a, _anthropic_image(), True),
        Shape("unknown-model", "anthropic", a, _anthropic_agent("claude-sonnet-4.6"), False),
        Shape("no-capability", "anthropic", a, _anthropic_image("deepseek-v4-pro"), False),
        Shape("tiny", "openai", o, tiny_o, True),
        Shape("agent", "openai", o, _openai_agent(), True),
        Shape("history", "openai", o, _openai_history(), True),
        Shape("image-2MB", "openai", o, _openai_image(), True),
        Shape("unknown-model", "openai", o, _openai_agent("gpt-5.4"), False),
        Shape("no-capability", "openai", o, _openai_image("glm-5"), False),
        Shape("tiny", "gemini", g, tiny_g, True),
        Shape("agent", "gemini", g, _gemini_agent(), True),
        Shape("history", "gemini", g, _gemini_history(), True),
        Shape("image-2MB", "gemini", g, _gemini_media("image/png", 1_500_000), True),
        Shape("video-5MB", "gemini", g, _gemini_media("video/mp4", 3_750_000), True),
        Shape("unknown-model", "gemini", GEMINI.format(model="gemini-3.1-pro"), tiny_g, False),
        Shape("no-capability", "gemini", GEMINI.format(model="gemini-3-flash"),
              _gemini_media("video/mp4", 3_750_000), False),
    ]


def agent_shapes() -> list[Shape]:
    """The captured coding-agent requests (whichever are present), as named shapes."""
    shapes = []
    for stem, scene in AGENT_CAPTURES:
        path = AGENTS / f"{stem}.json"
        if not path.is_file():
            continue
        record = json.loads(path.read_text())
        body = record["body"]
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        target = record["path"] + (f"?{record['query']}" if record.get("query") else "")
        headers = tuple((k, v) for k, v in record.get("headers", {}).items()
                        if k.lower() in ("content-type", "anthropic-version", "anthropic-beta"))
        shapes.append(Shape(scene, _AGENT_NAMES[stem.split("-")[0]], target, raw, True, headers))
    return shapes


def agent_models() -> list[dict]:
    """Catalog entries for the models the captured agents ask for."""
    return [{"id": model, "object": "model", "owned_by": owner, "capabilities": _ALL_TAGS,
             "max_output_tokens": 128_000, "context_window": 1_000_000}
            for model, owner in _AGENT_MODELS.items()]


def many_small_objects(size: int) -> bytes:
    """The worst shape for a decoder's memory: an Anthropic request whose one unread field is
    ``[{},{},...]`` up to ``size`` bytes (3 bytes per object; about 80 bytes each once built)."""
    head = (b'{"model":"claude-sonnet-4-6","max_tokens":16,"messages":[{"role":"user",'
            b'"content":"hi"}],"metadata":{"x":[')
    tail = b"{}]}}"
    count = (size - len(head) - len(tail)) // 3
    return head + b"{}," * count + tail


def dense_shapes() -> list[Shape]:
    """Many small values: refused by the structure budget (413) rather than built."""
    return [Shape("many-small-objects-1MB", "anthropic", "/v1/messages",
                  many_small_objects(1 << 20), False)]


def agent_body() -> tuple[str, bytes]:
    """The agent-sized request used end to end."""
    return "/v1/messages", _anthropic_agent()
