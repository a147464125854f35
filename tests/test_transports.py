"""GuardTransport / AsyncGuardTransport inside the official SDKs, sync and async, over real HTTP.

One stand-in on 127.0.0.1 plays the gateway: it serves the catalog (``GET /v1/models``) and
the three APIs, and records what reaches it. Each SDK gets a ``RemoteCatalog`` of that gateway
in forwarding mode (the SDK's own key selects the catalog) through the transport. Allowed
calls, plain and streaming, reach the stand-in with the bytes the SDK sent; refused calls raise
the SDK's own exception and nothing reaches the stand-in; a 503 ``catalog_unavailable`` is
retried by the SDK; a base URL with a path prefix stays guarded.

Sync SDK clients run in a worker thread (no event loop there, as in a WSGI app); async clients
on the test's event loop.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from starlette.responses import JSONResponse

from modelguard import AsyncGuardTransport, GuardTransport, RemoteCatalog, Verdict

from .conftest import model_entry
from .upstream import RecordedRequest, StandIn, serve

KEY = "sk-test-transport-key"
TIMEOUT = 10.0
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
PNG_B64 = base64.b64encode(PNG).decode()
TEXT_ONLY = "text-model"   # streaming, no vision
VISION = "vision-model"    # vision and streaming
CATALOG = {"object": "list", "data": [
    model_entry(TEXT_ONLY, {"streaming"}, "openai", max_output_tokens=4096),
    model_entry(VISION, {"vision", "streaming"}, "openai", max_output_tokens=4096),
]}


@dataclass
class Gateway:
    """The stand-in, with a switch that fails the next catalog requests with a 500."""

    standin: StandIn
    url: str
    fail_catalog: int = 0
    catalog_hits: int = 0

    def answer_first(self, request: RecordedRequest) -> Any:
        if request.method == "GET" and request.path.endswith("/v1/models"):
            self.catalog_hits += 1
            if self.fail_catalog > 0:
                self.fail_catalog -= 1
                return JSONResponse({"error": "catalog down"}, status_code=500)
        return None

    def posts(self) -> list[RecordedRequest]:
        return [r for r in self.standin.requests if r.method == "POST"]


@pytest.fixture(scope="module")
def served() -> Iterator[Gateway]:
    gateway = Gateway(StandIn(models=CATALOG), "")
    gateway.standin.handler = gateway.answer_first
    with serve(gateway.standin.app) as server:
        gateway.url = server.url
        yield gateway


@pytest.fixture
def gw(served: Gateway) -> Gateway:
    served.standin.clear()
    served.fail_catalog = served.catalog_hits = 0
    return served


# -- one adapter per SDK and flavour ------------------------------------------------------------


@dataclass
class Run:
    """One SDK client wired through a guard transport, and what it sent."""

    client: Any
    catalog: RemoteCatalog
    is_async: bool
    sent: list[bytes] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)

    async def call(self, fn: Callable[[], Any]) -> Any:
        """Run an SDK call: awaited for an async client, in a thread for a sync one."""
        if self.is_async:
            return await fn()
        return await asyncio.to_thread(fn)

    async def collect(self, stream_fn: Callable[[], Any]) -> list[Any]:
        if self.is_async:
            stream = await stream_fn()
            return [item async for item in stream]
        return await asyncio.to_thread(lambda: list(stream_fn()))

    async def close(self) -> None:
        if self.is_async:
            gemini = isinstance(self.client, genai.Client)
            await (self.client.aio.aclose() if gemini else self.client.close())
        else:
            await asyncio.to_thread(self.client.close)
        await self.catalog.aclose()


@dataclass(frozen=True)
class Sdk:
    name: str
    is_async: bool

    def __str__(self) -> str:
        return f"{self.name}-{'async' if self.is_async else 'sync'}"

    def connect(self, gw: Gateway, *, prefix: str = "", retries: int = 0,
                catalog: RemoteCatalog | None = None, **options: Any) -> Run:
        catalog = catalog or RemoteCatalog(gw.url + prefix, failure_backoff=1)
        run = Run(None, catalog, self.is_async)
        options.setdefault("on_violation", run.verdicts.append)

        def hook(request: httpx2.Request) -> None:
            run.sent.append(request.read())

        async def async_hook(request: httpx2.Request) -> None:
            run.sent.append(await request.aread())

        if self.is_async:
            transport: Any = AsyncGuardTransport(catalog, **options)
            http: Any = httpx2.AsyncClient(transport=transport, timeout=TIMEOUT,
                                           event_hooks={"request": [async_hook]})
        else:
            transport = GuardTransport(catalog, **options)
            http = httpx2.Client(transport=transport, timeout=TIMEOUT,
                                 event_hooks={"request": [hook]})
        base = gw.url + prefix
        if self.name == "anthropic":
            cls = anthropic.AsyncAnthropic if self.is_async else anthropic.Anthropic
            run.client = cls(base_url=base, api_key=KEY, max_retries=retries, http_client=http)
        elif self.name == "openai":
            cls = openai.AsyncOpenAI if self.is_async else openai.OpenAI
            run.client = cls(base_url=base + "/v1", api_key=KEY, max_retries=retries,
                             http_client=http)
        else:
            hooks = {"request": [async_hook if self.is_async else hook]}
            args = {"transport": transport, "timeout": TIMEOUT, "event_hooks": hooks}
            retry = types.HttpRetryOptions(attempts=retries + 1, initial_delay=1.0,
                                           max_delay=2.0, jitter=0.0) if retries else None
            run.client = genai.Client(api_key=KEY, http_options=types.HttpOptions(
                base_url=base, api_version="v1beta", retry_options=retry,
                **({"async_client_args": args} if self.is_async else {"client_args": args})))
        return run

    # the calls

    def plain(self, run: Run, model: str) -> Callable[[], Any]:
        c = run.client
        if self.name == "anthropic":
            return lambda: c.messages.create(model=model, max_tokens=100,
                                             messages=[{"role": "user", "content": "hi"}])
        if self.name == "openai":
            return lambda: c.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hi"}])
        models = c.aio.models if self.is_async else c.models
        return lambda: models.generate_content(model=model, contents="hi")

    def text_of(self, result: Any) -> str:
        if self.name == "anthropic":
            return result.content[0].text
        if self.name == "openai":
            return result.choices[0].message.content
        return result.text

    def stream(self, run: Run, model: str) -> Callable[[], Any]:
        c = run.client
        hi = [{"role": "user", "content": "hi"}]
        if self.name == "anthropic":
            return lambda: c.messages.create(model=model, max_tokens=100, messages=hi,
                                             stream=True)
        if self.name == "openai":
            return lambda: c.chat.completions.create(model=model, messages=hi, stream=True)
        models = c.aio.models if self.is_async else c.models
        return lambda: models.generate_content_stream(model=model, contents="hi")

    def streamed_text(self, items: list[Any]) -> str:
        if self.name == "anthropic":
            return "".join(e.delta.text for e in items if e.type == "content_block_delta")
        if self.name == "openai":
            return "".join(c.choices[0].delta.content or "" for c in items if c.choices)
        return "".join(chunk.text or "" for chunk in items)

    def image(self, run: Run, model: str) -> Callable[[], Any]:
        """A call with an image: refused for the text-only model."""
        c = run.client
        if self.name == "anthropic":
            content = [{"type": "text", "text": "what is this?"},
                       {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                    "data": PNG_B64}}]
            return lambda: c.messages.create(model=model, max_tokens=100,
                                             messages=[{"role": "user", "content": content}])
        if self.name == "openai":
            content = [{"type": "text", "text": "what is this?"},
                       {"type": "image_url",
                        "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}}]
            return lambda: c.chat.completions.create(
                model=model, messages=[{"role": "user", "content": content}])
        models = c.aio.models if self.is_async else c.models
        parts = ["what is this?", types.Part.from_bytes(data=PNG, mime_type="image/png")]
        return lambda: models.generate_content(model=model, contents=parts)

    def assert_refused(self, error: BaseException, token: str) -> None:
        """The SDK's own exception, carrying the fixed token of decisions.md §5."""
        if self.name == "anthropic":
            assert isinstance(error, anthropic.BadRequestError), error
            assert error.status_code == 400 and error.type == token
        elif self.name == "openai":
            assert isinstance(error, openai.BadRequestError), error
            assert error.status_code == 400 and error.code == token
            assert error.param == "messages[0].content[1]"
        else:
            assert isinstance(error, genai_errors.ClientError), error
            assert error.code == 400 and error.status == "INVALID_ARGUMENT"
            assert error.details["error"]["details"][0]["reason"] == token.upper()


