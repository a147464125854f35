"""The request head and the guard's own failures (decisions.md §5, §11), without HTTP.

Table-driven checks of the three head readings (media type, Content-Length, credential), the
64-character cut of keys echoed in messages, the fail-closed answers of ``Guard.check`` and the
middleware when handed things no server would send, and the event loop left free while a large
body is inspected (asserted by the order in which two checks finish, never by a duration).
"""

from __future__ import annotations

import asyncio
import json

import pytest

from modelguard import Catalog, Guard, ModelGuardMiddleware
from modelguard import guard as guard_module
from modelguard.errors import Reason
from modelguard.guard import large_body_workers
from modelguard.headers import HeadError, credential_of, declared_length, media_type_problem

DEFAULT = Catalog.default()
A_OK = json.dumps({"model": "claude-sonnet-4-6", "max_tokens": 10,
                   "messages": [{"role": "user", "content": "hi"}]}).encode()


@pytest.mark.parametrize(("values", "refused"), [
    (["application/json"], False), (["application/json; charset=utf-8"], False),
    (["application/json;charset=UTF8"], False), (['application/json; charset="utf-8"'], False),
    (["text/plain"], False), ([], False), (["application/octet-stream"], False),
    (["multipart/form-data; boundary=x"], True), (["  MULTIPART/mixed"], True),
    (["application/x-www-form-urlencoded"], True), (["application/json; charset=utf-16"], True),
    (["application/json; charset=utf-8; charset=utf-7"], True),
    (["application/json", "text/plain; charset=latin1"], True),
    (["application/json, multipart/form-data"], True), (["application/json; charset="], True),
])
def test_media_types(values: list[str], refused: bool) -> None:
    assert (media_type_problem(values) is not None) == refused


def test_a_multipart_route_opts_out_of_the_multipart_rule_only() -> None:
    assert media_type_problem(["multipart/form-data; boundary=x"], reads_multipart=True) is None
    assert media_type_problem(["application/json; charset=utf-16"], reads_multipart=True)


@pytest.mark.parametrize(("values", "want"), [
    ([], None), (["0"], 0), (["42"], 42), (["00042"], 42), ([" 42\t"], 42), (["42", "042"], 42),
    (["42, 42"], 42), (["9" * 40], 10 ** 18),
])
def test_declared_length(values: list[str], want: int | None) -> None:
    assert declared_length(values) == want


@pytest.mark.parametrize("values", [
    [""], ["\u00b2"], ["\u0661\u0662"], ["\uff11"], ["+1"], ["-1"], ["1e3"], ["0x1"], ["1 2"],
    ["42", "43"], ["42, 43"], ["42,"], ["4_2"],
])
def test_declared_length_refuses(values: list[str]) -> None:
    with pytest.raises(HeadError) as info:
        declared_length(values)
    assert info.value.reason == Reason.INVALID


@pytest.mark.parametrize(("headers", "query", "want"), [
    ([("x-api-key", "a")], "", "a"), ([("x-api-key", "a"), ("x-api-key", "a")], "", "a"),
    ([("authorization", "Bearer b")], "", "b"), ([("authorization", "Basic zzz")], "", None),
    ([("x-goog-api-key", "c")], "key=d", "c"), ([], "key=d&key=d", "d"), ([], "", None),
    ([("x-api-key", " ")], "key=e", "e"),
])
def test_credential_of(headers: list, query: str, want: str | None) -> None:
    assert credential_of(headers, query) == want


@pytest.mark.parametrize(("headers", "query"), [
    ([("x-api-key", "a"), ("x-api-key", "b")], ""),
    ([("authorization", "Bearer a"), ("authorization", "Bearer b")], ""),
    ([("x-goog-api-key", "a"), ("x-goog-api-key", "b")], ""), ([], "key=a&key=b"),
    ([("x-api-key", "a\u00e9")], ""), ([("x-api-key", "a\x00")], ""),
    ([("x-api-key", "a\r\nb")], ""), ([("x-api-key", "x" * 4097)], ""), ([], "key=a%0A"),
    ([("authorization", "Bearer " + "x" * 5000)], ""),
])
def test_credential_refused(headers: list, query: str) -> None:
    with pytest.raises(HeadError) as info:
        credential_of(headers, query)
    assert info.value.reason == Reason.UNAUTHENTICATED
    assert "a\u00e9" not in info.value.message and "xxxx" not in info.value.message


# -- keys echoed in messages -----------------------------------------------------------------

LONG = "k" * 5000


