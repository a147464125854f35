"""The official openai SDK against the guarded stand-in over real HTTP (uvicorn on 127.0.0.1):
refusals on every route of routes.md raise ``openai.BadRequestError`` with ``.code`` and
``.param``, and nothing reaches the upstream; websockets to guarded routes get HTTP 403."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
import websockets.sync.client as ws_client
from websockets.exceptions import InvalidStatus

from modelguard import ModelGuardMiddleware

from .conftest import catalog_of, model_entry
from .upstream import StandIn, serve

KEY = "sk-test-key"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC")
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()
IMAGE = [{"role": "user", "content": [{"type": "input_text", "text": "Look."},
                                      {"type": "input_image", "image_url": PNG_URL}]}]
CATALOG = catalog_of(
    model_entry("gpt-5-4", {"tool_use", "streaming", "json_schema"}, "openai"),
    model_entry("gpt-image-2", {"image_gen"}, "openai"),
    model_entry("sora-2", {"video_gen"}, "openai"),
    model_entry("deepseek-v4", {"tool_use", "streaming"}, "deepseek"),
    model_entry("gpt-5-4-mini", set(), "openai", max_output_tokens=1024),
)


@pytest.fixture(scope="module")
def env() -> Iterator[tuple[StandIn, str]]:
    standin = StandIn()
    app = ModelGuardMiddleware(standin.app, catalog=CATALOG, embeddings=True)
    with serve(app, ws="websockets-sansio") as server:
        yield standin, server.url


@pytest.fixture
def client(env) -> Iterator[openai.OpenAI]:
    standin, url = env
    standin.clear()
    with openai.OpenAI(api_key=KEY, base_url=url + "/v1", max_retries=0, timeout=10) as c:
        yield c
    assert standin.requests == []  # every call below is refused before the upstream


def _drain(result: Any) -> None:
    for _ in result:
        pass


def _stream(c: openai.OpenAI) -> None:
    with c.responses.stream(model="gpt-5-4", input=IMAGE) as stream:
        _drain(stream)


CALLS: dict[str, tuple[Callable[[openai.OpenAI], Any], str, str | None]] = {
    "responses-unknown-model": (
        lambda c: c.responses.create(model="gpt-5-4-turbo", input="hi"),
        "unsupported_model", "model"),
    "responses-no-model": (
        lambda c: c.responses.create(input="hi"), "invalid_param", "model"),
    "responses-image": (
        lambda c: c.responses.create(model="gpt-5-4", input=IMAGE),
        "unsupported_capability", "input[0].content[1]"),
    "responses-create-stream": (
        lambda c: _drain(c.responses.create(model="gpt-5-4", input=IMAGE, stream=True)),
        "unsupported_capability", "input[0].content[1]"),
    "responses-stream-helper": (_stream, "unsupported_capability", "input[0].content[1]"),
    "responses-parse": (
        lambda c: c.responses.parse(model="gpt-5-4", input=IMAGE),
        "unsupported_capability", "input[0].content[1]"),
    "responses-vendor": (
        lambda c: c.responses.create(model="deepseek-v4", input="hi",
                                     tools=[{"type": "web_search"}]),
        "unsupported_capability", "tools[0]"),
    "responses-unknown-content": (
        lambda c: c.responses.create(model="gpt-5-4", input=[
            {"role": "user", "content": [{"type": "input_hologram"}]}]),
        "unsupported_content", "input[0].content[0]"),
    "responses-max-output": (
        lambda c: c.responses.create(model="gpt-5-4-mini", input="hi", max_output_tokens=4096),
        "max_tokens_exceeded", "max_output_tokens"),
    "input-tokens": (
        lambda c: c.responses.input_tokens.count(model="gpt-5-4", input=IMAGE),
        "unsupported_capability", "input[0].content[1]"),
    "compact": (
        lambda c: c.responses.compact(model="gpt-5-4", input=IMAGE),
        "unsupported_capability", "input[0].content[1]"),
    "images-edit": (
        lambda c: c.images.edit(model="gpt-5-4", image=("a.png", PNG, "image/png"),
                                prompt="hat"),
        "unsupported_capability", "model"),
    "images-edit-vision": (
        lambda c: c.images.edit(model="gpt-image-2", image=("a.png", PNG, "image/png"),
                                prompt="hat"),
        "unsupported_capability", "image"),
    "images-variation": (
        lambda c: c.images.create_variation(model="nope", image=("a.png", PNG, "image/png")),
        "unsupported_model", "model"),
    "images-generate-stream": (
        lambda c: _drain(c.images.generate(model="gpt-image-2", prompt="x", stream=True)),
        "unsupported_capability", "stream"),
    "videos-create": (
        lambda c: c.videos.create(model="gpt-image-2", prompt="wave"),
        "unsupported_capability", "model"),
    "embeddings": (
        lambda c: c.embeddings.create(model="text-embedding-9", input="hi"),
        "unsupported_model", "model"),
    "tasks-submit": (
        lambda c: c.post("/tasks/submit", cast_to=object,
                         body={"model": "gpt-5-4", "params": {"prompt": "wave"}}),
        "unsupported_capability", "model"),
    "v1beta-openai-chat": (
        lambda c: openai.OpenAI(api_key=KEY, base_url=str(c.base_url)[:-4] + "/v1beta/openai",
                                max_retries=0).chat.completions.create(
            model="gpt-5-4", messages=[{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": PNG_URL}}]}]),
        "unsupported_capability", "messages[0].content[0]"),
    "responses-no-v1": (
        lambda c: openai.OpenAI(api_key=KEY, base_url=str(c.base_url)[:-4], max_retries=0)
        .responses.create(model="gpt-5-4", input=IMAGE),
        "unsupported_capability", "input[0].content[1]"),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_sdk_raises_bad_request_with_code_and_param(client: openai.OpenAI, name: str) -> None:
    call, code, param = CALLS[name]
    with pytest.raises(openai.BadRequestError) as caught:
        call(client)
    error = caught.value
    assert (error.code, error.param, error.type) == (code, param, "invalid_request_error")
    assert error.status_code == 400 and error.message


@pytest.mark.parametrize("path", ["/v1/responses", "/responses", "/v1/images/edits"])
def test_websocket_to_a_guarded_route_gets_403(env, path: str) -> None:
    standin, url = env
    with pytest.raises(InvalidStatus) as caught:
        ws_client.connect("ws" + url[4:] + path, open_timeout=5,
                          additional_headers={"Authorization": f"Bearer {KEY}"})
    response = caught.value.response
    assert response.status_code == 403
    error = json.loads(response.body)["error"]
    assert error["code"] == "permission_denied" and "websockets='pass'" in error["message"]


def test_websocket_passes_when_allowed() -> None:
    seen: list[str] = []

    async def app(scope, receive, send) -> None:
        if scope["type"] == "websocket":
            seen.append(scope["path"])
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 1000})

    guarded = ModelGuardMiddleware(app, catalog=CATALOG, websockets="pass")
    with serve(guarded, ws="websockets-sansio", lifespan="off") as server, \
            ws_client.connect(f"ws://127.0.0.1:{server.port}/v1/responses", open_timeout=5):
        pass
    assert seen == ["/v1/responses"]
