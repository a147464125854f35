"""Driving one case: in-process through a hand-written ASGI scope, or over a raw socket."""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from .cases import AUTO, Case, Expect

TIMEOUT = 15.0
SOCKET_PIECE = 256 * 1024
OK_BODY = b'{"ok":true}'


@dataclass
class Seen:
    method: str
    path: str
    body: bytes


class Recorder:
    """The app behind the guard: records the exact bytes it receives, answers 200."""

    def __init__(self) -> None:
        self.seen: dict[str, Seen] = {}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        key = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-case"), "")
        self.seen[key] = Seen(scope["method"], scope["path"], b"".join(chunks))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(OK_BODY)).encode())]})
        await send({"type": "http.response.body", "body": OK_BODY})


@dataclass
class Outcome:
    status: int | None  # None: no response at all
    headers: list[tuple[str, str]]
    body: bytes
    seen: Seen | None  # what the app received, if it was reached

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)


def split(data: bytes, sizes: int | tuple[int, ...] | None,
          default: int | None = None) -> list[bytes]:
    """``data`` cut into pieces of the given sizes (a tuple is used in turn; 0 = empty)."""
    if sizes is None:
        sizes = default
    if sizes is None:
        return [data] if data else []
    cycle = itertools.cycle(sizes if isinstance(sizes, tuple) else (sizes,))
    pieces, at = [], 0
    while at < len(data):
        size = next(cycle)
        pieces.append(data[at:at + size])
        at += size
    return pieces


def request_headers(case: Case, body: bytes, key: str, *,
                    socket: bool) -> list[tuple[bytes, bytes]]:
    headers = [(b"host", b"testserver")]
    if case.content_type is not None:
        headers.append((b"content-type", case.content_type.encode("latin-1")))
    if case.content_length == AUTO:
        headers.append((b"content-length", str(len(body)).encode()))
    elif case.content_length is None:
        if socket:
            headers.append((b"transfer-encoding", b"chunked"))
    else:
        headers.append((b"content-length", str(case.content_length).encode()))
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in case.headers]
    headers.append((b"x-case", key.encode("latin-1")))
    if socket:
        headers.append((b"connection", b"close"))
    return headers


# --------------------------------------------------------------------------------------------
# In-process
# --------------------------------------------------------------------------------------------


def scope_of(case: Case, headers: list[tuple[bytes, bytes]]) -> dict:
    """The scope uvicorn's h11 protocol would build (raw target kept, decoded once)."""
    target = case.target.encode("latin-1")
    raw, _, query = target.partition(b"?")
    path = unquote(raw.decode("latin-1"))
    if case.scope_path is not None:
        path = case.scope_path
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1", "method": case.method, "scheme": "http",
        "path": path, "raw_path": raw, "query_string": query, "root_path": case.root_path,
        "headers": headers, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
        "state": {},
    }


def messages_of(case: Case, body: bytes) -> list[dict]:
    if case.disconnect_after is not None:
        pieces = split(body[:case.disconnect_after], case.chunks)
        return ([{"type": "http.request", "body": p, "more_body": True} for p in pieces]
                + [{"type": "http.disconnect"}])
    pieces = split(body, case.chunks)
    if not pieces:
        return [{"type": "http.request", "body": b"", "more_body": False}]
    messages = [{"type": "http.request", "body": p, "more_body": True} for p in pieces]
    messages[-1]["more_body"] = False
    return messages


async def run_in_process(app_factory: Any, case: Case, body: bytes) -> Outcome:
    recorder = Recorder()
    app = app_factory(recorder)
    key = case.id
    scope = scope_of(case, request_headers(case, body, key, socket=False))
    script = iter(messages_of(case, body))
    sent: list[dict] = []

    async def receive() -> dict:
        # After the scripted messages the client is gone, as a server would report it.
        return next(script, {"type": "http.disconnect"})

    async def send(message: dict) -> None:
        sent.append(message)

    await asyncio.wait_for(app(scope, receive, send), TIMEOUT)
    seen = recorder.seen.get(key)
    if not sent:
        return Outcome(None, [], b"", seen)
    start = sent[0]
    assert start["type"] == "http.response.start", sent
    body_out = b"".join(m.get("body", b"") for m in sent[1:] if m["type"] == "http.response.body")
    headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in start["headers"]]
    return Outcome(start["status"], headers, body_out, seen)


# --------------------------------------------------------------------------------------------
# Over a socket
# --------------------------------------------------------------------------------------------


def wire_request(case: Case, body: bytes, key: str) -> tuple[bytes, list[bytes], bool]:
    """(head bytes, body writes, half-close afterwards)."""
    head = [f"{case.method} {case.target} HTTP/1.1".encode("latin-1")]
    head += [k + b": " + v for k, v in request_headers(case, body, key, socket=True)]
    head_bytes = b"\r\n".join(head) + b"\r\n\r\n"
    chunked = case.content_length is None
    upto = len(body) if case.disconnect_after is None else case.disconnect_after
    writes = []
    for piece in split(body[:upto], case.chunks, SOCKET_PIECE):
        if chunked:
            if piece:
                writes.append(b"%x\r\n" % len(piece) + piece + b"\r\n")
        else:
            writes.append(piece)
    if chunked and case.disconnect_after is None:
        writes.append(b"0\r\n\r\n")
    declared = case.content_length
    lying_bigger = isinstance(declared, int) and declared > len(body)
    return head_bytes, writes, case.disconnect_after is not None or lying_bigger


