"""Multipart routes (routes.md D11): every reading two multipart parsers could disagree on is
refused (400), other media types are 415, and nothing ever becomes a 500."""

from __future__ import annotations

import gzip
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelguard import Guard, ModelGuardMiddleware

from .conftest import FIXTURES, catalog_of, model_entry
from .routes_common import Downstream, load, run_middleware

B = "b0undary"
CATALOG = catalog_of(model_entry("gpt-image-2", {"image_gen", "vision", "streaming"}, "openai"),
                     model_entry("sora-2", {"video_gen", "vision"}, "openai"),
                     model_entry("gpt-5-4", set(), "openai"))
PNG = b"\x89PNG\r\n\x1a\n-not-really-"


def part(name: str, value: bytes | str, *, filename: str | None = None,
         headers: str = "", disposition: str | None = None) -> bytes:
    value = value.encode() if isinstance(value, str) else value
    head = disposition or f'form-data; name="{name}"' + (
        f'; filename="{filename}"' if filename is not None else "")
    return (f"--{B}\r\nContent-Disposition: {head}\r\n{headers}\r\n").encode() + value + b"\r\n"


def body(*parts: bytes, end: bytes = b"") -> bytes:
    return b"".join(parts) + f"--{B}--\r\n".encode() + end


GOOD = body(part("model", "gpt-image-2"), part("prompt", "a hat"),
            part("image", PNG, filename="a.png", headers="Content-Type: image/png\r\n"))


async def check(raw: bytes, *, content_type: str | None = f"multipart/form-data; boundary={B}",
                path: str = "/v1/images/edits", headers: dict | None = None):
    sent = dict(headers or {})
    if content_type is not None:
        sent["content-type"] = content_type
    return await Guard(CATALOG).check("POST", path, sent, raw)


def _error(verdict) -> tuple[int, str, str | None]:
    error = json.loads(verdict.body)["error"]
    return verdict.status, error["code"], error["param"]


async def test_good_body_allowed_with_vision_and_image_gen() -> None:
    verdict = await check(GOOD)
    assert verdict.allowed and verdict.required == {"image_gen", "vision"}


async def test_real_sdk_body_passes_byte_for_byte_and_gzip_is_read() -> None:
    fx = load(FIXTURES / "routes" / "images-edit.json")
    catalog = catalog_of(model_entry("gpt-image-2", {"image_gen", "vision"}, "openai"))
    downstream = Downstream()
    status, _ = await run_middleware(ModelGuardMiddleware(downstream, catalog), fx, chunk=7)
    assert status == 200 and downstream.bodies == [fx["raw"]]
    packed = dict(fx, raw=gzip.compress(fx["raw"]),
                  headers=dict(fx["headers"], **{"content-encoding": "gzip"}))
    downstream = Downstream()
    status, _ = await run_middleware(ModelGuardMiddleware(downstream, catalog), packed)
    assert status == 200 and downstream.bodies == [packed["raw"]]


HOSTILE = {
    "truncated": GOOD[:-12],
    "no-closing-boundary": GOOD.replace(f"--{B}--\r\n".encode(), b""),
    "junk-after-closing": GOOD + b"--" + B.encode() + b"\r\nmore",
    "second-closing": GOOD + f"\r\n--{B}--\r\n".encode(),
    "preamble": b"hello\r\n" + GOOD,
    "bad-header-line": body(part("model", "gpt-image-2", headers="no colon here\r\n")),
    "repeated-model": body(part("model", "gpt-image-2"), part("model", "gpt-5-4")),
    "repeated-disposition-param": body(part(
        "model", "gpt-5-4", disposition='form-data; name="model"; name="prompt"')),
    "rfc2231-name": body(part("model", "gpt-5-4",
                              disposition="form-data; name*=UTF-8''model")),
    "backslash-in-name": body(part("model", "gpt-5-4", disposition='form-data; name="mo\\del"')),
    "model-as-file": body(part("model", "gpt-image-2", filename="m.txt")),
    "transfer-encoding": body(part("model", "Z3B0LWltYWdlLTI=",
                                   headers="Content-Transfer-Encoding: base64\r\n")),
    "model-not-utf8": body(part("model", b"gpt-image-\xff")),
    "model-utf16-charset": body(part("model", "gpt-image-2",
                                     headers="Content-Type: text/plain; charset=utf-16\r\n")),
    "case-folded-name": body(part("Model", "gpt-5-4"), part("model", "gpt-image-2")),
    "unicode-folded-name": body(part("model", "gpt-image-2"), part("ſtream", "true")),
    "repeated-part-header": body(part("model", "gpt-image-2", headers=(
        'Content-Disposition: form-data; name="prompt"\r\n'))),
    "no-disposition": (f"--{B}\r\nContent-Type: text/plain\r\n\r\nx\r\n--{B}--\r\n").encode(),
    "not-form-data": body(part("model", "gpt-5-4", disposition='attachment; name="model"')),
    "missing-model": body(part("prompt", "x")),
    "empty-model": body(part("model", "")),
    "oversized-model": body(part("model", "m" * (64 * 1024 + 1))),
    "stream-not-boolean": body(part("model", "gpt-image-2"), part("stream", "yes")),
    "empty": b"",
}


