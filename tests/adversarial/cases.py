"""The adversarial corpus: hostile and broken requests, and what the guard must answer.

Each :class:`Case` is one raw request (method, request target exactly as on the request line,
headers, body bytes, and how the body is delivered) plus the one outcome the contract allows:

* ``PASS``: the app behind the guard is reached and receives the body byte for byte;
* ``REFUSE``: the protocol's envelope with the fixed status and token of decisions.md §5
  (Anthropic ``error.type``, OpenAI ``error.code``, Gemini ``details[0].reason``);
* ``NO_RESPONSE``: the client left in the middle of its body; nobody is answered, nothing hangs.

The classes follow threats.md §1–§3. For a refusal about a model or a capability the body is
otherwise allowed, so the refusal is caused by the trick under test; for a trick that the guard
must treat as malformed (duplicates, look-alike keys, ...), reading it either way would give a
different answer than the 400 expected, so a misreading shows up as a wrong token or a bypass.

Expectations that decisions.md leaves open are marked ``chosen=...`` (and listed in the report).
A case modelguard gets wrong is marked ``bug=...`` and run as a strict xfail.
"""

from __future__ import annotations

import base64
import functools
import gzip
import json
import random
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["CASES", "Case", "Expect", "PASS", "NO_RESPONSE", "SERVER_REJECT", "AUTO"]

AUTO = "auto"
MiB = 1024 * 1024
LIMIT = 32 * MiB  # the default max_body_bytes (decisions.md §8)


# --------------------------------------------------------------------------------------------
# Expectations
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    #: "pass" | "refuse" | "no_response" | "server_reject"
    kind: str
    status: int | None = None
    token: str | None = None
    protocol: str | None = None

    def __str__(self) -> str:
        if self.kind == "refuse":
            return f"REFUSE({self.status}, {self.protocol}:{self.token})"
        return self.kind.upper()


PASS = Expect("pass")
NO_RESPONSE = Expect("no_response")
#: Over a real socket only: the HTTP server itself refused the bytes before any app ran
#: (a 4xx from uvicorn, never a 5xx, and the app is not reached).
SERVER_REJECT = Expect("server_reject")


def _refuse(protocol: str) -> Callable[[int, str], Expect]:
    return lambda status, token: Expect("refuse", status, token, protocol)


REFUSE_A, REFUSE_O, REFUSE_G = _refuse("anthropic"), _refuse("openai"), _refuse("gemini")

A_MODEL = REFUSE_A(400, "unsupported_model")
A_CAP = REFUSE_A(400, "unsupported_capability")
A_CONTENT = REFUSE_A(400, "unsupported_content")
A_BAD = REFUSE_A(400, "invalid_request_error")  # malformed / ambiguous (and the output cap)
A_MAXTOK = REFUSE_A(400, "invalid_request_error")
A_413 = REFUSE_A(413, "request_too_large")
A_415 = REFUSE_A(415, "invalid_request_error")

O_MODEL = REFUSE_O(400, "unsupported_model")
O_CAP = REFUSE_O(400, "unsupported_capability")
O_CONTENT = REFUSE_O(400, "unsupported_content")
O_BAD = REFUSE_O(400, "invalid_param")
O_MAXTOK = REFUSE_O(400, "max_tokens_exceeded")
O_413 = REFUSE_O(413, "request_too_large")
O_415 = REFUSE_O(415, "unsupported_media_type")

G_MODEL = REFUSE_G(400, "UNSUPPORTED_MODEL")
G_CAP = REFUSE_G(400, "UNSUPPORTED_CAPABILITY")
G_CONTENT = REFUSE_G(400, "UNSUPPORTED_CONTENT")
G_BAD = REFUSE_G(400, "INVALID_REQUEST")
G_MAXTOK = REFUSE_G(400, "MAX_TOKENS_EXCEEDED")
G_413 = REFUSE_G(413, "REQUEST_TOO_LARGE")
G_415 = REFUSE_G(415, "UNSUPPORTED_MEDIA_TYPE")


# --------------------------------------------------------------------------------------------
# The case record
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    cls: str
    #: The request target exactly as on the request line (path, query, maybe a fragment or
    #: an absolute-form URL). Latin-1 text; bytes on the wire.
    target: str
    #: The body bytes, or a zero-argument callable making them (big bodies are built lazily).
    body: bytes | Callable[[], bytes]
    expect: Expect
    method: str = "POST"
    #: Extra headers, in order (Host, Content-Type and Content-Length are added separately).
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str | None = "application/json"
    #: AUTO: the true length; None: no Content-Length (chunked over a socket); int: declared,
    #: possibly lying.
    content_length: int | str | None = AUTO
    #: How the body is split into ``http.request`` messages (in-process) or chunks (socket):
    #: an int size, or a tuple of sizes used in turn (0 = an empty message in between).
    chunks: int | tuple[int, ...] | None = None
    #: The client leaves after sending this many body bytes.
    disconnect_after: int | None = None
    #: In-process only: the ASGI root_path the app is mounted under.
    root_path: str = ""
    #: In-process only: force ``scope["path"]`` (a server whose decoded path differs).
    scope_path: str | None = None
    #: Whether the case can be sent over a real socket.
    socket: bool = True
    #: Over a socket the outcome may differ ("h11", "httptools" or "*" for both).
    socket_expect: dict[str, Expect] = field(default_factory=dict)
    #: Why this case is expected to fail (modelguard bug): run as a strict xfail.
    bug: str | None = None
    #: A bug that shows only in some runs: "asgi" (in-process), "pure" (in-process with the
    #: pure-Python decoder), "h11", "httptools".
    bug_in: dict[str, str] = field(default_factory=dict)
    #: The expectation is a choice where decisions.md leaves the outcome open.
    chosen: str | None = None

    def data(self) -> bytes:
        body = self.body
        return body() if callable(body) else body

    def expected_over(self, server: str) -> Expect:
        return self.socket_expect.get(server, self.socket_expect.get("*", self.expect))


# --------------------------------------------------------------------------------------------
# Bodies
# --------------------------------------------------------------------------------------------

SONNET, HAIKU, DEEPSEEK, GLM = "claude-sonnet-4-6", "claude-haiku-4-5", "deepseek-v4-pro", "glm-5"
GPT, NANO, MINIMAX = "gpt-5-4", "gpt-5-4-nano", "minimax-m2-5"
FLASH, PRO, BANANA = "gemini-3-flash", "gemini-3-1-pro", "nano-banana"
NO_SUCH = "claude-sonnet-9-9"

A_PATH = "/v1/messages"
O_PATH = "/v1/chat/completions"


def G_PATH(model: str = FLASH, method: str = "generateContent", version: str = "v1beta") -> str:
    return f"/{version}/models/{model}:{method}"