async def read_response(reader: asyncio.StreamReader, method: str,
                        go_on: asyncio.Event) -> tuple[bytes, bool]:
    """Everything up to the end of the first final response (or EOF); True if a reset cut it.

    An interim ``100 Continue`` is skipped and sets ``go_on``.
    """
    data = b""
    try:
        while True:
            while b"\r\n\r\n" not in data:
                chunk = await reader.read(65536)
                if not chunk:
                    return data, False
                data += chunk
            if data.startswith(b"HTTP/1.1 100"):
                data = data.partition(b"\r\n\r\n")[2]
                go_on.set()
                continue
            break
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = None
        chunked = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value.strip())
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if method.upper() == "HEAD":
            return head + b"\r\n\r\n", False
        if length is not None:
            while len(rest) < length:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                rest += chunk
            return head + b"\r\n\r\n" + rest[:length], False
        if chunked:
            while not rest.endswith(b"0\r\n\r\n"):
                chunk = await reader.read(65536)
                if not chunk:
                    break
                rest += chunk
            return head + b"\r\n\r\n" + _dechunk(rest), False
        while chunk := await reader.read(65536):
            rest += chunk
        return head + b"\r\n\r\n" + rest, False
    except ConnectionResetError:
        return data, True


def _dechunk(data: bytes) -> bytes:
    out, at = b"", 0
    while True:
        end = data.find(b"\r\n", at)
        if end < 0:
            return out
        size = int(data[at:end].split(b";")[0], 16)
        if size == 0:
            return out
        out += data[end + 2:end + 2 + size]
        at = end + 2 + size + 2


def parse_response(raw: bytes, method: str) -> tuple[int | None, list[tuple[str, str]], bytes]:
    if not raw:
        return None, [], b""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ")[1])
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers.append((name.strip().lower().decode("latin-1"), value.strip().decode("latin-1")))
    return status, headers, body


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close our end; the server may have closed first (a broken pipe is no finding)."""
    try:
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), 2)
    except (ConnectionError, OSError, TimeoutError):
        pass


async def run_over_socket(port: int, recorder: Recorder, case: Case, body: bytes,
                          key: str) -> Outcome:
    head, writes, half_close = wire_request(case, body, key)
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)

    expect_continue = any(k.lower() == "expect" and v.lower() == "100-continue"
                          for k, v in case.headers)
    go_on = asyncio.Event()

    async def sender() -> None:
        try:
            writer.write(head)
            if expect_continue:  # a careful client: the body only after "100 Continue"
                await go_on.wait()
            for piece in writes:
                writer.write(piece)
                await writer.drain()
            if half_close:
                writer.write_eof()
        except (ConnectionError, OSError):
            pass  # the server answered and closed before taking everything

    task = asyncio.create_task(sender())
    try:
        raw, reset = await asyncio.wait_for(read_response(reader, case.method, go_on), TIMEOUT)
    finally:
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await _close(writer)
    assert raw or not reset, "connection reset before any response arrived"
    status, headers, body_out = parse_response(raw, case.method)
    if status is None:
        # Nobody was answered: give a (wrongly) forwarded request time to reach the app.
        # (With a response, the app would have recorded before any response byte was sent.)
        await asyncio.sleep(0.05)
    return Outcome(status, headers, body_out, recorder.seen.get(key))


# --------------------------------------------------------------------------------------------
# The one assertion every case gets
# --------------------------------------------------------------------------------------------


def token_of(expect: Expect, body: bytes) -> str:
    """The fixed token from the protocol's envelope, checking the envelope's shape."""
    doc = json.loads(body)
    if expect.protocol == "anthropic":
        assert doc["type"] == "error" and set(doc) == {"type", "error"}, doc
        assert isinstance(doc["error"]["message"], str) and doc["error"]["message"], doc
        return doc["error"]["type"]
    error = doc["error"]
    if expect.protocol == "openai":
        assert {"message", "type", "param", "code"} <= set(error), doc
        assert error["type"] in ("invalid_request_error", "api_error"), doc
        return error["code"]
    assert error["code"] == expect.status, doc
    detail = error["details"][0]
    assert detail["@type"] == "type.googleapis.com/google.rpc.ErrorInfo", doc
    assert detail["domain"] == "modelguard", doc
    return detail["reason"]


def check(case: Case, expect: Expect, out: Outcome, sent: bytes) -> None:
    where = f"{case.id}: expected {expect}, got status={out.status} body={out.body[:400]!r}"
    assert out.status is None or out.status < 500, f"5xx answer. {where}"
    if expect.kind == "pass":
        assert out.seen is not None, f"the app was not reached. {where}"
        got = out.seen.body
        if got != sent:
            at = next((i for i, (a, b) in enumerate(zip(got, sent, strict=False)) if a != b),
                      min(len(got), len(sent)))
            raise AssertionError(f"body altered: {len(got)} bytes received, {len(sent)} sent, "
                                 f"first difference at {at}. {where}")
        assert out.status == 200, where
        assert out.body == OK_BODY or case.method.upper() == "HEAD", where
        return
    assert out.seen is None, (f"BYPASS: the app was reached with {len(out.seen.body)} bytes. "
                              f"{where}")
    if expect.kind == "no_response":
        assert out.status is None, f"a response was sent to a client that left. {where}"
    elif expect.kind == "server_reject":
        assert out.status is not None and 400 <= out.status < 500, where
    else:
        assert out.status == expect.status, where
        content_type = (out.header("content-type") or "").split(";")[0].strip()
        assert content_type == "application/json", f"content-type {content_type!r}. {where}"
        length = out.header("content-length")
        assert length is None or int(length) == len(out.body), where
        assert token_of(expect, out.body) == expect.token, where