@pytest.mark.parametrize("name", list(HOSTILE))
async def test_hostile_multipart_refused_400(name: str) -> None:
    verdict = await check(HOSTILE[name])
    assert not verdict.allowed
    status, code, _ = _error(verdict)
    assert (status, code) == (400, "invalid_param"), verdict.body


@pytest.mark.parametrize("content_type", [
    "multipart/form-data", "multipart/form-data; boundary=", "multipart/mixed; boundary=b0undary",
    "application/json", "application/x-www-form-urlencoded", None,
])
async def test_other_media_types_415(content_type: str | None) -> None:
    verdict = await check(GOOD, content_type=content_type)
    assert _error(verdict)[:2] == (415, "unsupported_media_type")


async def test_conflicting_content_types_refused() -> None:
    verdict = await Guard(CATALOG).check("POST", "/v1/images/edits", [
        ("content-type", f"multipart/form-data; boundary={B}"),
        ("content-type", "multipart/form-data; boundary=other")], GOOD)
    assert _error(verdict)[:2] == (400, "invalid_param")


async def test_repeated_boundary_parameter_refused() -> None:
    verdict = await check(GOOD, content_type=f"multipart/form-data; boundary={B}; boundary=x")
    assert not verdict.allowed and verdict.status == 400


async def test_multipart_on_json_routes_stays_415() -> None:
    verdict = await check(GOOD, path="/v1/responses")
    assert _error(verdict)[:2] == (415, "unsupported_media_type")


@pytest.mark.parametrize(("raw", "path", "code", "param"), [
    (body(part("model", "gpt-5-4"), part("image", PNG, filename="a")), "/v1/images/edits",
     "unsupported_capability", "model"),
    (body(part("model", "nope")), "/v1/images/variations", "unsupported_model", "model"),
    (body(part("model", "gpt-image-2"), part("svg[model]", "nope")), "/v1/images/edits",
     "unsupported_model", "svg[model]"),
    (body(part("model", "sora-2"), part("prompt", "x")), "/v1/images/edits",
     "unsupported_capability", "model"),
    (body(part("model", "gpt-image-2"), part("prompt", "x")), "/v1/videos",
     "unsupported_capability", "model"),
])
async def test_policy_refusals_name_the_form_field(raw, path, code, param) -> None:
    verdict = await check(raw, path=path)
    assert _error(verdict) == (400, code, param)


async def test_file_part_needs_vision_by_name_not_content_type() -> None:
    catalog = catalog_of(model_entry("gpt-image-2", {"image_gen"}, "openai"))
    raw = body(part("model", "gpt-image-2"),
               part("image[]", b"text", filename="x.txt", headers="Content-Type: text/plain\r\n"))
    verdict = await Guard(catalog).check(
        "POST", "/v1/images/edits", {"content-type": f"multipart/form-data; boundary={B}"}, raw)
    assert _error(verdict) == (400, "unsupported_capability", "image[]")


async def test_every_truncation_refused() -> None:
    for cut in range(len(GOOD) - 2):  # dropping only the final CRLF is still a whole body
        verdict = await check(GOOD[:cut])
        assert not verdict.allowed and verdict.status == 400, cut


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
async def test_mutated_bodies_never_500(data) -> None:
    raw = bytearray(GOOD)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw)))
        action = data.draw(st.sampled_from(["insert", "delete", "flip"]))
        if action == "insert":
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del raw[at:at + data.draw(st.integers(1, 8))]
        elif at < len(raw):
            raw[at] ^= data.draw(st.integers(1, 255))
    downstream = Downstream()
    fx = {"method": "POST", "path": "/v1/images/edits", "query": "", "raw": bytes(raw),
          "headers": {"content-type": f"multipart/form-data; boundary={B}"}}
    status, answer = await run_middleware(ModelGuardMiddleware(downstream, CATALOG), fx)
    assert status in (200, 400, 415)
    if status == 200:
        assert downstream.bodies == [bytes(raw)]
    else:
        assert downstream.bodies == [] and json.loads(answer)["error"]["code"]