SDKS = [Sdk(name, is_async) for name in ("anthropic", "openai", "gemini")
        for is_async in (False, True)]
sdks = pytest.mark.parametrize("sdk", SDKS, ids=str)


def upstream_path(sdk: Sdk, model: str, prefix: str = "", stream: bool = False) -> str:
    if sdk.name == "anthropic":
        return prefix + "/v1/messages"
    if sdk.name == "openai":
        return prefix + "/v1/chat/completions"
    method = "streamGenerateContent" if stream else "generateContent"
    return f"{prefix}/v1beta/models/{model}:{method}"


# -- allowed calls --------------------------------------------------------------------------------


@sdks
async def test_allowed_call_reaches_the_upstream_unchanged(gw: Gateway, sdk: Sdk) -> None:
    run = sdk.connect(gw)
    try:
        result = await run.call(sdk.plain(run, TEXT_ONLY))
    finally:
        await run.close()
    assert sdk.text_of(result) == "ok"
    posts = gw.posts()
    assert [p.path for p in posts] == [upstream_path(sdk, TEXT_ONLY)]
    assert [p.body for p in posts] == run.sent  # byte for byte
    assert gw.catalog_hits == 1 and run.verdicts == []


@sdks
async def test_allowed_stream_reaches_the_upstream_and_streams_back(gw: Gateway,
                                                                    sdk: Sdk) -> None:
    run = sdk.connect(gw)
    try:
        items = await run.collect(sdk.stream(run, VISION))
    finally:
        await run.close()
    assert sdk.streamed_text(items) == ("ok!" if sdk.name == "gemini" else "ok")
    assert len(items) > 1  # events, not one buffered answer
    posts = gw.posts()
    assert [p.path for p in posts] == [upstream_path(sdk, VISION, stream=True)]
    assert [p.body for p in posts] == run.sent
    assert gw.standin.wait_streams(1) == ["completed"]


