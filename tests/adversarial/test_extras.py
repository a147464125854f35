"""Adversarial checks that do not fit one-request-one-outcome rows of the table.

Non-HTTP scopes and unguarded requests pass untouched; ``receive`` after the replayed body is
the server's; many interleaved requests through one middleware do not bleed into each other;
and over real sockets: pipelined requests on one keep-alive connection, a TE+CL desync
attempt, chunk extensions and trailers, and HTTP/1.0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import uuid

import pytest

from modelguard import ModelGuardMiddleware

from .cases import A_OK, A_UNKNOWN, CASES, G_VIDEO, Case
from .conftest import SERVERS, Capture, ServerThread
from .harness import OK_BODY, Recorder, check, request_headers, scope_of

TIMEOUT = 10


# --------------------------------------------------------------------------------------------
# In-process
# --------------------------------------------------------------------------------------------


class Spy:
    def __init__(self) -> None:
        self.calls: list[tuple[dict, object, object]] = []

    async def __call__(self, scope, receive, send) -> None:
        self.calls.append((scope, receive, send))


@pytest.mark.parametrize(("kind", "path", "websockets"), [
    ("websocket", "/v1/realtime", "refuse"),   # not a guarded route
    ("websocket", "/v1/messages", "pass"),     # guarded, but the user lets websockets pass
    ("lifespan", "/v1/messages", "refuse"),
])
async def test_non_http_scope_untouched(kind: str, path: str, websockets: str, catalog) -> None:
    spy = Spy()
    app = ModelGuardMiddleware(spy, catalog=catalog, websockets=websockets)
    scope = {"type": kind, "path": path, "raw_path": path.encode(),
             "headers": [], "query_string": b""}

    async def receive():  # never called by the guard
        raise AssertionError("the guard read from a non-HTTP scope")

    async def send(message):
        raise AssertionError("the guard answered a non-HTTP scope")

    await asyncio.wait_for(app(scope, receive, send), TIMEOUT)
    assert len(spy.calls) == 1
    got_scope, got_receive, got_send = spy.calls[0]
    assert got_scope is scope and got_receive is receive and got_send is send


@pytest.mark.parametrize("method,target", [("GET", "/v1/messages"), ("POST", "/v1/models"),
                                           ("POST", "/v1beta/models/x:embedContent")])
async def test_unguarded_request_unbuffered(method: str, target: str, catalog) -> None:
    """Nothing is read before the app runs: it gets the server's own receive and send."""
    spy = Spy()
    app = ModelGuardMiddleware(spy, catalog=catalog)
    case = Case(id="x", cls="x", target=target, body=A_UNKNOWN, expect=None, method=method)
    scope = scope_of(case, request_headers(case, A_UNKNOWN, "x", socket=False))

    async def receive():
        raise AssertionError("the guard buffered an unguarded request")

    async def send(message):
        raise AssertionError("the guard answered an unguarded request")

    await asyncio.wait_for(app(scope, receive, send), TIMEOUT)
    assert len(spy.calls) == 1 and spy.calls[0][1] is receive and spy.calls[0][2] is send


async def test_receive_after_replayed_body_is_the_servers(catalog) -> None:
    """After the body, the app's next receive() gets what the server sends next (here a
    disconnect with a marker), and the body is delivered once, unchanged."""
    seen: list[dict] = []
    after: list[dict] = []

    async def app(scope, receive, send):
        while True:
            message = await receive()
            seen.append(message)
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        after.append(await receive())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    guard = ModelGuardMiddleware(app, catalog=catalog)
    case = Case(id="x", cls="x", target="/v1/messages", body=A_OK, expect=None)
    scope = scope_of(case, request_headers(case, A_OK, "x", socket=False))
    script = [{"type": "http.request", "body": A_OK[:10], "more_body": True},
              {"type": "http.request", "body": b"", "more_body": True},
              {"type": "http.request", "body": A_OK[10:], "more_body": False},
              {"type": "http.disconnect", "marker": "server"}]

    async def receive():
        return script.pop(0)

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    await asyncio.wait_for(guard(scope, receive, send), TIMEOUT)
    assert all(m["type"] == "http.request" for m in seen)
    assert b"".join(m.get("body", b"") for m in seen) == A_OK
    assert not seen[-1].get("more_body")
    assert after == [{"type": "http.disconnect", "marker": "server"}]
    assert sent[0]["status"] == 200


