"""Helpers for the route fixtures (``tests/fixtures/routes/``): bodies, models, catalogs, and
an in-process run of the middleware that records what the app downstream received."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

from modelguard import Catalog

from .conftest import FIXTURES, catalog_of, model_entry

ROUTE_FIXTURES = sorted((FIXTURES / "routes").glob("*.json"))
_MULTIPART_MODEL = re.compile(rb'name="model"\r\n\r\n([^\r]*)\r\n')


def load(path: Path) -> dict[str, Any]:
    fx = json.loads(path.read_text())
    fx["raw"] = (base64.b64decode(fx["body_b64"]) if "body_b64" in fx
                 else json.dumps(fx["body"]).encode())
    return fx


def model_of(fx: dict[str, Any]) -> str:
    if "body" in fx:
        return fx["body"]["model"]
    match = _MULTIPART_MODEL.search(fx["raw"])
    assert match is not None
    return match.group(1).decode()


def resolve(body: Any, path: str) -> Any:
    node = body
    for key, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path):
        node = node[key] if key else node[int(index)]
    return node


def tags_of(labels: set[str] | list[str]) -> set[str]:
    """Catalog tags satisfying needs: an any-of label ``a|b`` is satisfied by ``a``."""
    return {label.split("|")[0] for label in labels}


def catalog_for(fx: dict[str, Any], tags: set[str], *, owner: str | None = None,
                main: bool = True, secondary: bool = True) -> Catalog:
    """The fixture's own model with ``tags`` (so the body is never changed), its secondary
    models with theirs, and a model that has everything."""
    entries = []
    if main:
        entries.append(model_entry(model_of(fx), tags, owner or fx["owner"]))
    if secondary:
        for path, needed in fx["secondary"].items():
            entries.append(model_entry(resolve(fx["body"], path), set(needed), "openai"))
    entries.append(model_entry("everything", {"vision", "audio", "video", "tool_use",
                                              "streaming", "thinking", "json_schema",
                                              "logprobs", "cache_control", "image_gen",
                                              "video_gen"}, fx["owner"]))
    unique = {e["id"]: e for e in entries}
    return catalog_of(*unique.values())


def target_of(fx: dict[str, Any]) -> str:
    return fx["path"] + (f"?{fx['query']}" if fx["query"] else "")


class Downstream:
    """The app behind the guard: keeps the bytes it received, answers 200."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


async def run_middleware(app: Any, fx: dict[str, Any], chunk: int = 4096
                         ) -> tuple[int, bytes]:
    """Send the fixture through ``app`` in chunks; (status, response body)."""
    raw = fx["raw"]
    pieces = [raw[i:i + chunk] for i in range(0, len(raw), chunk)] or [b""]
    headers = [(k.encode(), v.encode()) for k, v in fx["headers"].items()]
    headers += [(b"authorization", b"Bearer sk-test"),
                (b"content-length", str(len(raw)).encode())]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": fx["method"], "path": fx["path"], "raw_path": fx["path"].encode(),
             "query_string": fx["query"].encode(), "root_path": "", "headers": headers,
             "scheme": "http", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1)}
    queue = [{"type": "http.request", "body": p, "more_body": i < len(pieces) - 1}
             for i, p in enumerate(pieces)]
    out: list[dict] = []

    async def receive() -> dict:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        out.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in out if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in out if m["type"] == "http.response.body")
    return status, body