@sdks
async def test_image_to_a_vision_model_is_allowed(gw: Gateway, sdk: Sdk) -> None:
    run = sdk.connect(gw)
    try:
        result = await run.call(sdk.image(run, VISION))
    finally:
        await run.close()
    assert sdk.text_of(result) == "ok"
    assert [p.body for p in gw.posts()] == run.sent


# -- refused calls --------------------------------------------------------------------------------


@sdks
async def test_refused_call_raises_the_sdks_own_error_and_sends_nothing(gw: Gateway,
                                                                        sdk: Sdk) -> None:
    run = sdk.connect(gw, retries=2)  # a 400 is not retried, even when retries are on
    try:
        with pytest.raises(Exception) as info:
            await run.call(sdk.image(run, TEXT_ONLY))
    finally:
        await run.close()
    sdk.assert_refused(info.value, "unsupported_capability")
    assert gw.posts() == []  # nothing left the process
    assert len(run.verdicts) == 1  # checked once: the SDK did not retry
    verdict = run.verdicts[0]
    assert verdict.guarded and not verdict.allowed and verdict.model_id == TEXT_ONLY
    assert "vision" in verdict.required


@sdks
async def test_unknown_model_is_refused_in_process(gw: Gateway, sdk: Sdk) -> None:
    run = sdk.connect(gw)
    try:
        with pytest.raises(Exception) as info:
            await run.call(sdk.plain(run, "text-modle"))
    finally:
        await run.close()
    error = info.value
    assert getattr(error, "status_code", getattr(error, "code", None)) == 400
    assert "did you mean" in str(error).lower() and TEXT_ONLY in str(error)
    assert gw.posts() == []


@sdks
async def test_report_mode_forwards_and_reports(gw: Gateway, sdk: Sdk) -> None:
    run = sdk.connect(gw, mode="report")
    try:
        result = await run.call(sdk.image(run, TEXT_ONLY))
    finally:
        await run.close()
    assert sdk.text_of(result) == "ok"
    assert len(gw.posts()) == 1
    assert [v.reason for v in run.verdicts] == ["unsupported_capability"]


# -- catalog outage -------------------------------------------------------------------------------


@sdks
async def test_503_catalog_unavailable_is_retried_by_the_sdk(gw: Gateway, sdk: Sdk) -> None:
    gw.fail_catalog = 1  # the first catalog fetch fails, nothing cached: 503 + Retry-After
    run = sdk.connect(gw, retries=3)
    try:
        result = await run.call(sdk.plain(run, TEXT_ONLY))
    finally:
        await run.close()
    assert sdk.text_of(result) == "ok"
    assert gw.catalog_hits == 2  # the failed fetch, then the one after the back-off
    assert len(gw.posts()) == 1  # the refused attempt never left the process
    assert [v.reason for v in run.verdicts] == ["catalog_unavailable"]


@sdks
async def test_503_without_retries_raises_with_retry_after(gw: Gateway, sdk: Sdk) -> None:
    gw.fail_catalog = 1
    run = sdk.connect(gw)
    try:
        with pytest.raises(Exception) as info:
            await run.call(sdk.plain(run, TEXT_ONLY))
    finally:
        await run.close()
    error = info.value
    status = getattr(error, "status_code", getattr(error, "code", None))
    assert status == 503
    response = getattr(error, "response", None)
    if isinstance(response, httpx2.Response):
        assert response.headers["retry-after"] == "1"
    assert gw.posts() == []


# -- prefixes -------------------------------------------------------------------------------------