@pytest.mark.parametrize("accelerated", [True, False])
@pytest.mark.parametrize(("target", "body"), [
    ("/v1/chat/completions", f'{{"model":"gpt-5-4","messages":[],"{LONG}":1,"{LONG}":2}}'),
    ("/v1beta/models/gemini-3-flash:generateContent",
     json.dumps({"contents": [{"parts": [{LONG: 1}]}]})),
    ("/v1/chat/completions",
     json.dumps({"model": "gpt-5-4", "messages": [{"role": "user", "content": [{"type": LONG}]}]})),
    ("/v1/messages", A_OK.decode()),
])
async def test_keys_echoed_in_messages_are_cut(target: str, body: str, accelerated: bool,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    if not accelerated:
        monkeypatch.setattr("modelguard.body._accelerated_loads", None)
    headers = [("content-encoding", LONG)] if "messages" in target else []
    verdict = await Guard(DEFAULT).check("POST", target, headers, body.encode())
    assert not verdict.allowed
    assert "k" * 65 not in verdict.body.decode(), verdict.body[:300]
    assert "k" * 64 in verdict.body.decode()


# -- the guard's own failures -----------------------------------------------------------------


@pytest.mark.parametrize(("method", "target", "headers", "body"), [
    ("POST", "/v1/messages", None, A_OK),
    ("POST", "/v1/messages", [("content-type",)], A_OK),
    ("POST", "/v1/messages", {"x-api-key": "a"}, None),
    ("POST", None, {}, A_OK),
    (None, "/v1/messages", {}, A_OK),
    ("POST", "/v1/messages", [(1, 2)], "not bytes"),
])
async def test_guard_check_never_raises_on_what_no_server_sends(method, target, headers,
                                                               body) -> None:
    verdict = await Guard(DEFAULT).check(method, target, headers, body)
    if not verdict.allowed:
        assert verdict.status == 400
        assert json.loads(verdict.body)["error"]


async def test_middleware_fails_closed_without_raising() -> None:
    reached = []

    async def app(scope, receive, send) -> None:
        reached.append(scope)

    guard = ModelGuardMiddleware(app, catalog=DEFAULT)
    scope = {"type": "http", "method": "POST", "path": "/v1/messages", "raw_path": 12345,
             "query_string": None, "headers": [(b"content-type", None)], "root_path": ""}
    sent = []

    async def receive() -> dict:
        return {"type": "http.request", "body": A_OK, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await guard(scope, receive, send)
    assert not reached
    assert sent[0]["status"] == 400
    assert json.loads(sent[1]["body"])["error"]


async def test_app_errors_are_the_apps() -> None:
    """Only the guard's own work is wrapped: an exception in the app still propagates."""

    async def app(scope, receive, send) -> None:
        raise RuntimeError("the app's own bug")

    guard = ModelGuardMiddleware(app, catalog=DEFAULT)
    scope = {"type": "http", "method": "POST", "path": "/v1/messages",
             "raw_path": b"/v1/messages", "query_string": b"", "headers": [], "root_path": ""}

    async def receive() -> dict:
        return {"type": "http.request", "body": A_OK, "more_body": False}

    async def send(message: dict) -> None:
        raise AssertionError("nothing should be sent")

    with pytest.raises(RuntimeError, match="the app's own bug"):
        await guard(scope, receive, send)


# -- the event loop stays free ----------------------------------------------------------------


async def test_a_tiny_check_finishes_while_a_large_body_is_inspected() -> None:
    """A large body is read in a worker thread: a tiny request started after it is answered
    first. (Inspected on the event loop, the large check would finish before the tiny one
    could even start.)"""
    # Long turns, not many tiny ones: many small values would meet the structure budget.
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} " * 4000}
                for i in range(64)]
    large = json.dumps({"model": "gpt-5-4", "messages": messages}).encode()
    tiny = json.dumps({"model": "gpt-5-4", "messages": messages[:1]}).encode()
    assert len(large) > 1024 * 1024
    guard = Guard(DEFAULT)
    finished: list[str] = []

    async def check(name: str, body: bytes) -> None:
        verdict = await guard.check("POST", "/v1/chat/completions", {}, body)
        assert verdict.allowed
        finished.append(name)

    started = asyncio.create_task(check("large", large))
    await asyncio.sleep(0)  # the large check starts and hands its body to a thread
    await check("tiny", tiny)
    assert finished == ["tiny"]
    await started
    assert finished == ["tiny", "large"]


@pytest.mark.parametrize(("cores", "workers"), [(1, 1), (2, 1), (3, 2), (4, 2), (64, 2)])
def test_large_bodies_leave_the_event_loop_a_core(cores: int, workers: int) -> None:
    """One large inspection per core beyond the event loop's, at most two (a long string is
    scanned with the GIL released: a second scan on two cores takes the loop's core)."""
    assert large_body_workers(cores) == workers


async def test_large_bodies_waiting_for_a_worker_are_all_inspected(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With one large inspection at a time, the others wait their turn and each gets its own
    verdict; a tiny check is not held behind them."""
    monkeypatch.setattr(guard_module, "LARGE_BODY_WORKERS", 1)
    turns = [{"role": "user", "content": f"turn {i} " * 4000} for i in range(64)]
    bodies = [json.dumps({"model": model, "messages": turns}).encode()
              for model in ("gpt-5-4", "no-such-model", "gpt-5-4")]
    assert all(len(body) > 1024 * 1024 for body in bodies)
    guard = Guard(DEFAULT)
    large = [asyncio.create_task(guard.check("POST", "/v1/chat/completions", {}, body))
             for body in bodies]
    await asyncio.sleep(0)
    tiny = await guard.check("POST", "/v1/chat/completions", {},
                             json.dumps({"model": "gpt-5-4", "messages": turns[:1]}).encode())
    assert tiny.allowed and not any(task.done() for task in large)
    verdicts = await asyncio.gather(*large)
    assert [v.allowed for v in verdicts] == [True, False, True]
    assert verdicts[1].status == 400 and verdicts[1].model_id == "no-such-model"