async def test_interleaved_requests_do_not_mix(catalog, capture: Capture) -> None:
    """Many requests in flight through one middleware, delivered a few bytes at a time in
    random interleaving: each gets exactly its own verdict and its own bytes."""
    recorder = Recorder()
    app = ModelGuardMiddleware(recorder, catalog=catalog)
    rng = random.Random(1234)
    picked = [c for c in CASES if c.expect.kind in ("pass", "refuse") and not c.bug
              and not c.bug_in and c.scope_path is None and not c.root_path
              and c.disconnect_after is None and isinstance(c.body, bytes)
              and len(c.body) < 20_000]
    picked = rng.sample(picked, 60)
    mark = len(capture.records)

    async def one(case: Case, index: int):
        body = case.data()
        key = f"{case.id}#{index}"
        scope = scope_of(case, request_headers(case, body, key, socket=False))
        step = rng.randint(1, 9)
        pieces = [body[i:i + step] for i in range(0, len(body), step)] or [b""]
        messages = [{"type": "http.request", "body": p, "more_body": True} for p in pieces]
        messages[-1]["more_body"] = False

        async def receive():
            await asyncio.sleep(0)  # let the other requests run in between
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        sent: list[dict] = []

        async def send(message):
            sent.append(message)

        await asyncio.wait_for(app(scope, receive, send), TIMEOUT)
        return case, key, body, sent

    results = await asyncio.gather(*(one(c, i) for i, c in enumerate(picked)))
    from .harness import Outcome

    for case, key, body, sent in results:
        start = sent[0]
        headers = [(k.decode().lower(), v.decode()) for k, v in start["headers"]]
        out = Outcome(start["status"], headers,
                      b"".join(m.get("body", b"") for m in sent[1:]), recorder.seen.get(key))
        check(case, case.expect, out, body)
    assert not capture.problems(mark)


# --------------------------------------------------------------------------------------------
# Over sockets
# --------------------------------------------------------------------------------------------


def _request(body: bytes, key: str, *, target: str = "/v1/messages", close: bool = False,
             extra: bytes = b"", version: str = "1.1") -> bytes:
    head = (f"POST {target} HTTP/{version}\r\nHost: testserver\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"x-case: {key}\r\n").encode() + extra
    if close:
        head += b"Connection: close\r\n"
    return head + b"\r\n" + body


async def _read_responses(reader: asyncio.StreamReader, count: int) -> list[tuple[int, bytes]]:
    out = []
    for _ in range(count):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        length = next((int(line.split(":", 1)[1]) for line in lines[1:]
                       if line.lower().startswith("content-length:")), None)
        out.append((status, await reader.read() if length is None
                    else await reader.readexactly(length)))
    return out


async def _exchange(port: int, data: bytes, count: int) -> list[tuple[int, bytes]]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(_read_responses(reader, count), TIMEOUT)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError, asyncio.TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 2)


def _anthropic_token(body: bytes) -> str:
    return json.loads(body)["error"]["type"]