@sdks
async def test_a_prefixed_base_url_stays_guarded(gw: Gateway, sdk: Sdk) -> None:
    run = sdk.connect(gw, prefix="/gw")
    try:
        with pytest.raises(Exception) as info:
            await run.call(sdk.image(run, TEXT_ONLY))
        assert gw.posts() == []
        result = await run.call(sdk.plain(run, TEXT_ONLY))
    finally:
        await run.close()
    sdk.assert_refused(info.value, "unsupported_capability")
    assert sdk.text_of(result) == "ok"
    assert [p.path for p in gw.posts()] == [upstream_path(sdk, TEXT_ONLY, "/gw")]


@pytest.mark.parametrize("sdk", [s for s in SDKS if not s.is_async], ids=str)
async def test_an_explicit_root_path_is_removed_before_matching(gw: Gateway, sdk: Sdk) -> None:
    run = sdk.connect(gw, prefix="/gw", root_path="/gw")
    try:
        with pytest.raises(Exception) as info:
            await run.call(sdk.image(run, TEXT_ONLY))
    finally:
        await run.close()
    sdk.assert_refused(info.value, "unsupported_capability")
    assert gw.posts() == []


# -- what passes untouched ------------------------------------------------------------------------


async def test_other_routes_pass_without_being_read() -> None:
    seen: list[httpx2.Request] = []

    def upstream(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json={"ok": True})

    def chunks() -> Iterator[bytes]:
        yield b"not json at all"

    inner = httpx2.MockTransport(upstream)
    guard = GuardTransport(RemoteCatalog("http://127.0.0.1:9"), transport=inner)
    with httpx2.Client(transport=guard, base_url="http://api.test") as client:
        files = client.post("/v1/files", content=chunks())
        listing = client.get("/v1/models")
    assert files.status_code == 200 and listing.status_code == 200
    assert [r.url.path for r in seen] == ["/v1/files", "/v1/models"]
    assert "modelguard" not in files.extensions


def test_refused_response_carries_the_verdict() -> None:
    from modelguard import Catalog

    guard = GuardTransport(Catalog.model_validate(CATALOG),
                           transport=httpx2.MockTransport(lambda r: httpx2.Response(500)))
    body = json.dumps({"model": "nope", "messages": [{"role": "user", "content": "hi"}]})
    with httpx2.Client(transport=guard, base_url="http://api.test") as client:
        response = client.post("/openai/v1/chat/completions", content=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unsupported_model"
    assert response.extensions["modelguard"].reason == "unsupported_model"


def test_one_http_stack_the_sdks_one() -> None:
    """modelguard (catalog, guard, transports, CLI) and the SDKs load httpx2 only. (google-genai
    also imports httpx when it happens to be installed; it does not depend on it.)"""
    code = (
        "import sys\n"
        "import modelguard, modelguard.cli, modelguard.transports\n"
        "import anthropic, openai\n"
        "assert 'httpx2' in sys.modules\n"
        "print(sorted(m for m in sys.modules if m == 'httpx' or m.startswith('httpx.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "[]"


async def test_a_streamed_request_body_is_checked_and_sent_whole() -> None:
    """A body given as an iterator (no Content-Length) is read once, checked, sent whole."""
    from modelguard import Catalog

    catalog = Catalog.model_validate(CATALOG)
    doc = {"model": TEXT_ONLY, "messages": [{"role": "user", "content": "hi " * 1000}]}
    raw = json.dumps(doc).encode()
    pieces = [raw[i:i + 512] for i in range(0, len(raw), 512)]
    received: list[bytes] = []

    def upstream(request: httpx2.Request) -> httpx2.Response:
        received.append(request.read())
        return httpx2.Response(200, json={"ok": True})

    async def async_upstream(request: httpx2.Request) -> httpx2.Response:
        received.append(await request.aread())
        return httpx2.Response(200, json={"ok": True})

    async def async_pieces():
        for piece in pieces:
            yield piece

    sync_guard = GuardTransport(catalog, transport=httpx2.MockTransport(upstream))
    with httpx2.Client(transport=sync_guard, base_url="http://api.test") as client:
        ok = client.post("/v1/chat/completions", content=iter(pieces))
        bad = client.post("/v1/chat/completions",
                          content=iter([raw.replace(TEXT_ONLY.encode(), b"nope")]))
    async_guard = AsyncGuardTransport(catalog, transport=httpx2.MockTransport(async_upstream))
    async with httpx2.AsyncClient(transport=async_guard, base_url="http://api.test") as client:
        async_ok = await client.post("/v1/chat/completions", content=async_pieces())
    assert ok.status_code == async_ok.status_code == 200
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "unsupported_model"
    assert received == [raw, raw]
    assert ok.extensions["modelguard"].model_id == TEXT_ONLY
