"""``modelguard check`` and ``modelguard serve`` cover the routes of routes.md: the route
settings as flags, route names in reports, access logs and metrics."""

from __future__ import annotations

import base64
import json
import logging

import openai
import pytest

from modelguard.cli import _parser, _route_settings, main
from modelguard.serve.sidecar import create_app

from .conftest import FIXTURES
from .test_sidecar import CATALOG_FILE, SERVE, access_lines, metrics_of, oai_at, sample
from .upstream import StandIn, serve


def _request(path: str, body: dict) -> dict:
    return {"method": "POST", "path": path, "headers": {"content-type": "application/json"},
            "body": body}


def _rows(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_check_covers_the_new_routes(tmp_path, capsys) -> None:
    file = tmp_path / "r.jsonl"
    lines = [
        _request("/v1/responses", {"model": "gpt-5-4", "input": "hi"}),
        _request("/responses", {"model": "gpt-5.4", "input": "hi"}),
        _request("/v1/tasks/submit", {"model": "gpt-5-4", "prompt": "wave"}),
        _request("/v1/embeddings", {"model": "nope", "input": "x"}),
    ]
    file.write_text("\n".join(json.dumps(line) for line in lines))
    assert main(["check", "--json", str(file)]) == 1
    rows = _rows(capsys)
    assert [r["allowed"] for r in rows] == [True, False, False, True]
    assert [r["route"] for r in rows] == ["/v1/responses", "/v1/responses",
                                          "/v1/tasks/submit", None]
    assert rows[1]["error"]["error"]["code"] == "unsupported_model"
    assert main(["check", "--json", "--embeddings", str(file)]) == 1
    assert _rows(capsys)[3]["error"]["error"]["code"] == "unsupported_model"
    assert main(["check", "--json", "--disable-family", "responses",
                 "--disable-family", "tasks", str(file)]) == 0
    assert all(r["allowed"] for r in _rows(capsys))


def test_check_reads_a_multipart_request(tmp_path, capsys) -> None:
    fx = json.loads((FIXTURES / "routes" / "images-edit.json").read_text())
    record = {"method": "POST", "path": fx["path"], "headers": fx["headers"],
              "body_base64": fx["body_b64"]}
    file = tmp_path / "edit.json"
    file.write_text(json.dumps(record))
    assert main(["check", "--json", str(file)]) == 0
    row = _rows(capsys)[0]
    assert row["route"] == "/v1/images/edits" and row["model"] == "gpt-image-2"
    assert set(row["required"]) == {"image_gen", "vision"}
    raw = base64.b64decode(fx["body_b64"]).replace(b"gpt-image-2", b"gpt-image-9")
    file.write_text(json.dumps(dict(record, body_base64=base64.b64encode(raw).decode())))
    assert main(["check", "--json", str(file)]) == 1
    assert _rows(capsys)[0]["error"]["error"]["code"] == "unsupported_model"
    file.write_text(json.dumps(dict(record, body_base64="not base64!")))
    assert main(["check", str(file)]) == 2


def test_check_stored_state_and_tool_vendor_flags(tmp_path, capsys) -> None:
    file = tmp_path / "r.jsonl"
    file.write_text("\n".join(json.dumps(line) for line in [
        _request("/v1/responses", {"model": "gpt-5-4", "input": "x",
                                   "previous_response_id": "resp_1"}),
        _request("/v1/messages", {"model": "claude-sonnet-4-6", "max_tokens": 10,
                                  "messages": [{"role": "user", "content": "x"}],
                                  "tools": [{"type": "web_search_20250305",
                                             "name": "web_search"}]}),
    ]))
    assert main(["check", "--json", str(file)]) == 0
    capsys.readouterr()
    assert main(["check", "--json", "--stored-state", "refuse",
                 "--tool-vendor", "web_search=openai", str(file)]) == 1
    rows = _rows(capsys)
    assert rows[0]["error"]["error"]["param"] == "previous_response_id"
    assert rows[1]["error"]["error"]["type"] == "unsupported_capability"


@pytest.mark.parametrize("bad", ["web_search", "=openai", "web_search=", "web_search=,"])
def test_tool_vendor_flag_usage_errors(bad: str, capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["check", "--tool-vendor", bad, "x.json"])
    assert caught.value.code == 2


def test_serve_flags_reach_the_settings() -> None:
    args = _parser().parse_args([
        "serve", "--upstream", "http://127.0.0.1:9", "--embeddings", "--stored-state", "refuse",
        "--tool-vendor", "web_search=openai,deepseek", "--tool-vendor", "web_search=xai",
        "--websockets", "pass", "--disable-family", "videos"])
    assert _route_settings(args) == {
        "embeddings": True, "tool_vendors": {"web_search": {"openai", "deepseek", "xai"}},
        "stored_state": "refuse", "route_families": {"videos": False}}
    assert args.websockets == "pass"


def test_sidecar_logs_and_counts_routes(caplog) -> None:
    caplog.set_level(logging.INFO, logger="modelguard.access")
    standin = StandIn()
    with serve(standin.app) as upstream, \
            serve(create_app(upstream.url, str(CATALOG_FILE)), **SERVE) as sidecar:
        client = oai_at(sidecar.url)
        with pytest.raises(openai.BadRequestError) as caught:
            client.responses.create(model="gpt-5.4", input="hi")
        assert (caught.value.code, caught.value.param) == ("unsupported_model", "model")
        with pytest.raises(openai.BadRequestError):
            client.images.edit(model="gpt-5-4", image=("a.png", b"\x89PNG", "image/png"),
                               prompt="hat")
        lines = access_lines(caplog, 2)
        metrics = metrics_of(sidecar.url)
    assert standin.requests == []
    assert sorted(line["route"] for line in lines) == ["/v1/images/edits", "/v1/responses"]
    for route in ("/v1/responses", "/v1/images/edits"):
        assert sample(metrics, "modelguard_route_requests_total", route=route,
                      outcome="rejected") == 1