@pytest.mark.parametrize("server", SERVERS)
async def test_pipelined_requests_each_guarded(server: str, servers: dict[str, ServerThread],
                                               capture: Capture) -> None:
    """Three requests in one write on one keep-alive connection: the bad one in the middle
    (what a Content-Length that 'ends early' smuggles) is refused; the others arrive intact."""
    running = servers[server]
    keys = [f"pipe-{server}-{i}-{uuid.uuid4().hex}" for i in range(3)]
    mark = len(capture.records)
    data = (_request(A_OK, keys[0]) + _request(A_UNKNOWN, keys[1])
            + _request(A_OK, keys[2], close=True))
    responses = await _exchange(running.port, data, 3)
    assert [s for s, _ in responses] == [200, 400, 200], responses
    assert _anthropic_token(responses[1][1]) == "unsupported_model"
    assert responses[0][1] == responses[2][1] == OK_BODY
    assert running.recorder.seen[keys[0]].body == A_OK
    assert running.recorder.seen[keys[2]].body == A_OK
    assert keys[1] not in running.recorder.seen
    assert not capture.problems(mark)


@pytest.mark.parametrize("server", SERVERS)
async def test_te_cl_desync_never_reaches_app(server: str, servers: dict[str, ServerThread],
                                              capture: Capture) -> None:
    """Transfer-Encoding and Content-Length together, the chunked body hiding a bad model and
    the Content-Length covering only a harmless prefix: refused by the server or the guard."""
    running = servers[server]
    key = f"tecl-{server}-{uuid.uuid4().hex}"
    chunked = b"%x\r\n" % len(A_UNKNOWN) + A_UNKNOWN + b"\r\n0\r\n\r\n"
    data = (b"POST /v1/messages HTTP/1.1\r\nHost: testserver\r\nContent-Type: application/json\r\n"
            b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\nx-case: " + key.encode()
            + b"\r\nConnection: close\r\n\r\n" + chunked)
    mark = len(capture.records)
    responses = await _exchange(running.port, data, 1)
    status, body = responses[0]
    assert 400 <= status < 500, responses
    if status == 400 and body.startswith(b"{"):
        assert _anthropic_token(body) == "unsupported_model"
    await asyncio.sleep(0.05)
    assert key not in running.recorder.seen
    assert not capture.problems(mark)


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("good", [True, False], ids=["good", "bad"])
async def test_chunk_extensions_and_trailers(server: str, good: bool,
                                             servers: dict[str, ServerThread],
                                             capture: Capture) -> None:
    running = servers[server]
    key = f"ext-{server}-{good}-{uuid.uuid4().hex}"
    body = A_OK if good else A_UNKNOWN
    half = len(body) // 2
    chunked = (b"%x;name=value\r\n" % half + body[:half] + b"\r\n"
               + b"%x;x=\"y\"\r\n" % (len(body) - half) + body[half:] + b"\r\n"
               + b"0\r\nX-Trailer: 1\r\n\r\n")
    data = (b"POST /v1/messages HTTP/1.1\r\nHost: testserver\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nx-case: " + key.encode()
            + b"\r\nConnection: close\r\n\r\n" + chunked)
    mark = len(capture.records)
    status, answer = (await _exchange(running.port, data, 1))[0]
    assert status < 500
    if good:
        assert status == 200 and running.recorder.seen[key].body == body
    else:
        assert key not in running.recorder.seen
        if status == 400 and answer.startswith(b"{"):
            assert _anthropic_token(answer) == "unsupported_model"
        else:  # the HTTP parser itself refused the chunk syntax
            assert 400 <= status < 500
    assert not capture.problems(mark)


@pytest.mark.parametrize("server", SERVERS)
async def test_http_1_0_is_guarded(server: str, servers: dict[str, ServerThread],
                                   capture: Capture) -> None:
    running = servers[server]
    key = f"h10-{server}-{uuid.uuid4().hex}"
    mark = len(capture.records)
    data = _request(G_VIDEO, key, target="/v1beta/models/gemini-3-flash:generateContent",
                    version="1.0")
    status, body = (await _exchange(running.port, data, 1))[0]
    assert status == 400
    assert json.loads(body)["error"]["details"][0]["reason"] == "UNSUPPORTED_CAPABILITY"
    assert key not in running.recorder.seen
    assert not capture.problems(mark)