def j(obj: object) -> bytes:
    """Compact JSON, UTF-8, non-ASCII kept as is."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def r(text: str) -> bytes:
    """A hand-written JSON text (escapes such as ``\\u006d`` stay literal) as UTF-8."""
    return text.encode("utf-8")


IMG_A = {"type": "image",
         "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
PDF_A = {"type": "document",
         "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQ="}}
TXT_DOC_A = {"type": "document",
             "source": {"type": "text", "media_type": "text/plain", "data": "plain notes"}}
IMG_O = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
VIDEO_G = {"inlineData": {"mimeType": "video/mp4", "data": "AAAAIGZ0eXBpc29t"}}
IMAGE_G = {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}


def anth(model: str = SONNET, content: object = "Hello", **extra: object) -> dict:
    body: dict = {"model": model, "max_tokens": 1024,
                  "messages": [{"role": "user", "content": content}]}
    body.update(extra)
    return body


def chat(model: str = GPT, content: object = "Hello", **extra: object) -> dict:
    body: dict = {"model": model, "messages": [{"role": "user", "content": content}]}
    body.update(extra)
    return body


def gem(parts: list | None = None, **extra: object) -> dict:
    body: dict = {"contents": [{"role": "user", "parts": parts or [{"text": "Hello"}]}]}
    body.update(extra)
    return body


A_OK = j(anth())
A_UNKNOWN = j(anth(NO_SUCH))
O_OK = j(chat())
O_UNKNOWN = j(chat("gpt-9"))
G_OK = j(gem())
G_VIDEO = j(gem([{"text": "What happens?"}, VIDEO_G]))

# Raw JSON fragments for hand-written bodies.
A_MSGS = '"max_tokens":1024,"messages":[{"role":"user","content":"Hello"}]'
O_MSGS = '"messages":[{"role":"user","content":"Hello"}]'
G_CONTENTS = '"contents":[{"role":"user","parts":[{"text":"Hello"}]}]'
IMG_A_RAW = ('{"type":"image","source":{"type":"base64","media_type":"image/png",'
             '"data":"iVBORw0KGgo="}}')
VIDEO_G_RAW = '{"inlineData":{"mimeType":"video/mp4","data":"AAAAIGZ0eXBpc29t"}}'


def nest(depth: int, inner: str = "[]", kind: str = "array") -> str:
    """A value that is ``depth`` levels deep by itself (an empty array is one level)."""
    if kind == "array":
        return "[" * (depth - 1) + inner + "]" * (depth - 1)
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


def deep_a(total: int, kind: str = "array") -> bytes:
    """An allowed Anthropic body whose deepest point is at ``total`` levels (root = 1)."""
    return r('{"model":"claude-sonnet-4-6",' + A_MSGS + ',"x_deep":'
             + nest(total - 1, kind=kind) + "}")


# Compression helpers -------------------------------------------------------------------------

def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def zl(data: bytes) -> bytes:
    """``deflate`` as RFC 9110 means it: the zlib-wrapped form."""
    return zlib.compress(data)


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


@functools.cache
def bomb_gzip() -> bytes:
    """About 33 KB that inflate to 33 MiB of JSON whitespace (past the 32 MiB limit)."""
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b" " * MiB
    out = [c.compress(b"{")]
    out += [c.compress(block) for _ in range(33)]
    out.append(c.compress(b"}") + c.flush())
    return b"".join(out)


@functools.cache
def bomb_deflate() -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS)
    block = b" " * MiB
    return b"".join([c.compress(block) for _ in range(33)] + [c.flush()])


@functools.cache
def bomb_stacked() -> bytes:
    """gzip(gzip(33 MiB)): a few hundred bytes."""
    return gz(bomb_gzip())


@functools.cache
def over_limit() -> bytes:
    """One byte past the limit (valid JSON shape, but size alone must refuse it)."""
    head = b'{"model":"claude-sonnet-4-6",' + A_MSGS.encode() + b',"pad":"'
    tail = b'"}'
    return head + b"a" * (LIMIT + 1 - len(head) - len(tail)) + tail


@functools.cache
def at_limit() -> bytes:
    """Exactly the limit: an allowed request that must reach the app unchanged."""
    head = b'{"model":"claude-sonnet-4-6","max_tokens":1024,"messages":[{"role":"user","content":"'
    tail = b'"}]}'
    return head + b"x" * (LIMIT - len(head) - len(tail)) + tail


@functools.cache
def at_limit_gzip() -> bytes:
    """Exactly the limit once inflated, of base64-like text (about 1.3:1, far under 200:1)."""
    head = b'{"model":"claude-sonnet-4-6","max_tokens":1024,"messages":[{"role":"user","content":"'
    tail = b'"}]}'
    fill = base64.b64encode(random.Random(0).randbytes(LIMIT))[:LIMIT - len(head) - len(tail)]
    return gzip.compress(head + fill + tail, compresslevel=1, mtime=0)


def preset_dict_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(zdict=b"claude-sonnet-4-6 messages model")
    return c.compress(data) + c.flush()


def utf16(text: bytes, codec: str) -> bytes:
    return text.decode("utf-8").encode(codec)


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


CASES: list[Case] = []


def add(cls: str, id: str, target: str, body: bytes | Callable[[], bytes], expect: Expect,
        **kw: object) -> None:
    CASES.append(Case(id=f"{cls}:{id}", cls=cls, target=target, body=body, expect=expect, **kw))


# ---- §1 duplicate keys ----------------------------------------------------------------------
C = "dup-keys"
add(C, "a-model-bad-then-good", A_PATH,
    r('{"model":"claude-sonnet-9-9","model":"claude-sonnet-4-6",' + A_MSGS + "}"), A_BAD)
add(C, "a-model-good-then-bad", A_PATH,
    r('{"model":"claude-sonnet-4-6","model":"claude-sonnet-9-9",' + A_MSGS + "}"), A_BAD)
add(C, "a-model-identical-twice", A_PATH,
    r('{"model":"claude-sonnet-4-6","model":"claude-sonnet-4-6",' + A_MSGS + "}"), A_BAD)
add(C, "a-model-escaped-u006d", A_PATH,
    r('{"model":"claude-sonnet-9-9","\\u006dodel":"claude-sonnet-4-6",' + A_MSGS + "}"), A_BAD)
add(C, "a-model-both-escaped", A_PATH,
    r('{"mod\\u0065l":"claude-sonnet-4-6","\\u006d\\u006f\\u0064\\u0065\\u006c":'
      '"claude-sonnet-9-9",' + A_MSGS + "}"), A_BAD)
add(C, "a-stream-false-then-true-minimax", A_PATH,
    r('{"model":"minimax-m2-5",' + A_MSGS + ',"stream":false,"stream":true}'), A_BAD)
add(C, "a-block-type-text-then-image", A_PATH,
    r('{"model":"deepseek-v4-pro","max_tokens":1024,"messages":[{"role":"user","content":'
      '[{"type":"text","text":"hi","type":"image","source":{"type":"base64",'
      '"media_type":"image/png","data":"iVBORw0KGgo="}}]}]}'), A_BAD)
add(C, "a-block-type-escaped", A_PATH,
    r('{"model":"deepseek-v4-pro","max_tokens":1024,"messages":[{"role":"user","content":'
      '[{"type":"image","\\u0074ype":"text","text":"hi","source":{"type":"base64",'
      '"media_type":"image/png","data":"iVBORw0KGgo="}}]}]}'), A_BAD)
add(C, "a-message-role-twice", A_PATH,
    r('{"model":"claude-sonnet-4-6","max_tokens":1024,"messages":'
      '[{"role":"user","role":"assistant","content":"Hello"}]}'), A_BAD)
add(C, "a-message-content-twice", A_PATH,
    r('{"model":"deepseek-v4-pro","max_tokens":1024,"messages":[{"role":"user",'
      '"content":[' + IMG_A_RAW + '],"content":"Hello"}]}'), A_BAD)
add(C, "a-thinking-type-twice-haiku", A_PATH,
    r('{"model":"claude-haiku-4-5",' + A_MSGS
      + ',"thinking":{"type":"disabled","type":"enabled","budget_tokens":1024}}'), A_BAD)
add(C, "a-source-media-type-twice", A_PATH,
    r('{"model":"deepseek-v4-pro","max_tokens":1024,"messages":[{"role":"user","content":'
      '[{"type":"document","source":{"type":"base64","media_type":"text/plain",'
      '"media_type":"application/pdf","data":"JVBERi0xLjQ="}}]}]}'), A_BAD)
add(C, "a-tool-choice-type-twice", A_PATH,
    r('{"model":"minimax-m2-5",' + A_MSGS + ',"tools":[{"name":"f","input_schema":'
      '{"type":"object"}}],"tool_choice":{"type":"none","type":"any"}}'), A_BAD)
add(C, "a-nested-tool-result-block-type-twice", A_PATH,
    r('{"model":"deepseek-v4-pro","max_tokens":1024,"messages":[{"role":"user","content":'
      '[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"x",'
      '"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBO"}}]}]}]}'),
    A_BAD)
add(C, "o-model-twice", O_PATH,
    r('{"model":"gpt-9","model":"gpt-5-4",' + O_MSGS + "}"), O_BAD)
add(C, "o-part-type-text-then-image", O_PATH,
    r('{"model":"deepseek-v4-pro","messages":[{"role":"user","content":[{"type":"text",'
      '"text":"hi","type":"image_url","image_url":{"url":"https://e.com/a.png"}}]}]}'), O_BAD)
add(C, "o-image-url-url-twice", O_PATH,
    r('{"model":"deepseek-v4-pro","messages":[{"role":"user","content":[{"type":"image_url",'
      '"image_url":{"url":"data:video/mp4;base64,AAAA","url":"https://e.com/a.png"}}]}]}'),
    O_BAD)
add(C, "o-response-format-type-twice", O_PATH,
    r('{"model":"minimax-m2-5",' + O_MSGS
      + ',"response_format":{"type":"json_object","type":"json_schema","json_schema":'
        '{"name":"x","schema":{"type":"object"}}}}'), O_BAD)
add(C, "o-max-completion-tokens-twice", O_PATH,
    r('{"model":"gpt-5-4-nano",' + O_MSGS
      + ',"max_completion_tokens":100,"max_completion_tokens":100000}'), O_BAD)
add(C, "g-mimetype-twice", G_PATH(),
    r('{"contents":[{"role":"user","parts":[{"inlineData":{"mimeType":"image/png",'
      '"mimeType":"video/mp4","data":"AAAA"}}]}]}'), G_BAD)
add(C, "g-mimetype-escaped-twice", G_PATH(),
    r('{"contents":[{"role":"user","parts":[{"inlineData":{"mimeType":"image/png",'
      '"\\u006dimeType":"video/mp4","data":"AAAA"}}]}]}'), G_BAD)
add(C, "g-parts-twice", G_PATH(),
    r('{"contents":[{"role":"user","parts":[{"text":"hi"}],"parts":[' + VIDEO_G_RAW + "]}]}"),
    G_BAD)
add(C, "g-generation-config-twice", G_PATH(),
    r("{" + G_CONTENTS + ',"generationConfig":{"maxOutputTokens":100},'
      '"generationConfig":{"maxOutputTokens":1000000}}'), G_BAD)
add(C, "g-thinking-budget-zero-then-on", G_PATH(BANANA),
    r("{" + G_CONTENTS + ',"generationConfig":{"thinkingConfig":'
      '{"thinkingBudget":0,"thinkingBudget":1024}}}'), G_BAD)
add(C, "g-inline-data-twice", G_PATH(),
    r('{"contents":[{"role":"user","parts":[{"inlineData":{"mimeType":"image/png",'
      '"data":"AAAA"},"inlineData":{"mimeType":"video/mp4","data":"AAAA"}}]}]}'), G_BAD)
add(C, "a-unread-metadata-twice", A_PATH,
    r('{"model":"claude-sonnet-4-6",' + A_MSGS + ',"metadata":{"user_id":"a","user_id":"b"}}'),
    A_BAD, chosen="decisions.md §8 requires unique keys only in objects the verdict reads; "
                  "for an unread object (metadata) we expect the I-JSON refusal modelguard "
                  "documents (fail closed)")

# ---- §1 look-alike keys (case folding, NFKC) -------------------------------------------------
C = "lookalike-keys"
add(C, "a-MODEL-and-model", A_PATH,
    r('{"MODEL":"claude-sonnet-9-9","model":"claude-sonnet-4-6",' + A_MSGS + "}"), A_BAD)
add(C, "a-Model-after-model", A_PATH,
    r('{"model":"claude-sonnet-4-6",' + A_MSGS + ',"Model":"claude-sonnet-9-9"}'), A_BAD)
add(C, "a-long-s-stream-alone-minimax", A_PATH,
    r('{"model":"minimax-m2-5",' + A_MSGS + ',"\u017ftream":true}'), A_BAD)
add(C, "a-long-s-stream-escaped-minimax", A_PATH,
    r('{"model":"minimax-m2-5",' + A_MSGS + ',"\\u017ftream":true}'), A_BAD)
add(C, "a-STREAM-with-stream-false", A_PATH,
    r('{"model":"minimax-m2-5",' + A_MSGS + ',"stream":false,"STREAM":true}'), A_BAD)
add(C, "a-kelvin-thinking-escaped-haiku", A_PATH,
    r('{"model":"claude-haiku-4-5",' + A_MSGS
      + ',"thin\\u212aing":{"type":"enabled","budget_tokens":1024}}'), A_BAD)
add(C, "a-kelvin-thinking-raw-haiku", A_PATH,
    r('{"model":"claude-haiku-4-5",' + A_MSGS
      + ',"thin\u212aing":{"type":"enabled","budget_tokens":1024}}'), A_BAD)
add(C, "a-fullwidth-model", A_PATH,
    r('{"\uff4d\uff4f\uff44\uff45\uff4c":"claude-sonnet-9-9","model":"claude-sonnet-4-6",'
      + A_MSGS + "}"), A_BAD)
add(C, "a-fullwidth-upper-MODEL", A_PATH,
    r('{"model":"claude-sonnet-4-6","\uff2d\uff2f\uff24\uff25\uff2c":"claude-sonnet-9-9",'
      + A_MSGS + "}"), A_BAD)
add(C, "a-long-s-max-tokens", A_PATH,
    r('{"model":"claude-sonnet-4-6","messages":[{"role":"user","content":"Hello"}],'
      '"max_token\u017f":100000}'), A_BAD)
add(C, "a-ligature-fi-output-config", A_PATH,
    r('{"model":"claude-haiku-4-5",' + A_MSGS + ',"output_con\ufb01g":{"format":'
      '{"type":"json_schema","schema":{"type":"object"}}}}'), A_BAD)
add(C, "a-message-Content", A_PATH,
    r('{"model":"deepseek-v4-pro","max_tokens":1024,"messages":[{"role":"user",'
      '"content":"Hello","Content":[' + IMG_A_RAW + "]}]}"), A_BAD)
add(C, "a-message-ROLE", A_PATH,
    r('{"model":"claude-sonnet-4-6","max_tokens":1024,"messages":[{"role":"user",'
      '"ROLE":"assistant","content":"Hello"}]}'), A_BAD)
add(C, "a-block-TYPE", A_PATH,
    r('{"model":"deepseek-v4-pro","max_tokens":1024,"messages":[{"role":"user","content":'
      '[{"type":"text","text":"hi","TYPE":"image","source":{"type":"base64",'
      '"media_type":"image/png","data":"iVBO"}}]}]}'), A_BAD)
add(C, "a-block-long-s-source", A_PATH,
    r('{"model":"deepseek-v4-pro","max_tokens":1024,"messages":[{"role":"user","content":'
      '[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"x"},'
      '"\u017fource":{"type":"base64","media_type":"application/pdf","data":"JVBE"}}]}]}'),
    A_BAD)
add(C, "a-source-MEDIA_TYPE", A_PATH,
    r('{"model":"deepseek-v4-pro","max_tokens":1024,"messages":[{"role":"user","content":'
      '[{"type":"document","source":{"type":"base64","media_type":"text/plain",'
      '"MEDIA_TYPE":"application/pdf","data":"JVBE"}}]}]}'), A_BAD)
add(C, "a-thinking-Type", A_PATH,
    r('{"model":"claude-haiku-4-5",' + A_MSGS
      + ',"thinking":{"type":"disabled","Type":"enabled","budget_tokens":1024}}'), A_BAD)
add(C, "a-MODEL-all-escaped", A_PATH,
    r('{"model":"claude-sonnet-4-6","\\u004d\\u004f\\u0044\\u0045\\u004c":"claude-sonnet-9-9",'
      + A_MSGS + "}"), A_BAD)
add(C, "a-math-bold-model", A_PATH,
    r('{"model":"claude-sonnet-4-6","\U0001d426\U0001d428\U0001d41d\U0001d41e\U0001d425":'
      '"claude-sonnet-9-9",' + A_MSGS + "}"), A_BAD)
add(C, "a-modifier-letter-m-model", A_PATH,
    r('{"model":"claude-sonnet-4-6","\u1d50odel":"claude-sonnet-9-9",' + A_MSGS + "}"), A_BAD)
add(C, "a-st-ligature-stream-minimax", A_PATH,
    r('{"model":"minimax-m2-5",' + A_MSGS + ',"\ufb06ream":true}'), A_BAD)
add(C, "a-TOOLS-minimax", A_PATH,
    r('{"model":"minimax-m2-5",' + A_MSGS + ',"TOOLS":[{"name":"f","input_schema":{}}]}'), A_BAD)
add(C, "a-fallback-Thinking-haiku", A_PATH,
    j(anth(fallbacks=[{"model": HAIKU, "Thinking": {"type": "enabled", "budget_tokens": 1024}}])),
    A_BAD)
add(C, "o-Modalities-audio-gpt", O_PATH,
    r('{"model":"gpt-5-4",' + O_MSGS + ',"Modalities":["text","audio"]}'), O_BAD)
add(C, "o-template-Enable_Thinking-nano", O_PATH,
    r('{"model":"gpt-5-4-nano",' + O_MSGS + ',"chat_template_kwargs":{"Enable_Thinking":true}}'),
    O_BAD)
add(C, "o-MESSAGES", O_PATH,
    r('{"model":"gpt-5-4",' + O_MSGS + ',"MESSAGES":[{"role":"user","content":"x"}]}'), O_BAD)
add(C, "o-Stream-minimax", O_PATH,
    r('{"model":"minimax-m2-5",' + O_MSGS + ',"Stream":true}'), O_BAD)
add(C, "o-part-Type", O_PATH,
    r('{"model":"deepseek-v4-pro","messages":[{"role":"user","content":[{"type":"text",'
      '"text":"hi","Type":"image_url","image_url":{"url":"https://e.com/a.png"}}]}]}'), O_BAD)
add(C, "o-part-IMAGE_URL", O_PATH,
    r('{"model":"deepseek-v4-pro","messages":[{"role":"user","content":[{"type":"text",'
      '"text":"hi","IMAGE_URL":{"url":"https://e.com/a.png"}}]}]}'), O_BAD)
add(C, "o-message-Role-tool", O_PATH,
    r('{"model":"minimax-m2-5","messages":[{"role":"user","Role":"tool","content":"x"}]}'),
    O_BAD)
add(C, "o-fullwidth-f-response-format", O_PATH,
    r('{"model":"minimax-m2-5",' + O_MSGS + ',"response_\uff46ormat":{"type":"json_schema",'
      '"json_schema":{"name":"x","schema":{"type":"object"}}}}'), O_BAD)
add(C, "o-long-s-max-completion-tokens", O_PATH,
    r('{"model":"gpt-5-4-nano",' + O_MSGS + ',"max_completion_token\u017f":100000}'), O_BAD)
add(C, "g-Contents", G_PATH(),
    r("{" + G_CONTENTS + ',"Contents":[{"role":"user","parts":[' + VIDEO_G_RAW + "]}]}"),
    G_BAD)
add(C, "g-GENERATIONCONFIG", G_PATH(),
    r("{" + G_CONTENTS + ',"GENERATIONCONFIG":{"maxOutputTokens":1000000}}'), G_BAD)
add(C, "g-part-InlineData", G_PATH(),
    r('{"contents":[{"role":"user","parts":[{"text":"hi"},{"InlineData":'
      '{"mimeType":"video/mp4","data":"AAAA"}}]}]}'), G_BAD)
add(C, "g-part-INLINE_DATA", G_PATH(),
    r('{"contents":[{"role":"user","parts":[{"text":"hi"},{"INLINE_DATA":'
      '{"mimeType":"video/mp4","data":"AAAA"}}]}]}'), G_BAD)
add(C, "g-blob-MIMEType", G_PATH(),
    r('{"contents":[{"role":"user","parts":[{"inlineData":{"mimeType":"image/png",'
      '"MIMEType":"video/mp4","data":"AAAA"}}]}]}'), G_BAD)
add(C, "g-config-MaxOutputTokens", G_PATH(),
    r("{" + G_CONTENTS + ',"generationConfig":{"MaxOutputTokens":1000000}}'), G_BAD)
add(C, "g-config-fullwidth-m", G_PATH(),
    r("{" + G_CONTENTS + ',"generationConfig":{"\uff4daxOutputTokens":1000000}}'), G_BAD)
add(C, "g-thinking-budgeT-banana", G_PATH(BANANA),
    r("{" + G_CONTENTS + ',"generationConfig":{"thinkingConfig":{"thinkingBudgeT":1024}}}'),
    G_BAD)
add(C, "g-thinking-THINKING_BUDGET-banana", G_PATH(BANANA),
    r("{" + G_CONTENTS + ',"generationConfig":{"thinkingConfig":{"THINKING_BUDGET":1024}}}'),
    G_BAD)
add(C, "g-roman-numeral-x-in-text", G_PATH(),
    r('{"contents":[{"role":"user","parts":[{"te\u2179t":"hi"}]}]}'), G_BAD)
add(C, "g-Kelvin-thinkingConfig-banana", G_PATH(BANANA),
    r("{" + G_CONTENTS + ',"generationConfig":{"thin\u212aingConfig":{"thinkingBudget":1024}}}'),
    G_BAD)

# ---- §1 Gemini camelCase + snake_case -------------------------------------------------------
C = "gemini-camel-snake"
add(C, "inlineData-and-inline_data", G_PATH(),
    r('{"contents":[{"role":"user","parts":[{"inlineData":{"mimeType":"image/png",'
      '"data":"AAAA"},"inline_data":{"mime_type":"video/mp4","data":"AAAA"}}]}]}'), G_BAD)
add(C, "generationConfig-and-generation_config", G_PATH(),
    r("{" + G_CONTENTS + ',"generationConfig":{"maxOutputTokens":100},'
      '"generation_config":{"max_output_tokens":1000000}}'), G_BAD)
add(C, "maxOutputTokens-and-max_output_tokens", G_PATH(),
    r("{" + G_CONTENTS + ',"generationConfig":{"maxOutputTokens":100,'
      '"max_output_tokens":1000000}}'), G_BAD)
add(C, "mimeType-and-mime_type", G_PATH(),
    r('{"contents":[{"role":"user","parts":[{"inlineData":{"mimeType":"image/png",'
      '"mime_type":"video/mp4","data":"AAAA"}}]}]}'), G_BAD)
add(C, "thinkingConfig-and-thinking_config", G_PATH(BANANA),
    r("{" + G_CONTENTS + ',"generationConfig":{"thinkingConfig":{"thinkingBudget":0},'
      '"thinking_config":{"thinking_budget":1024}}}'), G_BAD)
add(C, "thinkingBudget-and-thinking_budget", G_PATH(BANANA),
    r("{" + G_CONTENTS + ',"generationConfig":{"thinkingConfig":{"thinkingBudget":0,'
      '"thinking_budget":1024}}}'), G_BAD)
add(C, "systemInstruction-and-system_instruction", G_PATH(),
    r("{" + G_CONTENTS + ',"systemInstruction":{"parts":[{"text":"be brief"}]},'
      '"system_instruction":{"parts":[' + VIDEO_G_RAW + "]}}"), G_BAD)
add(C, "fileData-and-file_data", G_PATH(),
    r('{"contents":[{"role":"user","parts":[{"fileData":{"fileUri":"gs://b/a.png",'
      '"mimeType":"image/png"},"file_data":{"file_uri":"gs://b/a.mp4","mime_type":"video/mp4"}}'
      "]}]}"), G_BAD)
add(C, "functionCallingConfig-and-function_calling_config", G_PATH(MINIMAX),
    r("{" + G_CONTENTS + ',"tools":[{"functionDeclarations":[{"name":"f"}]}],"toolConfig":'
      '{"functionCallingConfig":{"mode":"NONE"},"function_calling_config":{"mode":"ANY"}}}'),
    G_BAD)
add(C, "system-instruction-both-spellings-same-value", G_PATH(),
    r("{" + G_CONTENTS + ',"system_instruction":{"parts":[{"text":"hi"}]},'
      '"systemInstruction":{"parts":[{"text":"hi"}]}}'), G_BAD)
add(C, "snake-inline_data-video-flash", G_PATH(),
    j({"contents": [{"role": "user", "parts": [
        {"inline_data": {"mime_type": "video/mp4", "data": "AAAA"}}]}]}), G_CAP)
add(C, "snake-max_output_tokens-over-cap", G_PATH(),
    j({"contents": [{"parts": [{"text": "hi"}]}],
       "generation_config": {"max_output_tokens": 100000}}), G_MAXTOK)
add(C, "snake-thinking_budget-banana", G_PATH(BANANA),
    j({"contents": [{"parts": [{"text": "hi"}]}],
       "generation_config": {"thinking_config": {"thinking_budget": 1024}}}), G_CAP)
add(C, "snake-file_data-youtube-flash", G_PATH(),
    j({"contents": [{"parts": [{"file_data": {"file_uri": "https://www.youtube.com/watch?v=x"}}]}]}),
    G_CAP)
add(C, "snake-generate_content_request-countTokens", G_PATH(method="countTokens"),
    j({"generate_content_request": {"model": "models/gemini-3-flash", "contents": [
        {"parts": [{"inline_data": {"mime_type": "video/mp4", "data": "AAAA"}}]}]}}), G_CAP)
add(C, "snake-inline_data-image-flash-pass", G_PATH(),
    j({"contents": [{"role": "user", "parts": [
        {"text": "what is it"}, {"inline_data": {"mime_type": "image/png", "data": "AAAA"}}]}]}),
    PASS)
add(C, "mixed-camel-outer-snake-inner-pass", G_PATH(),
    j({"contents": [{"parts": [{"text": "hi"}]}],
       "generationConfig": {"max_output_tokens": 2048, "thinking_config": {"thinking_budget": 0}}}),
    PASS)

add(C, "snake-cached_content-flash", G_PATH(),
    j(gem(cached_content="cachedContents/abc")), G_CAP)
add(C, "snake-response_modalities-image-flash", G_PATH(),
    j(gem(generation_config={"response_modalities": ["TEXT", "IMAGE"]})), G_CAP)
add(C, "snake-google_search-minimax", G_PATH(MINIMAX), j(gem(tools=[{"google_search": {}}])),
    G_CAP)
add(C, "snake-response_json_schema-minimax", G_PATH(MINIMAX),
    j(gem(generation_config={"response_mime_type": "application/json",
                             "response_json_schema": {"type": "object"}})), G_CAP)
add(C, "snake-tool_config-forced-minimax", G_PATH(MINIMAX),
    j(gem(tool_config={"function_calling_config": {"mode": "ANY"}})), G_CAP)
add(C, "snake-function_response-image-parts-deepseek", G_PATH(DEEPSEEK),
    j({"contents": [{"role": "user", "parts": [{"function_response": {
        "name": "f", "response": {}, "parts": [
            {"inline_data": {"mime_type": "image/png", "data": "AAAA"}}]}}]}]}), G_CAP)
add(C, "enum-lowercase-image-modality-flash", G_PATH(),
    j(gem(generationConfig={"responseModalities": ["image"]})), G_CAP)
add(C, "enum-integer-image-modality-flash", G_PATH(),
    j(gem(generationConfig={"responseModalities": [2]})), G_CAP)
add(C, "contents-single-object-video-flash", G_PATH(),
    j({"contents": {"role": "user", "parts": [VIDEO_G]}}), G_CAP)

# ---- §1 look-alike values (fail closed on case variants of content types) -------------------
C = "lookalike-values"
add(C, "a-block-type-Image-deepseek", A_PATH,
    j(anth(DEEPSEEK, content=[dict(IMG_A, type="Image")])), A_CONTENT)
add(C, "a-block-type-trailing-space", A_PATH,
    j(anth(DEEPSEEK, content=[dict(IMG_A, type="image ")])), A_CONTENT)
add(C, "a-block-type-escaped-image-deepseek", A_PATH,
    r('{"model":"deepseek-v4-pro","max_tokens":1024,"messages":[{"role":"user","content":'
      '[{"type":"\\u0069mage","source":{"type":"base64","media_type":"image/png",'
      '"data":"iVBO"}}]}]}'), A_CAP)
add(C, "a-system-image-block-deepseek", A_PATH, j(anth(DEEPSEEK, system=[IMG_A])), A_CAP)
add(C, "a-model-leading-space", A_PATH, j(anth(" claude-sonnet-4-6")), A_MODEL)
add(C, "a-model-fullwidth-digit", A_PATH, j(anth("claude-sonnet-\uff14-6")), A_MODEL)
add(C, "a-model-upper", A_PATH, j(anth("Claude-Sonnet-4-6")), A_MODEL)
add(C, "a-model-dot-version", A_PATH, j(anth("claude-sonnet-4.6")), A_MODEL)
add(C, "a-fallback-model-unknown", A_PATH,
    j(anth(fallbacks=[{"model": "claude-sonnet-9-9"}])), A_MODEL)
add(C, "a-fallback-no-vision", A_PATH,
    j(anth(content=[IMG_A], fallbacks=[{"model": DEEPSEEK}])), A_CAP)
add(C, "a-fallback-MODEL-lookalike", A_PATH,
    j(anth(fallbacks=[{"model": SONNET, "MODEL": "claude-sonnet-9-9"}])), A_BAD)
add(C, "a-thinking-type-ENABLED-haiku", A_PATH,
    j(anth(HAIKU, thinking={"type": "ENABLED", "budget_tokens": 1024})), A_CAP)
add(C, "o-part-type-IMAGE_URL-deepseek", O_PATH,
    j(chat(DEEPSEEK, content=[dict(IMG_O, type="IMAGE_URL")])), O_CONTENT)
add(C, "o-role-TOOL-minimax", O_PATH,
    j({"model": MINIMAX, "messages": [{"role": "TOOL", "tool_call_id": "c", "content": "x"}]}),
    O_CAP)
add(C, "o-typeless-image-part-deepseek", O_PATH,
    j(chat(DEEPSEEK, content=[{"image_url": {"url": "https://e.com/a.png"}}])), O_CAP)
add(C, "o-data-url-video-in-image-part-gpt", O_PATH,
    j(chat(content=[{"type": "image_url", "image_url": {"url": "DATA:VIDEO/MP4;base64,AAAA"}}])),
    O_CAP)
add(C, "o-forced-tool-choice-minimax", O_PATH,
    j(chat(MINIMAX, tool_choice={"type": "function", "function": {"name": "f"}})), O_CAP)
add(C, "g-GoogleSearch-lookalike-minimax", G_PATH(MINIMAX), j(gem(tools=[{"GoogleSearch": {}}])),
    G_BAD)
add(C, "g-google-search-owned-by-other-vendor", G_PATH(DEEPSEEK),
    j(gem(tools=[{"googleSearch": {}}])), G_CAP)

# ---- §1 encodings -----------------------------------------------------------------------------
C = "encoding"
A_PRE = b'{"model":"claude-sonnet-4-6","max_tokens":1024,"messages":[{"role":"user","content":"'
A_POST = b'"}]}'
add(C, "invalid-utf8-ff-in-text", A_PATH, A_PRE + b"hi \xff there" + A_POST, A_BAD)
add(C, "invalid-utf8-in-key", A_PATH,
    b'{"model":"claude-sonnet-4-6",' + A_MSGS.encode() + b',"x\xfe":1}', A_BAD)
add(C, "overlong-2-byte-slash", A_PATH, A_PRE + b"\xc0\xaf" + A_POST, A_BAD)
add(C, "overlong-3-byte-slash", A_PATH, A_PRE + b"\xe0\x80\xaf" + A_POST, A_BAD)
add(C, "overlong-quote-c0a2", A_PATH, A_PRE + b"\xc0\xa2" + A_POST, A_BAD)
add(C, "utf8-encoded-high-surrogate", A_PATH, A_PRE + b"\xed\xa0\x80" + A_POST, A_BAD)
add(C, "cesu8-surrogate-pair", A_PATH, A_PRE + b"\xed\xa0\xbd\xed\xb8\x80" + A_POST, A_BAD)
add(C, "above-u10ffff", A_PATH, A_PRE + b"\xf4\x90\x80\x80" + A_POST, A_BAD)
add(C, "truncated-sequence", A_PATH, A_PRE + b"\xe4\xb8" + A_POST, A_BAD)
add(C, "lone-high-surrogate-escape", A_PATH, A_PRE + b"\\ud800" + A_POST, A_BAD)
add(C, "lone-low-surrogate-escape", A_PATH, A_PRE + b"\\udfff" + A_POST, A_BAD)
add(C, "high-surrogate-then-letter", A_PATH, A_PRE + b"\\ud800\\u0041" + A_POST, A_BAD)
add(C, "lone-surrogate-in-model-key", A_PATH,
    b'{"model":"claude-sonnet-4-6",' + A_MSGS.encode() + b',"\\ud800":1}', A_BAD)
add(C, "raw-nul-in-string", A_PATH, A_PRE + b"a\x00b" + A_POST, A_BAD)
add(C, "bom-utf8", A_PATH, b"\xef\xbb\xbf" + A_OK, A_BAD)
add(C, "utf16le-with-bom", A_PATH, b"\xff\xfe" + utf16(A_OK, "utf-16-le"), A_BAD)
add(C, "utf16be-no-bom", A_PATH, utf16(A_OK, "utf-16-be"), A_BAD)
add(C, "utf32le", A_PATH, utf16(A_OK, "utf-32"), A_BAD)
add(C, "o-invalid-utf8", O_PATH,
    b'{"model":"gpt-5-4","messages":[{"role":"user","content":"\x80"}]}', O_BAD)
add(C, "o-utf16le", O_PATH, utf16(O_OK, "utf-16-le"), O_BAD)
add(C, "g-invalid-utf8", G_PATH(),
    b'{"contents":[{"role":"user","parts":[{"text":"\xc3\x28"}]}]}', G_BAD)
add(C, "g-bom", G_PATH(), b"\xef\xbb\xbf" + G_OK, G_BAD)
add(C, "valid-surrogate-pair-escape-pass", A_PATH, A_PRE + b"\\ud83d\\ude00" + A_POST, PASS)
add(C, "non-ascii-raw-utf8-pass", A_PATH,
    j(anth(content="\u4f60\u597d\uff0c\u4e16\u754c \U0001f600 \u05e9\u05dc\u05d5\u05dd "
                   "caf\u00e9 \u212a \u017f")), PASS)
add(C, "escaped-model-value-pass", A_PATH,
    r('{"model":"\\u0063laude-sonnet-4\\u002d6",' + A_MSGS + "}"), PASS)
add(C, "escaped-slash-and-controls-pass", A_PATH,
    A_PRE + b"a\\/b\\n\\t\\u0000\\\"q\\\"" + A_POST, PASS)

# ---- §1 numbers outside I-JSON --------------------------------------------------------------
C = "numbers"
add(C, "nan", A_PATH, r('{"model":"claude-sonnet-4-6",' + A_MSGS + ',"temperature":NaN}'), A_BAD)
add(C, "infinity", A_PATH,
    r('{"model":"claude-sonnet-4-6",' + A_MSGS + ',"temperature":Infinity}'), A_BAD)
add(C, "minus-infinity", A_PATH,
    r('{"model":"claude-sonnet-4-6",' + A_MSGS + ',"temperature":-Infinity}'), A_BAD)
add(C, "1e400", A_PATH, r('{"model":"claude-sonnet-4-6",' + A_MSGS + ',"temperature":1e400}'),
    A_BAD)
add(C, "minus-1e400", A_PATH,
    r('{"model":"claude-sonnet-4-6",' + A_MSGS + ',"top_p":-1e400}'), A_BAD)
add(C, "1.8e308", A_PATH,
    r('{"model":"claude-sonnet-4-6",' + A_MSGS + ',"temperature":1.8e308}'), A_BAD)
add(C, "max-tokens-1e400", A_PATH,
    r('{"model":"claude-sonnet-4-6","max_tokens":1e400,'
      '"messages":[{"role":"user","content":"Hello"}]}'), A_BAD)
add(C, "int-5000-digits", A_PATH,
    r('{"model":"claude-sonnet-4-6",' + A_MSGS + ',"seed":' + "9" * 5000 + "}"), A_BAD)
add(C, "int-minus-5000-digits", A_PATH,
    r('{"model":"claude-sonnet-4-6",' + A_MSGS + ',"seed":-' + "1" * 5000 + "}"), A_BAD)
add(C, "int-2pow1024-minus-1", A_PATH,
    r('{"model":"claude-sonnet-4-6",' + A_MSGS + ',"seed":' + str(2**1024 - 1) + "}"), A_BAD)
add(C, "int-just-above-max-double", A_PATH,
    r('{"model":"claude-sonnet-4-6",' + A_MSGS + ',"seed":'
      + str(2**1024 - 2**970) + "}"), A_BAD)
add(C, "int-just-below-overflow-pass", A_PATH,
    r('{"model":"claude-sonnet-4-6",' + A_MSGS + ',"seed":'
      + str(2**1024 - 2**970 - 1) + "}"), PASS)
add(C, "o-nan", O_PATH, r('{"model":"gpt-5-4",' + O_MSGS + ',"temperature":NaN}'), O_BAD)
add(C, "g-infinity", G_PATH(),
    r("{" + G_CONTENTS + ',"generationConfig":{"temperature":Infinity}}'), G_BAD)
add(C, "o-max-completion-tokens-5e3-nano", O_PATH,
    r('{"model":"gpt-5-4-nano",' + O_MSGS + ',"max_completion_tokens":5e3}'), O_MAXTOK)
add(C, "a-max-tokens-1e4-sonnet", A_PATH,
    r('{"model":"claude-sonnet-4-6","max_tokens":1e4,'
      '"messages":[{"role":"user","content":"Hello"}]}'), A_MAXTOK)
add(C, "a-max-tokens-above-2pow53", A_PATH,
    r('{"model":"claude-sonnet-4-6","max_tokens":9007199254740993,'
      '"messages":[{"role":"user","content":"Hello"}]}'), A_MAXTOK)
add(C, "g-maxOutputTokens-string-2048-pass", G_PATH(),
    r("{" + G_CONTENTS + ',"generationConfig":{"maxOutputTokens":"2048"}}'), PASS)
add(C, "g-maxOutputTokens-string-70000", G_PATH(),
    r("{" + G_CONTENTS + ',"generationConfig":{"maxOutputTokens":"70000"}}'), G_MAXTOK)
add(C, "g-maxOutputTokens-fullwidth-digits", G_PATH(),
    r("{" + G_CONTENTS
      + ',"generationConfig":{"maxOutputTokens":"\uff17\uff10\uff10\uff10\uff10"}}'),
    G_BAD)
add(C, "g-maxOutputTokens-7e4-float", G_PATH(),
    r("{" + G_CONTENTS + ',"generationConfig":{"maxOutputTokens":7e4}}'), G_MAXTOK)
add(C, "g-maxOutputTokens-string-exponent", G_PATH(),
    r("{" + G_CONTENTS + ',"generationConfig":{"maxOutputTokens":"1e5"}}'), G_BAD)
add(C, "g-thinkingBudget-string-banana", G_PATH(BANANA),
    r("{" + G_CONTENTS + ',"generationConfig":{"thinkingConfig":{"thinkingBudget":"1024"}}}'),
    G_CAP)
add(C, "g-thinkingBudget-string-zero-banana-pass", G_PATH(BANANA),
    r("{" + G_CONTENTS + ',"generationConfig":{"thinkingConfig":{"thinkingBudget":"0"}}}'),
    PASS)
add(C, "temperature-1e308-in-range-pass", A_PATH,
    r('{"model":"claude-sonnet-4-6",' + A_MSGS + ',"temperature":1e308,"seed":'
      + str(2**1000) + "}"), PASS)

# ---- §1 nesting depth -------------------------------------------------------------------------
C = "depth"
add(C, "a-depth-128-pass", A_PATH, deep_a(128), PASS)
add(C, "a-depth-129", A_PATH, deep_a(129), A_BAD)
add(C, "a-depth-128-objects-pass", A_PATH, deep_a(128, "object"), PASS)
add(C, "a-depth-129-objects", A_PATH, deep_a(129, "object"), A_BAD)
add(C, "a-depth-200", A_PATH, deep_a(200), A_BAD)
add(C, "a-depth-201", A_PATH, deep_a(201), A_BAD)
add(C, "a-depth-100000-arrays", A_PATH, deep_a(100_000), A_BAD)
add(C, "a-depth-100000-objects", A_PATH, deep_a(100_000, "object"), A_BAD)
add(C, "a-depth-100000-unclosed", A_PATH,
    r('{"model":"claude-sonnet-4-6",' + A_MSGS + ',"x":' + "[" * 100_000), A_BAD)
add(C, "o-depth-128-pass", O_PATH,
    r('{"model":"gpt-5-4",' + O_MSGS + ',"x_deep":' + nest(127) + "}"), PASS)
add(C, "o-depth-129", O_PATH,
    r('{"model":"gpt-5-4",' + O_MSGS + ',"x_deep":' + nest(128) + "}"), O_BAD)
add(C, "g-depth-129", G_PATH(), r("{" + G_CONTENTS + ',"x_deep":' + nest(128) + "}"), G_BAD)
add(C, "g-depth-100000-root-array", G_PATH(), r("[" * 100_000 + "]" * 100_000), G_BAD)

# ---- §1 wrong types ---------------------------------------------------------------------------
C = "wrong-types"
for name, value in [("number", 4), ("list", [SONNET]), ("null", None), ("object", {"id": SONNET}),
                    ("true", True)]:
    add(C, f"a-model-{name}", A_PATH, j(anth(value)), A_BAD)
add(C, "a-stream-string-true", A_PATH, j(anth(stream="true")), A_BAD)
add(C, "a-stream-1", A_PATH, j(anth(stream=1)), A_BAD)
add(C, "a-stream-0", A_PATH, j(anth(MINIMAX, stream=0)), A_BAD)
add(C, "a-stream-null-pass", A_PATH, j(anth(MINIMAX, stream=None)), PASS)
add(C, "a-messages-object", A_PATH,
    j({"model": SONNET, "max_tokens": 10, "messages": {"role": "user", "content": "hi"}}), A_BAD)
add(C, "a-content-number", A_PATH, j(anth(content=42)), A_BAD)
add(C, "a-content-single-block-object", A_PATH, j(anth(DEEPSEEK, content=IMG_A)), A_BAD)
add(C, "a-max-tokens-string", A_PATH,
    j({"model": SONNET, "max_tokens": "1024", "messages": [{"role": "user", "content": "hi"}]}),
    A_BAD)
add(C, "a-max-tokens-bool", A_PATH,
    j({"model": SONNET, "max_tokens": True, "messages": [{"role": "user", "content": "hi"}]}),
    A_BAD)
add(C, "a-thinking-string", A_PATH, j(anth(HAIKU, thinking="enabled")), A_BAD)
add(C, "a-block-type-number", A_PATH, j(anth(content=[{"type": 1, "text": "x"}])), A_BAD)
add(C, "a-body-array", A_PATH, j([anth()]), A_BAD)
add(C, "a-body-string", A_PATH, j("claude-sonnet-4-6"), A_BAD)
add(C, "a-body-null", A_PATH, b"null", A_BAD)
add(C, "a-two-documents", A_PATH, A_OK + A_OK, A_BAD)
add(C, "a-trailing-garbage", A_PATH, A_OK + b"x", A_BAD)
add(C, "a-trailing-comma", A_PATH, A_OK[:-1] + b",}", A_BAD)
add(C, "a-comment", A_PATH, b"/* hi */" + A_OK, A_BAD)
add(C, "a-single-quotes", A_PATH, A_OK.replace(b'"', b"'"), A_BAD)
add(C, "o-model-number", O_PATH, j(chat(5)), O_BAD)
add(C, "o-stream-string-true", O_PATH, j(chat(stream="true")), O_BAD)
add(C, "o-stream-1-minimax", O_PATH, j(chat(MINIMAX, stream=1)), O_BAD)
add(C, "o-messages-object", O_PATH,
    j({"model": GPT, "messages": {"role": "user", "content": "hi"}}), O_BAD)
add(C, "o-content-number", O_PATH, j(chat(content=7)), O_BAD)
add(C, "o-max-completion-tokens-string", O_PATH, j(chat(max_completion_tokens="100")), O_BAD)
add(C, "o-tool-choice-number", O_PATH, j(chat(tool_choice=1)), O_BAD)
add(C, "o-logprobs-string", O_PATH, j(chat(NANO, logprobs="false")), O_BAD)
add(C, "g-contents-string", G_PATH(), j({"contents": "hello"}), G_BAD)
add(C, "g-parts-object", G_PATH(), j({"contents": [{"parts": VIDEO_G}]}), G_BAD)
add(C, "g-maxOutputTokens-bool", G_PATH(),
    j(gem(generationConfig={"maxOutputTokens": True})), G_BAD)
add(C, "g-body-model-mismatch", G_PATH(PRO),
    j(gem([VIDEO_G], model="models/gemini-3-flash")), G_BAD)
add(C, "g-body-model-number", G_PATH(), j(gem(model=5)), G_BAD)
add(C, "g-part-two-data-kinds", G_PATH(),
    j(gem([{"text": "hi", "inlineData": {"mimeType": "video/mp4", "data": "AAAA"}}])), G_BAD)
add(C, "g-body-model-same-pass", G_PATH(), j(gem(model="models/gemini-3-flash")), PASS)

# ---- §2 fixed routes ---------------------------------------------------------------------------
C = "routes"
for i, target in enumerate([
    "/v1/messages", "/v1/messages/", "//v1//messages", "/v1/./messages", "/v1/x/../messages",
    "/v1/x/%2e%2e/messages", "/v1/x/%2E%2E/messages", "/v1/%2e/messages", "/v1/%6Dessages",
    "/%76%31/%6d%65%73%73%61%67%65%73", "/v1%2Fmessages", "/v1/messages%2F", "/V1/MESSAGES",
    "/v1/Messages", "/v1/messages?beta=true", "/v1/messages?", "/v1/messages/.",
    "///v1/messages//", "/v1/messages/x/..",
]):
    add(C, f"a-{i:02d}-{target}", target, A_UNKNOWN, A_MODEL)
    add(C, f"a-{i:02d}-{target}-good-body-pass", target, A_OK, PASS)
add(C, "a-fragment", "/v1/messages#frag", A_UNKNOWN, A_MODEL)
add(C, "a-query-and-fragment", "/v1/messages?beta=true#frag", A_UNKNOWN, A_MODEL)
add(C, "a-absolute-form", "http://api.example.com/v1/messages", A_UNKNOWN, A_MODEL)
add(C, "a-absolute-form-https-query", "https://api.example.com:8443/v1/messages?beta=1",
    A_UNKNOWN, A_MODEL)
add(C, "a-encoded-fragment-mark", "/v1/messages%23frag", A_UNKNOWN, A_MODEL,
    chosen="a %23 decodes to '#', and a '#' left in scope['path'] is cut (§1); guarding it "
           "is the fail-closed reading")
add(C, "a-encoded-question-mark", "/v1/messages%3Fx=1", A_UNKNOWN, A_MODEL,
    chosen="scope['path'] '/v1/messages?x=1' is cut at '?' like a query; fail-closed")
add(C, "a-double-encoded-letter", "/v1/%256Dessages", A_UNKNOWN, A_MODEL,
    chosen="§1 says decode once; modelguard also decodes the server's already-decoded path, "
           "so a double-encoded route is guarded too (fail closed, harmless)")
add(C, "a-backslash", "/v1\\messages", A_UNKNOWN, A_MODEL,
    chosen="some routers treat '\\' as '/'; guarding it is the fail-closed reading",
    socket_expect={"httptools": SERVER_REJECT})
add(C, "a-count-tokens", "/v1/messages/count_tokens", A_UNKNOWN, A_MODEL)
add(C, "a-count-tokens-upper-slash", "/V1/Messages/Count_Tokens/", A_UNKNOWN, A_MODEL)
add(C, "a-count-tokens-no-output-cap-pass", "/v1/messages/count_tokens",
    j({"model": SONNET, "max_tokens": 999_999, "messages": [{"role": "user", "content": "hi"}]}),
    PASS)
add(C, "a-count-tokens-image-pass", "/v1/messages/count_tokens",
    j({"model": SONNET, "messages": [{"role": "user", "content": [IMG_A]}]}), PASS)
add(C, "a-count-tokens-image-deepseek", "/v1/messages/count_tokens",
    j({"model": DEEPSEEK, "messages": [{"role": "user", "content": [IMG_A]}]}), A_CAP)
add(C, "a-root-path-mounted", "/gateway/v1/messages", A_UNKNOWN, A_MODEL,
    root_path="/gateway", socket=False)
add(C, "a-root-path-old-style", "/v1/messages", A_UNKNOWN, A_MODEL, root_path="/gateway",
    scope_path="/v1/messages", socket=False)
add(C, "a-root-path-mounted-pass", "/gateway/v1/messages", A_OK, PASS,
    root_path="/gateway", socket=False)
for i, target in enumerate([
    "/v1/chat/completions", "/chat/completions", "/v1/chat/completions/", "//chat//completions//",
    "/v1/CHAT/COMPLETIONS", "/v1/chat/completions?api-version=2024-10-21",
    "/v1/chat/%63ompletions", "/v1/chat/x/../completions", "http://h/v1/chat/completions",
]):
    add(C, f"o-{i:02d}-{target}", target, O_UNKNOWN, O_MODEL)
    add(C, f"o-{i:02d}-{target}-good-body-pass", target, O_OK, PASS)
add(C, "o-images-gpt-5-4", "/v1/images/generations", j({"model": GPT, "prompt": "a cat"}),
    O_CAP)
add(C, "o-images-unknown-model", "/v1/Images/Generations/", j({"model": "dall-e-9", "prompt": "x"}),
    O_MODEL)
add(C, "o-images-gpt-image-2-pass", "/v1/images/generations",
    j({"model": "gpt-image-2", "prompt": "a cat", "size": "1024x1024"}), PASS)
add(C, "o-videos-sora-pass", "/v1/videos/generations", j({"model": "sora-2", "prompt": "x"}),
    PASS)
add(C, "o-videos-gpt-image-2", "/v1/videos/generations",
    j({"model": "gpt-image-2", "prompt": "x"}), O_CAP)
for name, target in [("batches", "/v1/messages/batches"), ("messagesx", "/v1/messagesx"),
                     ("v2", "/v2/messages"), ("models", "/v1/models"),
                     ("completions-legacy", "/v1/completions"), ("dotdot-out", "/v1/messages/..")]:
    add(C, f"unguarded-{name}-pass", target, A_UNKNOWN, PASS)

# ---- §2 Gemini routes and query strings -------------------------------------------------------
C = "routes-gemini"
for i, target in enumerate([
    G_PATH(), G_PATH(version="v1"), G_PATH(version="v1alpha"),
    G_PATH(method="streamGenerateContent") + "?alt=sse", G_PATH(method="countTokens"),
    "/v1beta/models/gemini-3-flash%3AgenerateContent",
    "/v1beta/models/gemini-3-flash%3agenerateContent",
    "/v1beta/models%2Fgemini-3-flash%3AgenerateContent",
    "/v1beta/models/gemini-3-flash:GENERATECONTENT",
    "/v1beta/models/gemini-3-1-pro/../gemini-3-flash:generateContent",
    "/v1beta/models/gemini-3-1-pro%2F..%2Fgemini-3-flash:generateContent",
    "/v1beta/models/gemini-3-flash:generateContent/",
    "/v1beta//models//gemini-3-flash:generateContent",
    "/v1beta/./models/gemini-3-flash:generateContent",
    G_PATH() + "?key=AIzaFAKE", G_PATH() + "?$alt=json;enum-encoding=int",
    G_PATH() + "?alt=sse", G_PATH() + "#frag", "http://generativelanguage.example/" + G_PATH()[1:],
    ]):
    add(C, f"video-flash-{i:02d}-{target}", target, G_VIDEO, G_CAP)
    add(C, f"image-flash-{i:02d}-{target}-pass", target, j(gem([{"text": "what"}, IMAGE_G])),
        PASS)
add(C, "no-models-prefix", "/v1beta/gemini-3-flash:generateContent", G_VIDEO, G_CAP,
    chosen="§1 names /{version}/models/{model}:method; the same path without 'models/' is "
           "also guarded (model read as written), the fail-closed reading")
add(C, "upper-case-MODELS-segment", "/V1BETA/MODELS/gemini-3-flash:generateContent", G_VIDEO,
    G_CAP)
add(C, "upper-case-MODELS-segment-pass", "/v1beta/Models/gemini-3-1-pro:generateContent",
    G_VIDEO, PASS)
add(C, "models-models-x", "/v1beta/models/models/gemini-3-flash:generateContent", G_OK, G_MODEL)
add(C, "tunedModels-x", "/v1beta/tunedModels/gemini-3-flash:generateContent", G_OK, G_MODEL)
add(C, "extra-colon", "/v1beta/models/gemini-3-flash:generateContent:generateContent", G_OK,
    G_MODEL)
add(C, "extra-colon-embed-then-generate",
    "/v1beta/models/gemini-3-flash:embedContent:generateContent", G_OK, G_MODEL)
add(C, "model-case-not-folded", "/v1beta/models/Gemini-3-Flash:generateContent", G_OK, G_MODEL)
add(C, "model-dot-dash-not-swapped", "/v1beta/models/gemini-3.1-pro:generateContent", G_OK,
    G_MODEL)
add(C, "encoded-model-unknown", "/v1beta/models/%67emini-9:generateContent", G_OK, G_MODEL)
add(C, "embedContent-pass", "/v1beta/models/gemini-3-flash:embedContent",
    j({"content": {"parts": [VIDEO_G]}}), PASS)
add(C, "batchEmbedContents-pass", "/v1beta/models/gemini-3-flash:batchEmbedContents",
    G_VIDEO, PASS)
add(C, "unknown-version-v2-pass", G_PATH(version="v2"), G_VIDEO, PASS)
add(C, "unknown-method-garbage-body-pass", "/v1beta/models/gemini-3-flash:predict",
    b"\xff\xfe not json", PASS)
add(C, "ct-multipart-system-param", G_PATH() + "?$ct=multipart/form-data%3B+boundary%3Dx",
    G_OK, G_415)
add(C, "ct-multipart-system-param-upper", G_PATH() + "?$ct=Multipart/Related", G_OK, G_415)
add(C, "stream-minimax", G_PATH(MINIMAX, "streamGenerateContent"), G_OK, G_CAP)
add(C, "stream-minimax-alt-json", G_PATH(MINIMAX, "streamGenerateContent") + "?alt=json",
    G_OK, G_CAP)
add(C, "countTokens-generateContentRequest-video",
    G_PATH(method="countTokens"),
    j({"generateContentRequest": {"model": "models/gemini-3-flash",
                                  "contents": [{"parts": [VIDEO_G]}]}}), G_CAP)
add(C, "generateContentRequest-in-generateContent", G_PATH(),
    j({"generateContentRequest": {"model": "models/gemini-3-flash",
                                  "contents": [{"parts": [{"text": "hi"}]}]}}), G_BAD)
add(C, "countTokens-both-contents-and-request", G_PATH(method="countTokens"),
    j({"contents": [{"parts": [{"text": "hi"}]}],
       "generateContentRequest": {"model": "models/gemini-3-flash",
                                  "contents": [{"parts": [VIDEO_G]}]}}), G_BAD)
add(C, "countTokens-request-other-model", G_PATH(PRO, "countTokens"),
    j({"generateContentRequest": {"model": "models/gemini-3-flash",
                                  "contents": [{"parts": [VIDEO_G]}]}}), G_BAD)
add(C, "countTokens-cap-ignored-pass", G_PATH(method="countTokens"),
    j({"contents": [{"parts": [{"text": "hi"}]}]}), PASS)
add(C, "video-pro-pass", G_PATH(PRO), G_VIDEO, PASS)
add(C, "stream-flash-alt-sse-pass", G_PATH(method="streamGenerateContent") + "?alt=sse", G_OK,
    PASS)
add(C, "raw-path-and-path-disagree", G_PATH(PRO), G_VIDEO, G_BAD,
    scope_path=G_PATH(FLASH), socket=False)
add(C, "youtube-fileUri-flash", G_PATH(),
    j(gem([{"fileData": {"fileUri": "https://YOUTU.BE/abc"}}])), G_CAP)
add(C, "uppercase-mime-flash", G_PATH(),
    j(gem([{"inlineData": {"mimeType": "VIDEO/MP4", "data": "AAAA"}}])), G_CAP)
add(C, "gs-uri-mp4-flash", G_PATH(), j(gem([{"fileData": {"fileUri": "gs://b/clip.MP4"}}])),
    G_CAP)

# ---- §2 method tricks ------------------------------------------------------------------------
C = "methods"
add(C, "post-lowercase", A_PATH, A_UNKNOWN, A_MODEL, method="post",
    socket_expect={"httptools": SERVER_REJECT})
add(C, "post-mixed-case", O_PATH, O_UNKNOWN, O_MODEL, method="Post",
    socket_expect={"httptools": SERVER_REJECT})
add(C, "post-lowercase-gemini", G_PATH(), G_VIDEO, G_CAP, method="post",
    socket_expect={"httptools": SERVER_REJECT})
for method in ("GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"):
    add(C, f"{method.lower()}-with-body-pass", A_PATH, A_UNKNOWN, PASS, method=method)
add(C, "get-gemini-with-body-pass", G_PATH(), G_VIDEO, PASS, method="GET")
add(C, "get-override-post", A_PATH, A_UNKNOWN, A_MODEL, method="GET",
    headers=(("X-HTTP-Method-Override", "POST"),))
add(C, "get-override-post-lower", A_PATH, A_UNKNOWN, A_MODEL, method="GET",
    headers=(("x-http-method-override", " post "),))
add(C, "get-x-http-method-post", O_PATH, O_UNKNOWN, O_MODEL, method="GET",
    headers=(("X-HTTP-Method", "POST"),))
add(C, "get-x-method-override-post", G_PATH(), G_VIDEO, G_CAP, method="GET",
    headers=(("X-Method-Override", "POST"),))
add(C, "put-override-post", A_PATH, A_UNKNOWN, A_MODEL, method="PUT",
    headers=(("X-HTTP-Method-Override", "POST"),))
add(C, "get-override-post-good-body-pass", A_PATH, A_OK, PASS, method="GET",
    headers=(("X-HTTP-Method-Override", "POST"),))
add(C, "post-override-get-still-guarded", A_PATH, A_UNKNOWN, A_MODEL,
    headers=(("X-HTTP-Method-Override", "GET"),))
add(C, "get-override-put-pass", A_PATH, A_UNKNOWN, PASS, method="GET",
    headers=(("X-HTTP-Method-Override", "PUT"),))

# ---- §3 body delivery -----------------------------------------------------------------------
C = "delivery"
add(C, "one-byte-chunks-pass", A_PATH, A_OK, PASS, chunks=1)
add(C, "one-byte-chunks-bad-model", A_PATH, A_UNKNOWN, A_MODEL, chunks=1)
add(C, "one-byte-chunks-gemini-video", G_PATH(), G_VIDEO, G_CAP, chunks=1)
add(C, "irregular-chunks-pass", O_PATH, j(chat(content="x" * 5000)), PASS, chunks=(7, 1, 300))
add(C, "empty-messages-between-pass", A_PATH, A_OK, PASS, chunks=(0, 5, 0, 0, 11))
add(C, "chunk-splits-utf8-sequence-pass", A_PATH, j(anth(content="\u00e9" * 50)), PASS, chunks=3)
add(C, "chunk-splits-escape-dup", A_PATH,
    r('{"model":"claude-sonnet-9-9","\\u006dodel":"claude-sonnet-4-6",' + A_MSGS + "}"), A_BAD,
    chunks=2)
add(C, "zero-byte-anthropic", A_PATH, b"", A_BAD)
add(C, "zero-byte-openai", O_PATH, b"", O_BAD)
add(C, "zero-byte-gemini", G_PATH(), b"", G_BAD)
add(C, "zero-byte-no-content-length", A_PATH, b"", A_BAD, content_length=None)
add(C, "whitespace-only", A_PATH, b" \r\n\t ", A_BAD)
add(C, "content-length-bigger-pass", A_PATH, A_OK, PASS, content_length=len(A_OK) + 50,
    socket_expect={"*": NO_RESPONSE})
add(C, "content-length-bigger-bad", A_PATH, A_UNKNOWN, A_MODEL,
    content_length=len(A_UNKNOWN) + 1, socket_expect={"*": NO_RESPONSE})
add(C, "content-length-smaller-pass", A_PATH, A_OK, PASS, content_length=len(A_OK) - 10,
    socket_expect={"*": A_BAD})
add(C, "content-length-smaller-bad", O_PATH, O_UNKNOWN, O_MODEL,
    content_length=len(O_UNKNOWN) - 1, socket_expect={"*": O_BAD})
add(C, "content-length-zero-with-body", A_PATH, A_UNKNOWN, A_MODEL, content_length=0,
    socket_expect={"*": A_BAD})
add(C, "content-length-absent-pass", A_PATH, A_OK, PASS, content_length=None)
add(C, "content-length-absent-bad", A_PATH, A_UNKNOWN, A_MODEL, content_length=None)
add(C, "chunked-one-byte-pass", G_PATH(), G_OK, PASS, content_length=None, chunks=1)
add(C, "chunked-one-byte-bad", G_PATH(), G_VIDEO, G_CAP, content_length=None, chunks=1)
add(C, "content-length-not-a-number", A_PATH, A_UNKNOWN, A_BAD, content_length="12abc",
    socket_expect={"*": SERVER_REJECT})
add(C, "content-length-negative", A_PATH, A_OK, A_BAD, content_length="-1",
    socket_expect={"*": SERVER_REJECT})
add(C, "disconnect-after-10-bytes", A_PATH, A_UNKNOWN, NO_RESPONSE, disconnect_after=10)
add(C, "disconnect-before-body", A_PATH, A_OK, NO_RESPONSE, disconnect_after=0)
add(C, "disconnect-one-byte-short", O_PATH, O_OK, NO_RESPONSE, disconnect_after=len(O_OK) - 1,
    chunks=16)
add(C, "disconnect-chunked-mid-body", G_PATH(), G_VIDEO, NO_RESPONSE, disconnect_after=20,
    content_length=None, chunks=5)

# ---- §3 compression ---------------------------------------------------------------------------
C = "compression"
CE = "Content-Encoding"
add(C, "gzip-pass", A_PATH, gz(A_OK), PASS, headers=((CE, "gzip"),))
add(C, "gzip-bad-model", A_PATH, gz(A_UNKNOWN), A_MODEL, headers=((CE, "gzip"),))
add(C, "gzip-openai-bad-model", O_PATH, gz(O_UNKNOWN), O_MODEL, headers=((CE, "gzip"),))
add(C, "gzip-gemini-video", G_PATH(), gz(G_VIDEO), G_CAP, headers=((CE, "gzip"),))
add(C, "gzip-dup-key-inside", A_PATH,
    gz(r('{"model":"claude-sonnet-9-9","model":"claude-sonnet-4-6",' + A_MSGS + "}")), A_BAD,
    headers=((CE, "gzip"),))
add(C, "deflate-zlib-pass", A_PATH, zl(A_OK), PASS, headers=((CE, "deflate"),))
add(C, "deflate-zlib-bad-model", A_PATH, zl(A_UNKNOWN), A_MODEL, headers=((CE, "deflate"),))
add(C, "deflate-raw-not-zlib", A_PATH, raw_deflate(A_OK), A_BAD, headers=((CE, "deflate"),))
add(C, "GZIP-upper-bad-model", A_PATH, gz(A_UNKNOWN), A_MODEL, headers=((CE, "GZIP"),))
add(C, "Gzip-mixed-pass", A_PATH, gz(A_OK), PASS, headers=((CE, " Gzip "),))
add(C, "DEFLATE-upper-bad", O_PATH, zl(O_UNKNOWN), O_MODEL, headers=((CE, "DEFLATE"),))
# decisions.md §11: more than one layer of content coding is a 415, whatever the body.
add(C, "stacked-gzip-gzip-bad", A_PATH, gz(gz(A_UNKNOWN)), A_415, headers=((CE, "gzip, gzip"),))
add(C, "stacked-gzip-gzip-good-body", A_PATH, gz(gz(A_OK)), A_415, headers=((CE, "gzip, gzip"),))
add(C, "stacked-two-headers-gzip-deflate", A_PATH, zl(gz(A_UNKNOWN)), A_415,
    headers=((CE, "gzip"), (CE, "deflate")))
add(C, "stacked-deflate-gzip-one-header", G_PATH(), gz(zl(G_VIDEO)), G_415,
    headers=((CE, "deflate, gzip"),))
add(C, "gzip-identity", A_PATH, gz(A_UNKNOWN), A_MODEL, headers=((CE, "gzip, identity"),))
add(C, "identity-bad", A_PATH, A_UNKNOWN, A_MODEL, headers=((CE, "identity"),))
add(C, "identity-pass", A_PATH, A_OK, PASS, headers=((CE, "identity"),))
add(C, "empty-encoding-bad", A_PATH, A_UNKNOWN, A_MODEL, headers=((CE, ""),))
add(C, "commas-only-encoding-bad", A_PATH, A_UNKNOWN, A_MODEL, headers=((CE, " , ,"),))
add(C, "gzip-with-params", A_PATH, gz(A_OK), A_415, headers=((CE, "gzip;q=1"),),
    chosen="a content coding with parameters is not 'gzip'; an unreadable coding is a 415")
add(C, "br", A_PATH, A_UNKNOWN, A_415, headers=((CE, "br"),))
add(C, "zstd", O_PATH, O_UNKNOWN, O_415, headers=((CE, "zstd"),))
add(C, "compress", G_PATH(), G_VIDEO, G_415, headers=((CE, "compress"),))
add(C, "gzip-then-br", A_PATH, gz(A_UNKNOWN), A_415, headers=((CE, "gzip, br"),))
add(C, "br-good-body-still-415", A_PATH, A_OK, A_415, headers=((CE, "br"),))
add(C, "x-gzip-bad", A_PATH, gz(A_UNKNOWN), A_MODEL, headers=((CE, "x-gzip"),),
    chosen="§8 names gzip and deflate only; RFC 9110 §8.4.1.3 makes x-gzip an alias of gzip, "
           "so we expect it decoded and inspected (a 415 would be equally safe)")
add(C, "five-stacked-gzip", A_PATH, gz(gz(gz(gz(gz(A_OK))))), A_415,
    headers=((CE, "gzip, gzip, gzip, gzip, gzip"),))
add(C, "corrupt-gzip", A_PATH, gz(A_OK)[:10] + b"\x00garbage\xff" + gz(A_OK)[18:], A_BAD,
    headers=((CE, "gzip"),))
add(C, "truncated-gzip", A_PATH, gz(A_OK)[:-12], A_BAD, headers=((CE, "gzip"),))
add(C, "gzip-trailing-garbage", A_PATH, gz(A_OK) + b"trailing", A_BAD, headers=((CE, "gzip"),))
add(C, "gzip-multi-member", A_PATH, gz(A_OK[:20]) + gz(A_OK[20:]), A_BAD,
    headers=((CE, "gzip"),),
    chosen="a multi-member gzip stream is legal gzip; modelguard refuses the bytes after the "
           "first member (400) rather than decode members it may read differently: fail closed")
add(C, "gzip-without-header", A_PATH, gz(A_OK), A_BAD)
add(C, "gzip-bad-crc", A_PATH, gz(A_OK)[:-8] + b"\x00\x00\x00\x00" + gz(A_OK)[-4:], A_BAD,
    headers=((CE, "gzip"),))
add(C, "gzip-bad-isize", A_PATH, gz(A_OK)[:-4] + b"\x01\x00\x00\x00", A_BAD,
    headers=((CE, "gzip"),))
add(C, "deflate-preset-dictionary", A_PATH, preset_dict_deflate(A_OK), A_BAD,
    headers=((CE, "deflate"),))
add(C, "gzip-inflates-to-exactly-limit-pass", A_PATH, at_limit_gzip, PASS,
    headers=((CE, "gzip"),))
add(C, "gzip-header-plain-body", A_PATH, A_OK, A_BAD, headers=((CE, "gzip"),))
add(C, "gzip-empty-body", A_PATH, b"", A_BAD, headers=((CE, "gzip"),))
add(C, "gzip-of-empty", A_PATH, gz(b""), A_BAD, headers=((CE, "gzip"),))
add(C, "gzip-one-byte-chunks-bad", A_PATH, gz(A_UNKNOWN), A_MODEL, headers=((CE, "gzip"),),
    chunks=1)
add(C, "bomb-gzip", A_PATH, bomb_gzip, A_413, headers=((CE, "gzip"),))
add(C, "bomb-deflate", O_PATH, bomb_deflate, O_413, headers=((CE, "deflate"),))
add(C, "bomb-stacked-gzip", G_PATH(), bomb_stacked, G_415, headers=((CE, "gzip, gzip"),))

# ---- §3 size limit ----------------------------------------------------------------------------
C = "limits"
add(C, "over-limit-with-content-length", A_PATH, over_limit, A_413, chunks=MiB,
    headers=(("Expect", "100-continue"),))
add(C, "over-limit-expect-continue-gemini", G_PATH(), over_limit, G_413, chunks=MiB,
    headers=(("Expect", "100-continue"),))
add(C, "over-limit-chunked", A_PATH, over_limit, A_413, content_length=None, chunks=MiB)
add(C, "over-limit-declared-only", A_PATH, A_OK, A_413, content_length=40 * MiB,
    chosen="a declared Content-Length above max_body_bytes is refused before reading "
           "(the body can only be too large or the header a lie)")
add(C, "at-limit-pass", A_PATH, at_limit, PASS, chunks=MiB)

# ---- §3 media types ---------------------------------------------------------------------------
C = "media-types"
add(C, "missing-content-type-bad", A_PATH, A_UNKNOWN, A_MODEL, content_type=None)
add(C, "missing-content-type-pass", A_PATH, A_OK, PASS, content_type=None)
add(C, "text-plain-bad", A_PATH, A_UNKNOWN, A_MODEL, content_type="text/plain")
add(C, "text-plain-gemini", G_PATH(), G_VIDEO, G_CAP, content_type="text/plain; charset=utf-8")
add(C, "form-urlencoded-json-body", O_PATH, O_UNKNOWN, O_415,
    content_type="application/x-www-form-urlencoded")
add(C, "form-urlencoded-form-body", O_PATH, b"model=gpt-9&messages=hi", O_415,
    content_type="application/x-www-form-urlencoded")
add(C, "octet-stream-bad", A_PATH, A_UNKNOWN, A_MODEL, content_type="application/octet-stream")
add(C, "charset-utf16-utf16-body", A_PATH, b"\xff\xfe" + utf16(A_OK, "utf-16-le"), A_415,
    content_type="application/json; charset=utf-16")
add(C, "charset-utf16-utf16be-body-no-bom", G_PATH(), utf16(G_OK, "utf-16-be"), G_415,
    content_type="application/json; charset=utf-16")
add(C, "charset-utf16-utf8-body", A_PATH, A_OK, A_415,
    content_type="application/json; charset=utf-16")
add(C, "multipart-form-data", A_PATH, A_OK, A_415,
    content_type="multipart/form-data; boundary=xyz")
add(C, "multipart-upper", O_PATH, O_OK, O_415, content_type="Multipart/Form-Data; boundary=x")
add(C, "multipart-mixed-gemini", G_PATH(), G_OK, G_415, content_type="multipart/related")
add(C, "multipart-leading-space", A_PATH, A_OK, A_415, content_type="  multipart/form-data")
add(C, "two-content-types-one-multipart", A_PATH, A_OK, A_415,
    headers=(("Content-Type", "multipart/form-data; boundary=x"),))
add(C, "json-suffix-type-bad", A_PATH, A_UNKNOWN, A_MODEL, content_type="application/vnd.api+json")

# ---- §1 the decoder's own corners: long strings, SIMD boundaries, escapes ------------------
C = "decoder-corners"
LONG = "a" * 700


def long_text(insert: bytes, at: int, key: str = "content") -> bytes:
    """An Anthropic body whose message ``content`` (a long string) has ``insert`` at ``at``."""
    text = b"a" * at + insert + b"b" * 40
    return (b'{"model":"claude-sonnet-4-6","max_tokens":1024,"messages":[{"role":"user","'
            + key.encode() + b'":"' + text + b'"}]}')


for at in (0, 15, 16, 17, 31, 33, 511, 512, 513, 1000):
    add(C, f"invalid-utf8-long-content-at-{at}", A_PATH, long_text(b"\xff", at), A_BAD)
for at in (14, 511, 600):
    add(C, f"lone-surrogate-long-content-at-{at}", A_PATH, long_text(b"\\udc00", at), A_BAD)
    add(C, f"control-char-long-content-at-{at}", A_PATH, long_text(b"\x1f", at), A_BAD)
    add(C, f"bad-escape-long-content-at-{at}", A_PATH, long_text(b"\\x41", at), A_BAD)
    add(C, f"overlong-long-content-at-{at}", A_PATH, long_text(b"\xe0\x80\xaf", at), A_BAD)
add(C, "unterminated-long-content", A_PATH,
    b'{"model":"claude-sonnet-4-6","max_tokens":1024,"messages":[{"role":"user","content":"'
    + b"a" * 2000, A_BAD)
for at in (510, 511, 512, 513):
    add(C, f"multibyte-straddles-cut-{at}-pass", A_PATH, long_text("\u20ac\U0001f600".encode(), at),
        PASS)
    add(C, f"escape-straddles-cut-{at}-pass", A_PATH, long_text(b'\\u00e9\\"\\n\\ud83d\\ude00', at),
        PASS)
add(C, "dup-key-after-long-string", A_PATH,
    r('{"model":"claude-sonnet-9-9","system":"' + LONG + '","model":"claude-sonnet-4-6",'
      + A_MSGS + "}"), A_BAD)
add(C, "dup-long-key", A_PATH,
    r('{"model":"claude-sonnet-4-6",' + A_MSGS + ',"' + LONG + '":1,"' + LONG + '":2}'), A_BAD)
add(C, "keys-differ-after-nul-pass", A_PATH,
    r('{"model":"claude-sonnet-4-6",' + A_MSGS + ',"x\\u0000a":1,"x\\u0000b":2}'), PASS)
add(C, "model-with-nul-suffix-unknown", A_PATH,
    r('{"model":"claude-sonnet-4-6\\u0000",' + A_MSGS + "}"), A_MODEL)
add(C, "invalid-utf8-in-long-unknown-key-value", A_PATH,
    b'{"model":"claude-sonnet-4-6",' + A_MSGS.encode() + b',"x_note":"' + b"n" * 40
    + b'\xc3"}', A_BAD)
add(C, "invalid-utf8-in-long-key", A_PATH,
    b'{"model":"claude-sonnet-4-6",' + A_MSGS.encode() + b',"' + b"k" * 40 + b'\xed\xbf\xbf":1}',
    A_BAD)
add(C, "del-char-in-string-pass", A_PATH, long_text(b"\x7f", 20), PASS)
for name, number in [("plus-sign", "+1"), ("leading-zero", "01"), ("bare-dot", ".5"),
                     ("trailing-dot", "1."), ("bare-exponent", "1e"), ("exponent-sign-only", "1e+"),
                     ("minus-only", "-"), ("hex", "0x10"), ("minus-space", "- 1")]:
    add(C, f"number-{name}", A_PATH,
        r('{"model":"claude-sonnet-4-6",' + A_MSGS + ',"temperature":' + number + "}"), A_BAD)
for name, number in [("1E400-upper", "1E400"), ("1e+400", "1e+400"),
                     ("long-mantissa-overflow", "1" * 400 + ".0"),
                     ("huge-exponent", "1e99999999999999999999")]:
    add(C, f"number-{name}", A_PATH,
        r('{"model":"claude-sonnet-4-6",' + A_MSGS + ',"temperature":' + number + "}"), A_BAD)
for name, number in [("tiny-exponent", "1e-99999999999999999999"), ("minus-zero", "-0.0"),
                     ("19-digit-int", "1234567890123456789"), ("300-digit-int", "1" * 300),
                     ("long-fraction", "0." + "3" * 5000)]:
    add(C, f"number-{name}-pass", A_PATH,
        r('{"model":"claude-sonnet-4-6",' + A_MSGS + ',"temperature":' + number + "}"), PASS)
for name, literal in [("True", "True"), ("nul", "nul"), ("nulls", "nulls"), ("truex", "truex")]:
    add(C, f"literal-{name}", A_PATH,
        r('{"model":"claude-sonnet-4-6",' + A_MSGS + ',"stream":' + literal + "}"), A_BAD)
add(C, "nul-after-document", A_PATH, A_OK + b"\x00", A_BAD)
add(C, "form-feed-whitespace", A_PATH, A_OK.replace(b",", b",\x0c", 1), A_BAD)
add(C, "vertical-tab-whitespace", A_PATH, b"\x0b" + A_OK, A_BAD)
add(C, "nbsp-whitespace", A_PATH, "\u00a0".encode() + A_OK, A_BAD)
add(C, "data-url-mime-padded-100-video", O_PATH,
    j(chat(content=[{"type": "image_url",
                     "image_url": {"url": "data:" + " " * 100 + "video/mp4;base64,AAAA"}}])),
    O_CAP)
add(C, "data-url-mime-padded-600-video", O_PATH,
    j(chat(content=[{"type": "image_url",
                     "image_url": {"url": "data:" + " " * 600 + "video/mp4;base64,AAAA"}}])),
    O_CAP)
add(C, "file-data-mime-padded-600-video", O_PATH,
    j(chat(content=[{"type": "file", "file": {"filename": "a.mp4",
                     "file_data": "data:" + " " * 600 + "video/mp4;base64,AAAA"}}])),
    O_CAP)
add(C, "data-url-long-params-video", O_PATH,
    j(chat(content=[{"type": "image_url", "image_url": {
        "url": "data:video/mp4;name=" + "n" * 700 + ";base64,AAAA"}}])), O_CAP)
add(C, "video-url-long-data-url-audio-gpt5", O_PATH,
    j(chat(content=[{"type": "image_url", "image_url": {
        "url": "data:audio/wav;base64," + "A" * 4000}}])), O_CAP)

# ---- balance: valid requests that must arrive unchanged -------------------------------------
C = "pass"
add(C, "a-minimal", A_PATH, A_OK, PASS)
add(C, "a-unknown-top-level-keys", A_PATH,
    j(anth(temperature=0.2, top_k=5, metadata={"user_id": "u1"}, x_future_param={"a": [1, 2]},
           service_tier="auto")), PASS)
add(C, "a-pretty-printed-crlf", A_PATH,
    json.dumps(anth(), indent=4).replace("\n", "\r\n").encode() + b"\r\n", PASS)
add(C, "a-image-sonnet", A_PATH, j(anth(content=[{"type": "text", "text": "what?"}, IMG_A])),
    PASS)
add(C, "a-thinking-sonnet", A_PATH,
    j(anth(thinking={"type": "enabled", "budget_tokens": 1024}, max_tokens=4096)), PASS)
add(C, "a-thinking-disabled-haiku", A_PATH, j(anth(HAIKU, thinking={"type": "disabled"})), PASS)
add(C, "a-text-document-deepseek", A_PATH, j(anth(DEEPSEEK, content=[TXT_DOC_A])), PASS)
add(C, "a-tool-history-sonnet", A_PATH, j({
    "model": SONNET, "max_tokens": 512,
    "tools": [{"name": "get_weather", "description": "w",
               "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
    "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "get_weather",
                                           "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                      "content": "18C"}]}]}), PASS)
add(C, "a-stream-sonnet", A_PATH, j(anth(stream=True)), PASS)
add(C, "a-system-blocks-cache-control", A_PATH,
    j(anth(system=[{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}])),
    PASS)
add(C, "a-non-ascii-everywhere", A_PATH,
    j(anth(system="\u0417\u0434\u0440\u0430\u0432\u0441\u0442\u0432\u0443\u0439",
           content=[{"type": "text", "text": "\u3053\u3093\u306b\u3061\u306f \U0001f30d"}],
           metadata={"user_id": "\u00fc\u00df\u00e9r"})), PASS)
add(C, "o-minimal", O_PATH, O_OK, PASS)
add(C, "o-image-gpt", O_PATH, j(chat(content=[{"type": "text", "text": "what?"}, IMG_O])), PASS)
add(C, "o-stream-false-minimax", O_PATH, j(chat(MINIMAX, stream=False)), PASS)
add(C, "o-tools-choice-none-minimax", O_PATH,
    j(chat(MINIMAX, tools=[{"type": "function", "function": {"name": "f"}}], tool_choice="none")),
    PASS)
add(C, "o-json-object-minimax", O_PATH, j(chat(MINIMAX, response_format={"type": "json_object"})),
    PASS)
add(C, "o-unknown-keys-and-non-ascii", O_PATH,
    j(chat(NANO, content="\u00bfQu\u00e9 tal? \u2603", temperature=1, user="\u00e5",
           x_gateway={"route": "eu"}, max_completion_tokens=4096)), PASS)
add(C, "o-chat-without-v1", "/chat/completions", O_OK, PASS)
add(C, "g-minimal", G_PATH(), G_OK, PASS)
add(C, "g-unknown-keys", G_PATH(),
    j(gem(safetySettings=[{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}],
          labels={"team": "x"})), PASS)
add(C, "g-thinking-off-banana", G_PATH(BANANA),
    j(gem(generationConfig={"thinkingConfig": {"thinkingBudget": 0}})), PASS)
add(C, "g-image-flash-non-ascii", G_PATH(),
    j(gem([{"text": "\u00bfqu\u00e9 es esto? \u72ac"}, IMAGE_G],
          generationConfig={"maxOutputTokens": 65536})), PASS)
add(C, "g-v1-system-instruction", G_PATH(version="v1"),
    j(gem(systemInstruction={"parts": [{"text": "terse"}]})), PASS)

# ============================================================================================
# Second round (decisions.md §11): the readings a fresh attacker walked around
# ============================================================================================

AUDIO_MODEL = "gpt-5-4-audio"  # audio, no vision
DOUBAO = "doubao-seed-2.0-pro"  # vision and video, no audio

# ---- §11 media types on JSON routes --------------------------------------------------------
C = "r2-media-types"
for i, ctype in enumerate([
    "application/x-www-form-urlencoded", "APPLICATION/X-WWW-FORM-URLENCODED",
    "application/x-www-form-urlencoded; charset=utf-8", " application/x-www-form-urlencoded ",
    "multipart/form-data; boundary=x", "multipart/mixed", "MULTIPART/RELATED; type=json",
    "application/json; charset=utf-7", "application/json; charset=UTF-16LE",
    "application/json; charset=iso-8859-1", "application/json; charset=\"utf-16\"",
    "application/json;charset=latin1", "application/json; CHARSET=ucs-2",
    "text/plain; charset=windows-1252", "application/json; charset=",
    "application/json, multipart/form-data",
]):
    add(C, f"a-415-{i:02d}-{ctype}", A_PATH, A_OK, A_415, content_type=ctype)
    add(C, f"o-415-{i:02d}-{ctype}", O_PATH, O_OK, O_415, content_type=ctype)
    add(C, f"g-415-{i:02d}-{ctype}", G_PATH(), G_OK, G_415, content_type=ctype)
for i, ctype in enumerate([
    "application/json", "application/json; charset=utf-8", "application/json; charset=UTF-8",
    "application/json; charset=utf8", "application/json;charset=\"utf-8\"",
    "application/json ; Charset = Utf-8", "text/plain", "text/plain; charset=utf-8",
    "application/octet-stream", "application/vnd.api+json; charset=utf-8", None,
]):
    add(C, f"a-pass-{i:02d}-{ctype}", A_PATH, A_OK, PASS, content_type=ctype)
    add(C, f"a-bad-{i:02d}-{ctype}", A_PATH, A_UNKNOWN, A_MODEL, content_type=ctype)
add(C, "two-content-types-one-form", O_PATH, O_OK, O_415,
    headers=(("Content-Type", "application/x-www-form-urlencoded"),))
add(C, "two-content-types-one-utf16", A_PATH, A_OK, A_415,
    headers=(("Content-Type", "application/json; charset=utf-16"),))
add(C, "ct-query-form", G_PATH() + "?$ct=application/x-www-form-urlencoded", G_OK, G_415)
add(C, "ct-query-charset", G_PATH() + "?%24ct=application/json%3B%20charset%3Dutf-16", G_OK,
    G_415)
add(C, "ct-query-json-pass", G_PATH() + "?$ct=application/json", G_OK, PASS)
add(C, "form-on-unguarded-route-pass", "/v1/files", b"purpose=x", PASS,
    content_type="application/x-www-form-urlencoded")

# ---- §11 Content-Length read as ASCII digits only -------------------------------------------
C = "r2-content-length"
for i, value in enumerate(["\u00b2", "\u0661\u0662", "\uff11\uff12", "1_0", "0x10", "+12", "1e3",
                           "12.0", "-0", "", " ", "12 34", "1\t2", "\u00b9\u00b2\u00b3"]):
    add(C, f"invalid-{i:02d}-{ascii(value)}", A_PATH, A_OK, A_BAD,
        content_length=value.encode().decode("latin-1"),
        socket=value.isascii(),
        socket_expect={"*": SERVER_REJECT})
add(C, "leading-zeros-pass", A_PATH, A_OK, PASS, content_length="0" * 40 + str(len(A_OK)),
    socket_expect={"h11": SERVER_REJECT})
add(C, "few-leading-zeros-pass", A_PATH, A_OK, PASS, content_length="00" + str(len(A_OK)))
add(C, "leading-zeros-bad-model", A_PATH, A_UNKNOWN, A_MODEL,
    content_length="000" + str(len(A_UNKNOWN)))
add(C, "huge-digits-413", A_PATH, A_OK, A_413, content_length="9" * 30, socket=False)
add(C, "twice-identical-pass", A_PATH, A_OK, PASS, content_length=None,
    headers=(("Content-Length", str(len(A_OK))), ("Content-Length", str(len(A_OK)))),
    socket=False)
add(C, "twice-different", A_PATH, A_OK, A_BAD, content_length=None,
    headers=(("Content-Length", str(len(A_OK))), ("Content-Length", str(len(A_OK) + 1))),
    socket=False)  # over a socket both uvicorn parsers refuse it themselves
add(C, "list-different", O_PATH, O_OK, O_BAD, content_length=f"{len(O_OK)}, {len(O_OK) + 5}",
    socket_expect={"*": SERVER_REJECT})
add(C, "list-identical-pass", O_PATH, O_OK, PASS, content_length=f"{len(O_OK)}, {len(O_OK)}",
    socket=False)
add(C, "list-same-value-leading-zero-pass", G_PATH(), G_OK, PASS,
    content_length=f"{len(G_OK)},0{len(G_OK)}", socket=False)

# ---- §11 routes: Unicode folding, format suffix, network-path reference ---------------------
C = "r2-routes"
for i, target in enumerate([
    "/v1/me%C5%BFsages", "/v1/mes%C5%BFages", "/V1/ME%C5%BF%C5%BFAGES", "/v1/%EF%BD%8Dessages",
    "/v1/messages.json", "/v1/messages.JSON", "/v1/messages.xml", "/v1/messages/.json",
    "/v1/messages.json/", "/v1/messages.json?beta=true", "//host/v1/messages",
    "//api.example.com/v1/messages?x=1", "/\\host/v1/messages", "///host/v1/messages",
    "http://a//b/v1/messages", "/v1/messages/count_tokens.json", "/v1%EF%BC%8Fmessages",
    "/%EF%BC%8Fv1/messages", "//host/v1/me%C5%BFsages.json",
]):
    add(C, f"a-{i:02d}-{target}", target, A_UNKNOWN, A_MODEL,
        socket_expect={"httptools": SERVER_REJECT} if "\\" in target else {})
for i, target in enumerate([
    "/v1/chat/completions.json", "/v1/cHat/completion%C5%BF", "//gw/v1/chat/completions",
    "/\\gw/chat/completions", "/chat/completions.json", "/v1/chat/completion%C5%BF.json",
]):
    add(C, f"o-{i:02d}-{target}", target, O_UNKNOWN, O_MODEL,
        socket_expect={"httptools": SERVER_REJECT} if "\\" in target else {})
for i, target in enumerate([
    "/v1beta/models/gemini-3-flash:generateContent.json",
    "/v1beta/models/gemini-3-flash:%C5%BFtreamGenerateContent",
    "//host/v1beta/models/gemini-3-flash:generateContent",
    "/\\host/v1beta/models/gemini-3-flash:generateContent",
    "/v1beta/models/gemini-3-flash:countTokens.json",
    "/v1beta/models/gemini-3-flash:countTo%E2%84%AAens",
]):
    body = G_VIDEO if "countTokens" not in target else j(gem([VIDEO_G]))
    add(C, f"g-{i:02d}-{target}", target, body, G_CAP,
        socket_expect={"httptools": SERVER_REJECT} if "\\" in target else {})
add(C, "fullwidth-models-segment-ambiguous",
    "/v1beta/%EF%BD%8Dodels/gemini-3-flash:generateContent", G_VIDEO, G_BAD,
    chosen="read plainly the model is 'ｍodels/gemini-3-flash', folded it is 'gemini-3-flash': "
           "two readings, two models, so the path is refused as ambiguous (400)")
add(C, "kelvin-count-tokens", "/v1/messages/count_to%E2%84%AAens", A_UNKNOWN, A_MODEL)
add(C, "kelvin-sign-in-model-segment-ambiguous",
    "/v1beta/models/gemini-3-flash%E2%84%AA:generateContent", G_VIDEO, G_BAD)
add(C, "suffix-good-body-pass", "/v1/messages.json", A_OK, PASS)
add(C, "network-good-body-pass", "//host/v1/messages", A_OK, PASS)
add(C, "unicode-good-body-pass", "/v1/me%C5%BFsages", A_OK, PASS)
add(C, "network-chat-agree-pass", "//v1/chat/completions", O_OK, PASS)
add(C, "network-dot-segments-chat", "//v1/messages/../chat/completions", O_UNKNOWN, O_MODEL)
for name, target in [("suffix-on-unguarded", "/v1/models.json"),
                     ("embed-suffix", "/v1beta/models/gemini-3-flash:embedContent.json"),
                     ("network-unguarded", "//host/v1/files"),
                     ("two-suffixes", "/v1/messages.a.b")]:
    add(C, f"unguarded-{name}-pass", target, A_UNKNOWN, PASS)

# The routes of routes.md get the same readings.
R_OK = j({"model": GPT, "input": "hi"})
R_UNKNOWN = j({"model": "gpt-9", "input": "hi"})
for i, target in enumerate(["/v1/responses.json", "//host/v1/responses", "/v1/re%C5%BFponses",
                            "/\\gw/responses", "/v1/responses/input_token%C5%BF"]):
    add(C, f"responses-{i:02d}-{target}", target, R_UNKNOWN, O_MODEL,
        socket_expect={"httptools": SERVER_REJECT} if "\\" in target else {})
add(C, "responses-suffix-pass", "/v1/responses.json", R_OK, PASS)
add(C, "embeddings-network-path", "//host/v1/embeddings", j({"model": "gpt-9", "input": "x"}),
    PASS, chosen="embeddings are guarded only when switched on (routes.md D13)")
add(C, "responses-form-urlencoded", "/v1/responses", R_OK, O_415,
    content_type="application/x-www-form-urlencoded")
add(C, "responses-charset-utf16", "/v1/responses", R_OK, O_415,
    content_type="application/json; charset=utf-16")
add(C, "images-edits-form-urlencoded", "/v1/images/edits", b"model=gpt-image-2&prompt=x", O_415,
    content_type="application/x-www-form-urlencoded")

# ---- §11 data URLs -------------------------------------------------------------------------
C = "r2-data-urls"


def o_media(kind: str, url: str, model: str = GPT, **extra: object) -> bytes:
    return j(chat(model, content=[{"type": "text", "text": "what?"},
                                  {"type": kind, kind: {"url": url, **extra}}]))


VID = "video/mp4;base64,AAAAIGZ0eXBpc29t"
for i, url in enumerate([
    " data:" + VID, "\tdata:" + VID, "\ndata:" + VID, "\x00data:" + VID, "\x1fdata:" + VID,
    "\r\n data:" + VID, "data:" + VID + " ", "data:" + VID + "\x00", "DATA:" + VID,
    "data:video\\/mp4;base64,AAAA", "data:VIDEO\\/MP4;base64,AAAA", " data:video\\/webm,AAAA",
    "\x0b\x0cdata:video/quicktime;base64,AAAA", "data: video/mp4;base64,AAAA",
]):
    add(C, f"image-url-video-{i:02d}-{url[:24]!r}", O_PATH, o_media("image_url", url), O_CAP)
for i, url in enumerate(["data:audio/wav;base64,UklGRg==", " data:audio\\/mpeg;base64,AAAA"]):
    add(C, f"image-url-audio-vision-less-{i}", O_PATH,
        o_media("image_url", url, AUDIO_MODEL), O_CAP)
add(C, "audio-url-image-data-audio-model", O_PATH,
    o_media("audio_url", "data:image/png;base64,iVBORw0KGgo=", AUDIO_MODEL), O_CAP)
add(C, "video-url-image-data-doubao-pass", O_PATH,
    o_media("video_url", "data:image/png;base64,iVBORw0KGgo=", DOUBAO), PASS)
add(C, "video-url-audio-data-doubao", O_PATH,
    o_media("video_url", "data:audio/wav;base64,UklGRg==", DOUBAO), O_CAP)
add(C, "image-url-image-data-pass", O_PATH,
    o_media("image_url", " data:image/png;base64,iVBORw0KGgo= "), PASS)
add(C, "image-url-escaped-image-pass", O_PATH,
    o_media("image_url", "data:image\\/png;base64,iVBORw0KGgo="), PASS)
add(C, "image-url-format-video", O_PATH,
    o_media("image_url", "https://example.com/x", format="video/mp4"), O_CAP)
add(C, "image-url-format-escaped-video", O_PATH,
    o_media("image_url", "https://example.com/x", format="video\\/mp4"), O_CAP)
add(C, "image-url-format-image-pass", O_PATH,
    o_media("image_url", "https://example.com/x", format="image/jpeg"), PASS)
add(C, "image-url-FORMAT-lookalike", O_PATH,
    o_media("image_url", "https://example.com/x.png", FORMAT="video/mp4"), O_BAD)
add(C, "a-image-block-video-media-type", A_PATH,
    j(anth(content=[{"type": "image", "source": {"type": "base64", "media_type": "video/mp4",
                                                  "data": "AAAA"}}])), A_CAP)
add(C, "a-image-block-data-url-video", A_PATH,
    j(anth(content=[{"type": "image", "source": {"type": "url",
                                                  "url": " data:video/mp4;base64,AAAA"}}])), A_CAP)
add(C, "a-document-url-data-video", A_PATH,
    j(anth(content=[{"type": "document", "source": {"type": "url",
                                                     "url": "\tdata:video\\/mp4;base64,AA"}}])),
    A_CAP)
add(C, "a-image-block-png-pass", A_PATH, j(anth(content=[IMG_A])), PASS)

# ---- §11 Gemini mimeType "" and the extension table ----------------------------------------
C = "r2-gemini-media"


def g_file(uri: str, mime: object = "", snake: bool = False) -> bytes:
    blob: dict = {"fileUri": uri} if not snake else {"file_uri": uri}
    if mime is not None:
        blob["mime_type" if snake else "mimeType"] = mime
    return j(gem([{"text": "what?"}, {"file_data" if snake else "fileData": blob}]))


for i, uri in enumerate(["https://x/clip.mp4", "gs://b/clip.MOV", "https://x/a.3gpp",
                         "https://x/a.3gp", "https://x/a.avi?sig=1", "https://x/a.webm#t=1",
                         "https://x/a.m1v", "https://x/a.qt", "https://www.youtube.com/watch?v=x",
                         "https://x/a.movie", "https://x/a.mkv", "https://x/a.ts"]):
    add(C, f"empty-mime-video-{i:02d}-{uri}", G_PATH(), g_file(uri), G_CAP)
    add(C, f"blank-mime-video-{i:02d}-{uri}", G_PATH(), g_file(uri, " "), G_CAP)
    add(C, f"empty-mime-video-pro-pass-{i:02d}-{uri}", G_PATH(PRO), g_file(uri), PASS)
add(C, "empty-mime-snake-video", G_PATH(), g_file("https://x/clip.mp4", snake=True), G_CAP)
add(C, "absent-mime-video", G_PATH(), g_file("https://x/clip.mp4", None), G_CAP)
add(C, "empty-mime-png-pass", G_PATH(), g_file("https://x/a.png"), PASS)
add(C, "empty-mime-pdf-pass", G_PATH(), g_file("https://x/a.pdf"), PASS)
add(C, "empty-mime-unknown-ext-nano-banana", G_PATH(BANANA), g_file("https://x/a.xyz"), PASS)
for i, uri in enumerate(["https://x/a.aif", "https://x/a.aifc", "https://x/a.au",
                         "https://x/a.snd", "https://x/a.opus", "https://x/a.ra",
                         "https://x/a.mp2", "https://x/a.adts", "https://x/a.flac"]):
    add(C, f"audio-ext-banana-{i:02d}-{uri}", G_PATH(BANANA), g_file(uri), G_CAP)
    add(C, f"audio-ext-flash-pass-{i:02d}-{uri}", G_PATH(), g_file(uri), PASS)
for i, mime in enumerate([1, [], {"a": 1}, True]):  # not a string: unknown bytes, vision
    add(C, f"inline-mime-not-a-string-{i}", G_PATH(MINIMAX),
        j(gem([{"inlineData": {"mime_type": mime, "data": "AAAA"}}])), G_CAP)
    add(C, f"file-mime-not-a-string-{i}", G_PATH(MINIMAX),
        j(gem([{"fileData": {"mimeType": mime, "fileUri": "https://x/a.txt"}}])), G_CAP)
add(C, "inline-empty-mime-vision-less", G_PATH(MINIMAX),
    j(gem([{"inlineData": {"mimeType": "", "data": "AAAA"}}])), G_CAP)

# ---- §11 OpenAI file parts with several sources, format, URL-shaped file_id -----------------
C = "r2-file-sources"


def o_file(file: dict, model: str = GPT, kind: str = "file") -> bytes:
    part = {"type": kind, "file": file} if kind == "file" else {"type": kind, **file}
    return j(chat(model, content=[{"type": "text", "text": "read this"}, part]))


PDF_DATA = "data:application/pdf;base64,JVBERi0xLjQ="
TXT_DATA = "data:text/plain;base64,aGVsbG8="
add(C, "data-and-id-video-url", O_PATH,
    o_file({"file_data": PDF_DATA, "file_id": "https://files.example/clip.mp4"}), O_CAP)
add(C, "text-data-and-video-file-url", O_PATH,
    o_file({"file_data": TXT_DATA, "file_url": "https://files.example/clip.mov"}, MINIMAX), O_CAP)
add(C, "text-data-and-plain-id-needs-vision", O_PATH,
    o_file({"file_data": TXT_DATA, "file_id": "file-abc123"}, MINIMAX), O_CAP)
add(C, "text-data-only-minimax-pass", O_PATH, o_file({"file_data": TXT_DATA}, MINIMAX), PASS)
add(C, "format-video", O_PATH, o_file({"file_id": "file-abc", "format": "video/mp4"}), O_CAP)
add(C, "format-audio-on-text", O_PATH,
    o_file({"file_data": TXT_DATA, "format": "audio/wav"}, MINIMAX), O_CAP)
add(C, "format-pdf-pass", O_PATH, o_file({"file_id": "file-abc", "format": "application/pdf"}),
    PASS)
add(C, "url-file-id-mp4", O_PATH, o_file({"file_id": "gs://bucket/clip.mp4"}), O_CAP)
add(C, "url-file-id-wav", O_PATH, o_file({"file_id": "https://x/a.WAV?sig=1"}), O_CAP)
add(C, "url-file-id-data-video", O_PATH, o_file({"file_id": " data:video/mp4;base64,AA"}), O_CAP)
add(C, "url-file-id-pdf-pass", O_PATH, o_file({"file_id": "https://x/a.pdf"}), PASS)
add(C, "url-file-id-txt-still-needs-vision", O_PATH,
    o_file({"file_id": "https://x/a.txt"}, MINIMAX), O_CAP,
    chosen="an extension adds needs, never lowers them (routes.md: URL extensions are not "
           "trusted); a document by URL needs vision")
add(C, "url-file-id-mp4-doubao-pass", O_PATH, o_file({"file_id": "https://x/clip.mp4"}, DOUBAO),
    PASS)
add(C, "input-file-part-level-video", O_PATH,
    o_file({"file_url": "https://x/clip.mp4"}, kind="input_file"), O_CAP)
add(C, "input-file-part-level-data-video", O_PATH,
    o_file({"file_data": "data:video/mp4;base64,AAAA"}, kind="input_file"), O_CAP)
add(C, "file-FILE_ID-lookalike", O_PATH, o_file({"FILE_ID": "https://x/clip.mp4"}), O_BAD)
add(C, "file-Format-lookalike", O_PATH, o_file({"file_id": "f", "Format": "video/mp4"}), O_BAD)

# ---- §11 fast paths hold the full path's rules ------------------------------------------------
C = "r2-fast-paths"
add(C, "g-text-part-both-signatures", G_PATH(),
    j(gem([{"text": "hi", "thoughtSignature": "c2ln", "thought_signature": "c2ln"}])), G_BAD)
add(C, "g-plain-turn-both-signatures", G_PATH(),
    j({"contents": [{"role": "model", "parts": [
        {"text": "hi", "thought_signature": "YQ==", "thoughtSignature": "Yg=="}]}]}), G_BAD)
add(C, "g-system-both-signatures", G_PATH(),
    j(gem(systemInstruction={"parts": [{"text": "x", "thoughtSignature": "a",
                                        "thought_signature": "b"}]})), G_BAD)
add(C, "g-text-part-lookalike-Thought", G_PATH(),
    j(gem([{"text": "hi", "THOUGHT": True}])), G_BAD)
add(C, "g-text-part-one-signature-pass", G_PATH(),
    j(gem([{"text": "hi", "thought_signature": "c2ln"}])), PASS)
add(C, "o-plain-message-lookalike-ROLE", O_PATH,
    j({"model": GPT, "messages": [{"role": "user", "content": "hi", "ROLE": "tool"}]}), O_BAD)
add(C, "o-text-part-lookalike-TYPE", O_PATH,
    j(chat(content=[{"type": "text", "text": "hi", "TYPE": "input_audio"}])), O_BAD)
add(C, "a-simple-block-lookalike-Type", A_PATH,
    j(anth(DEEPSEEK, content=[{"type": "text", "text": "x", "Type": "image"}])), A_BAD)
add(C, "a-message-long-s-not-a-field-pass", A_PATH,
    j({"model": SONNET, "max_tokens": 10,
       "messages": [{"role": "user", "content": "x", "contenţ": 1, "\u017fource": 2}]}), PASS,
    chosen="neither key folds to a message field ('ſource' is 'source', a block field)")
add(C, "a-plain-tool-lookalike-TYPE", A_PATH,
    j(anth(DEEPSEEK, tools=[{"name": "f", "input_schema": {}, "TYPE": "web_search_20250305"}])),
    A_BAD)

# ---- §11 nothing client-supplied reaches int() unchecked: int64 strings in the body --------
C = "r2-int-strings"
for i, value in enumerate(["--5", "9" * 5000, "1e3", "\u0661\u0662", "\u00b2", "0x10", "+-1",
                           "9" * 20]):
    add(C, f"max-output-tokens-{i:02d}", G_PATH(),
        j(gem(generationConfig={"maxOutputTokens": value})), G_BAD)
    add(C, f"thinking-budget-{i:02d}", G_PATH(),
        j(gem(generationConfig={"thinkingConfig": {"thinkingBudget": value}})), G_BAD)
add(C, "int64-string-pass", G_PATH(), j(gem(generationConfig={"maxOutputTokens": " 1024 "})),
    PASS)

# ---- §11 content codings: one layer, 200:1 ------------------------------------------------
C = "r2-codings"


@functools.cache
def ratio_bomb() -> bytes:
    """About 25 KB of gzip inflating to 25 MiB (1000:1), under the 32 MiB size limit."""
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = [c.compress(b'{"model":"claude-sonnet-4-6",' + A_MSGS.encode() + b',"pad":"')]
    out += [c.compress(b"a" * MiB) for _ in range(25)]
    return b"".join(out + [c.compress(b'"}') + c.flush()])


@functools.cache
def ratio_over_200() -> bytes:
    """A body inflating a little over 200:1."""
    pad = b" " * 60_000
    raw = b'{"model":"claude-sonnet-4-6",' + A_MSGS.encode() + b',"pad":"' + pad + b'"}'
    return zl(raw)


add(C, "ratio-bomb-gzip", A_PATH, ratio_bomb, A_413, headers=((CE, "gzip"),))
add(C, "ratio-bomb-gzip-openai", O_PATH, ratio_bomb, O_413, headers=((CE, "gzip"),))
add(C, "ratio-over-200-deflate", A_PATH, ratio_over_200, A_413, headers=((CE, "deflate"),))
add(C, "gzip-x-gzip", A_PATH, gz(gz(A_OK)), A_415, headers=((CE, "gzip, x-gzip"),))
add(C, "deflate-deflate-two-headers", O_PATH, zl(zl(O_OK)), O_415,
    headers=((CE, "deflate"), (CE, "deflate")))
add(C, "gzip-identity-gzip", A_PATH, gz(gz(A_OK)), A_415, headers=((CE, "gzip, identity, gzip"),))
add(C, "one-gzip-with-identities-pass", A_PATH, gz(A_OK), PASS,
    headers=((CE, "identity"), (CE, "gzip"), (CE, "identity")))

# ---- legitimate controls: every SDK-captured body, byte for byte -------------------------------
C = "sdk-fixtures"
_VENDORS = {"anthropic": "anthropic", "openai": "openai", "gemini": "google"}


def _sdk_cases() -> None:
    """Each captured SDK request, on the first bundled model of its vendor that has every tag
    the fixture records it needs (the fixture's own tags are the oracle)."""
    from pathlib import Path
    from urllib.parse import quote

    from modelguard import Catalog

    catalog = Catalog.default()
    for path in sorted((Path(__file__).parent.parent / "fixtures" / "sdk").glob("*.json")):
        fx = json.loads(path.read_text())
        fits = [m for m in catalog if m.owned_by == _VENDORS[fx["protocol"]]
                and all(m.has(tag) for tag in fx["tags"])]
        if not fits:
            continue
        model = fits[0].id
        target = fx["path"]
        body = dict(fx["body"])
        if fx["protocol"] == "gemini":
            version, rest = target.split("/models/", 1)
            target = f"{version}/models/{quote(model)}:{rest.rsplit(':', 1)[1]}"
        else:
            body["model"] = model
        target += f"?{fx['query']}" if fx["query"] else ""
        headers = tuple((k, v) for k, v in fx["headers"].items()
                        if k.lower() not in ("content-type", "content-length", "host"))
        add(C, path.stem, target, json.dumps(body).encode(), PASS, method=fx["method"],
            headers=headers, content_type=fx["headers"].get("content-type", "application/json"))


_sdk_cases()

# --------------------------------------------------------------------------------------------

_ids = Counter(c.id for c in CASES)
assert not [i for i, n in _ids.items() if n > 1], [i for i, n in _ids.items() if n > 1]

#: Cases per class, for the report.
COUNTS = Counter(c.cls for c in CASES)
