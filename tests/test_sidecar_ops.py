"""``modelguard serve`` operations: environment configuration, liveness and readiness, request
ids, hashed key ids, log formats, SIGHUP reload, catalog and upstream gauges, the framing of
what it forwards (decisions.md §11) over raw sockets under both uvicorn parsers, and the
metrics collector middleware users mount themselves.

Every server is real (uvicorn on 127.0.0.1); requests come from the official SDKs, httpx, or a
raw socket for what no client sends.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from modelguard import Catalog, ModelGuardMiddleware
from modelguard.cli import _from_environment, _parser, main
from modelguard.serve import MetricsMiddleware
from modelguard.serve.sidecar import LogFormatter, create_app

from .conftest import model_entry
from .gateway import Gateway
from .test_sidecar import access_lines, metrics_of
from .upstream import StandIn, serve

TIMEOUT = 10.0
KEY = "sk-ops-test-key-0001"
HI = [{"role": "user", "content": "hi"}]
SERVE = {"access_log": False}
CATALOG_FILE = Path(__file__).parents[1] / "modelguard" / "data" / "catalog.json"
HEX_ID = re.compile(r"^[0-9a-f]{32}$")
PARSERS = ("h11", "httptools")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sample(metrics: dict, name: str, **labels: str) -> float | None:
    return metrics.get((name, tuple(sorted(labels.items()))))


def listing(*ids: str) -> dict[str, Any]:
    return {"object": "list", "data": [model_entry(i, {"streaming"}, owned_by="openai")
                                       for i in ids]}


def chat(model: str) -> bytes:
    return json.dumps({"model": model, "messages": HI}).encode()


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[StandIn, str]]:
    standin = StandIn(handler=_handler)
    with serve(standin.app) as server:
        yield standin, server.url


def _handler(req: Any) -> Any:
    from starlette.responses import JSONResponse
    if req.path == "/custom/upstream-id":
        return JSONResponse({"ok": True}, headers={"x-request-id": "req_upstream_1"})
    return None


@pytest.fixture
def sidecar(upstream: tuple[StandIn, str]) -> Iterator[tuple[StandIn, str, Any]]:
    standin, url = upstream
    standin.clear()
    app = create_app(url, str(CATALOG_FILE), read_timeout=TIMEOUT)
    with serve(app, **SERVE) as server:
        yield standin, server.url, app


class Spawned:
    """``python -m modelguard serve`` in a subprocess, stopped (and drained) at the end."""

    def __init__(self, args: list[str], env: dict[str, str], port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "modelguard", "serve", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env})
        self.err = ""

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                httpx.get(self.url + "/livez", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError(f"modelguard serve did not start: {self.err}")

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            _, err = self.process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate(timeout=5)
        self.err = err.decode()
        return self.err


# ============================================================================================
# Configuration from the environment
# ============================================================================================


def _parsed(argv: list[str], environ: dict[str, str]) -> tuple[Any, str | None]:
    args = _parser().parse_args(["serve", *argv])
    return args, _from_environment(args, args.parser, environ)


def test_every_serve_flag_comes_from_the_environment():
    env = {"MODELGUARD_UPSTREAM": "http://127.0.0.1:9", "MODELGUARD_HOST": "127.0.0.2",
           "MODELGUARD_PORT": "9091", "MODELGUARD_CATALOG": "cat.json",
           "MODELGUARD_CONNECT_TIMEOUT": "2.5", "MODELGUARD_READ_TIMEOUT": "30",
           "MODELGUARD_MODE": "report", "MODELGUARD_SHUTDOWN_TIMEOUT": "4",
           "MODELGUARD_LOG_LEVEL": "debug", "MODELGUARD_LOG_FORMAT": "text"}
    args, error = _parsed([], env)
    assert error is None
    assert (args.upstream, args.host, args.port, args.catalog, args.connect_timeout,
            args.read_timeout, args.mode, args.shutdown_timeout, args.log_level,
            args.log_format) == ("http://127.0.0.1:9", "127.0.0.2", 9091, "cat.json", 2.5, 30.0,
                                 "report", 4.0, "debug", "text")
    # Every option of `serve` has its variable (a new flag gets one too).
    options = [a for a in args.parser._actions if a.option_strings and a.dest != "help"]
    assert {f"MODELGUARD_{a.dest.upper()}" for a in options} >= set(env)


def test_the_command_line_wins_and_defaults_stay():
    args, error = _parsed(["--port", "7000", "--mode", "enforce"],
                          {"MODELGUARD_UPSTREAM": "http://u", "MODELGUARD_PORT": "9",
                           "MODELGUARD_MODE": "report"})
    assert error is None
    assert (args.port, args.mode, args.host, args.read_timeout, args.log_format) == \
        (7000, "enforce", "127.0.0.1", 600.0, "json")


@pytest.mark.parametrize(("value", "expected"), [
    ("1", True), ("true", True), ("YES", True), ("on", True),
    ("0", False), ("false", False), ("no", False), ("Off", False)])
def test_a_switch_reads_its_variable_as_a_boolean(value, expected):
    args, error = _parsed([], {"MODELGUARD_UPSTREAM": "http://u", "MODELGUARD_EMBEDDINGS": value})
    assert error is None
    assert args.embeddings is expected


def test_a_switch_with_another_word_is_a_usage_error():
    _, error = _parsed([], {"MODELGUARD_UPSTREAM": "http://u", "MODELGUARD_EMBEDDINGS": "maybe"})
    assert error is not None and "MODELGUARD_EMBEDDINGS" in error


def test_repeatable_values_keep_key_value_lists_together():
    args, error = _parsed([], {
        "MODELGUARD_UPSTREAM": "http://u",
        "MODELGUARD_TOOL_VENDORS": "web_search=openai,deepseek,code_interpreter=openai",
        "MODELGUARD_ACTION": "thinking=strip,max_tokens=clamp",
        "MODELGUARD_DISABLE_FAMILY": "tasks,embeddings"})
    assert error is None
    assert args.tool_vendors == [("web_search", ("openai", "deepseek")),
                                 ("code_interpreter", ("openai",))]
    assert args.action == ["thinking=strip", "max_tokens=clamp"]
    assert args.disable_family == ["tasks", "embeddings"]


@pytest.mark.parametrize(("name", "value"), [
    ("MODELGUARD_PORT", "eighty"), ("MODELGUARD_READ_TIMEOUT", "-1"),
    ("MODELGUARD_MODE", "block"), ("MODELGUARD_LOG_FORMAT", "xml")])
def test_a_bad_environment_value_is_a_usage_error_naming_it(monkeypatch, capsys, name, value):
    monkeypatch.setenv("MODELGUARD_UPSTREAM", "http://127.0.0.1:9")
    monkeypatch.setenv(name, value)
    assert main(["serve"]) == 2
    assert name in capsys.readouterr().err


def test_upstream_is_required_from_flag_or_environment(monkeypatch, capsys):
    monkeypatch.delenv("MODELGUARD_UPSTREAM", raising=False)
    assert main(["serve"]) == 2
    assert "MODELGUARD_UPSTREAM" in capsys.readouterr().err


def test_help_names_the_variables(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for name in ("MODELGUARD_UPSTREAM", "MODELGUARD_PORT", "MODELGUARD_LOG_FORMAT"):
        assert name in out


def test_serve_configured_only_by_environment_logs_text(upstream):
    standin, url = upstream
    standin.clear()
    port = free_port()
    spawned = Spawned([], {"MODELGUARD_UPSTREAM": url, "MODELGUARD_PORT": str(port),
                           "MODELGUARD_CATALOG": str(CATALOG_FILE),
                           "MODELGUARD_LOG_FORMAT": "text"}, port)
    try:
        spawned.wait_ready()
        response = httpx.post(spawned.url + "/v1/chat/completions", content=chat("gpt-5-4"),
                              headers={"authorization": f"Bearer {KEY}",
                                       "x-request-id": "env-run-1"}, timeout=TIMEOUT)
        assert response.status_code == 200
    finally:
        err = spawned.stop()
    assert standin.requests[-1].path == "/v1/chat/completions"
    access = [line for line in err.splitlines() if " modelguard.access" in line]
    assert len(access) == 1  # the call (the probes are not access-logged)
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO modelguard\.access ",
                    access[-1])
    assert "request_id=env-run-1" in access[-1] and "upstream_status=200" in access[-1]
    assert not any(line.startswith("{") for line in err.splitlines())
    assert KEY not in err


# ============================================================================================
# Liveness and readiness
# ============================================================================================


def test_livez_answers_while_readyz_reports_the_gateway_down():
    app = create_app(f"http://127.0.0.1:{free_port()}", connect_timeout=2)
    with serve(app, **SERVE) as server:
        live = httpx.get(server.url + "/livez", timeout=TIMEOUT)
        ready = httpx.get(server.url + "/readyz", timeout=TIMEOUT)
        health = httpx.get(server.url + "/healthz", timeout=TIMEOUT)
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
    assert health.status_code == 503  # kept, as /readyz
    assert ready.headers["cache-control"] == "no-store"


def test_readyz_in_service_mode_follows_the_catalog_gateway():
    gateway = Gateway()
    gateway.set_models(KEY, model_entry("gpt-5-4", {"streaming"}, owned_by="openai"))
    from modelguard import RemoteCatalog
    with serve(gateway.app()) as gateway_server, serve(StandIn().app) as up:
        catalog = RemoteCatalog(gateway_server.url, api_key=KEY)
        app = create_app(up.url, catalog)
        with serve(app, **SERVE) as server:
            ready = httpx.get(server.url + "/readyz", timeout=TIMEOUT)
            assert (ready.status_code, ready.json()["models"]) == (200, 1)
            gateway.fault = "500"
            catalog._entries.clear()  # nothing cached: readiness needs the gateway now
            time.sleep(1.1)  # past the probe cache
            not_ready = httpx.get(server.url + "/readyz", timeout=TIMEOUT)
            live = httpx.get(server.url + "/livez", timeout=TIMEOUT)
    assert not_ready.status_code == 503
    assert live.status_code == 200


# ============================================================================================
# Request ids and access lines
# ============================================================================================


def test_request_id_round_trip(sidecar, caplog):
    caplog.set_level(logging.INFO, logger="modelguard.access")
    standin, url, _ = sidecar
    sent = httpx.post(url + "/v1/chat/completions", content=chat("gpt-5-4"), timeout=TIMEOUT,
                      headers={"authorization": f"Bearer {KEY}", "x-request-id": "trace-42"})
    assert sent.headers["x-request-id"] == "trace-42"
    assert standin.requests[-1].header("x-request-id") == "trace-42"

    fresh = httpx.post(url + "/v1/chat/completions", content=chat("gpt-5-4"), timeout=TIMEOUT,
                       headers={"authorization": f"Bearer {KEY}"})
    generated = fresh.headers["x-request-id"]
    assert HEX_ID.match(generated)
    assert standin.requests[-1].header("x-request-id") == generated

    refused = httpx.post(url + "/v1/chat/completions", content=chat("no-such-model"),
                         timeout=TIMEOUT, headers={"authorization": f"Bearer {KEY}",
                                                   "x-request-id": "trace-43"})
    assert refused.status_code == 400 and refused.headers["x-request-id"] == "trace-43"

    hostile = httpx.post(url + "/v1/chat/completions", content=chat("gpt-5-4"),
                         timeout=TIMEOUT, headers={"authorization": f"Bearer {KEY}",
                                                   "x-request-id": "x" * 500})
    replaced = hostile.headers["x-request-id"]
    assert HEX_ID.match(replaced)
    assert standin.requests[-1].header("x-request-id") == replaced

    lines = access_lines(caplog, 4)
    by_id = {line["request_id"]: line for line in lines}
    assert set(by_id) == {"trace-42", generated, "trace-43", replaced}
    assert by_id["trace-42"]["upstream_status"] == 200
    assert isinstance(by_id["trace-42"]["upstream_ms"], float)
    assert by_id["trace-43"]["upstream_status"] is None  # refused: never sent
    key_ids = {line["key_id"] for line in lines}
    assert len(key_ids) == 1 and re.match(r"^[0-9a-f]{12}$", key_ids.pop())
    for line in lines:
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", line["ts"])
        assert KEY not in json.dumps(line)


def test_the_upstreams_own_request_id_is_kept_and_logged(sidecar, caplog):
    caplog.set_level(logging.INFO, logger="modelguard.access")
    _, url, _ = sidecar
    response = httpx.get(url + "/custom/upstream-id", timeout=TIMEOUT,
                         headers={"x-request-id": "mine-1"})
    assert response.headers.get_list("x-request-id") == ["req_upstream_1"]
    (line,) = access_lines(caplog, 1)
    assert (line["request_id"], line["upstream_request_id"]) == ("mine-1", "req_upstream_1")


def test_openai_sdk_sees_the_request_id(sidecar):
    _, url, _ = sidecar
    client = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0, timeout=TIMEOUT)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-5-4", messages=HI, extra_headers={"x-request-id": "sdk-7"})
    assert raw.headers["x-request-id"] == "sdk-7"


def test_log_formatter_json_and_text():
    record = logging.LogRecord("modelguard.access", logging.INFO, __file__, 1, "x", None, None)
    record.modelguard_access = {"ts": "2026-01-01T00:00:00.000Z", "request_id": "r1",
                                "path": "/v1/messages", "status": 200, "reason": None}
    as_json = json.loads(LogFormatter("json").format(record))
    assert as_json == {"ts": "2026-01-01T00:00:00.000Z", "level": "INFO",
                       "logger": "modelguard.access", "request_id": "r1",
                       "path": "/v1/messages", "status": 200, "reason": None}
    text = LogFormatter("text").format(record)
    assert text == ("2026-01-01T00:00:00.000Z INFO modelguard.access request_id=r1 "
                    "path=/v1/messages status=200")
    plain = logging.LogRecord("modelguard", logging.WARNING, __file__, 1, "a %s", ("b",), None)
    assert json.loads(LogFormatter("json").format(plain))["message"] == "a b"
    with pytest.raises(ValueError):
        LogFormatter("xml")


# ============================================================================================
# SIGHUP reloads the catalog file
# ============================================================================================


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signal")
def test_sighup_reloads_a_changed_catalog_file(upstream, tmp_path):
    standin, url = upstream
    standin.clear()
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps(listing("gpt-5-4")))
    port = free_port()
    spawned = Spawned(["--upstream", url, "--port", str(port), "--catalog", str(catalog)],
                      {}, port)

    def call(model: str) -> int:
        return httpx.post(spawned.url + "/v1/chat/completions", content=chat(model),
                          headers={"authorization": f"Bearer {KEY}"},
                          timeout=TIMEOUT).status_code

    def hangup_until(expect: dict[str, int]) -> dict[str, int]:
        spawned.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + TIMEOUT
        while True:
            seen = {model: call(model) for model in expect}
            if seen == expect or time.monotonic() > deadline:
                return seen
            time.sleep(0.05)

    try:
        spawned.wait_ready()
        assert (call("gpt-5-4"), call("gpt-5-5-mini")) == (200, 400)
        catalog.write_text(json.dumps(listing("gpt-5-5-mini")))
        assert hangup_until({"gpt-5-4": 400, "gpt-5-5-mini": 200}) == \
            {"gpt-5-4": 400, "gpt-5-5-mini": 200}
        catalog.write_text("{not json")  # a broken file keeps the catalog in use
        spawned.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + TIMEOUT
        metrics: dict = {}
        while time.monotonic() < deadline:
            metrics = metrics_of(spawned.url)
            if sample(metrics, "modelguard_catalog_reloads_total", outcome="failed"):
                break
            time.sleep(0.05)
        assert sample(metrics, "modelguard_catalog_reloads_total", outcome="ok") == 1
        assert sample(metrics, "modelguard_catalog_reloads_total", outcome="failed") == 1
        assert call("gpt-5-5-mini") == 200
        assert spawned.process.poll() is None  # SIGHUP no longer kills the process
    finally:
        err = spawned.stop()
    assert "catalog reloaded" in err and "added gpt-5-5-mini, removed gpt-5-4" in err
    assert "catalog reload failed" in err


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signal")
def test_sighup_without_a_catalog_file_keeps_serving(upstream):
    _, url = upstream
    port = free_port()
    spawned = Spawned(["--upstream", url, "--port", str(port)], {}, port)
    try:
        spawned.wait_ready()
        spawned.process.send_signal(signal.SIGHUP)  # the default action would end the process
        for _ in range(10):  # still answering while (and after) the signal is handled
            assert httpx.get(spawned.url + "/livez", timeout=TIMEOUT).status_code == 200
            time.sleep(0.05)
        assert spawned.process.poll() is None
    finally:
        err = spawned.stop()
    assert "the catalog is not a file" in err


def test_reload_in_process_keeps_requests_going(upstream, tmp_path):
    _, url = upstream
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps(listing("gpt-5-4")))
    app = create_app(url, str(catalog))
    sidecar = app.state.sidecar
    assert sidecar.catalog_file == catalog
    catalog.write_text(json.dumps(listing("gpt-5-4", "gpt-5-5-mini")))
    assert sidecar.reload() is True
    assert sidecar.source.catalog.ids == ["gpt-5-4", "gpt-5-5-mini"]
    catalog.unlink()
    assert sidecar.reload() is False
    assert sidecar.source.catalog.ids == ["gpt-5-4", "gpt-5-5-mini"]
    assert create_app(url, Catalog.from_file(CATALOG_FILE)).state.sidecar.reload() is False


# ============================================================================================
# Gauges: catalog age, last refresh, cached keys, upstream status and latency
# ============================================================================================


def test_gauges_for_a_file_catalog_and_the_upstream(sidecar):
    _, url, _ = sidecar
    before = time.time()
    metrics = metrics_of(url)
    assert sample(metrics, "modelguard_catalog_cached_keys") == 0
    assert 0 <= sample(metrics, "modelguard_catalog_age_seconds") < 60
    assert before - 60 < sample(metrics, "modelguard_catalog_last_refresh_timestamp_seconds") \
        <= time.time()
    assert sample(metrics, "modelguard_upstream_up") == 0  # nothing forwarded yet
    response = httpx.post(url + "/v1/chat/completions", content=chat("gpt-5-4"),
                          headers={"authorization": f"Bearer {KEY}"}, timeout=TIMEOUT)
    assert response.status_code == 200
    metrics = metrics_of(url)
    assert sample(metrics, "modelguard_upstream_up") == 1
    assert sample(metrics, "modelguard_upstream_last_status") == 200
    assert sample(metrics, "modelguard_upstream_responses_total", code="200") == 1
    assert sample(metrics, "modelguard_upstream_seconds_count") == 1
    assert sample(metrics, "modelguard_upstream_seconds_sum") > 0


def test_upstream_gauges_when_it_fails():
    app = create_app(f"http://127.0.0.1:{free_port()}", str(CATALOG_FILE), connect_timeout=2)
    with serve(app, **SERVE) as server:
        response = httpx.get(server.url + "/v1/files", timeout=TIMEOUT)
        metrics = metrics_of(server.url)
    assert response.status_code == 502
    assert sample(metrics, "modelguard_upstream_up") == 0
    assert sample(metrics, "modelguard_upstream_last_status") == 0
    assert sample(metrics, "modelguard_upstream_errors_total", kind="connect") == 1


def test_gauges_for_a_remote_catalog_count_cached_keys():
    gateway = Gateway()
    gateway.set_models("*", model_entry("gpt-5-4", {"streaming"}, owned_by="openai"))
    with serve(gateway.app()) as gateway_server, serve(StandIn().app) as up, \
            serve(create_app(up.url, gateway_server.url), **SERVE) as server:
        before = time.time()
        metrics = metrics_of(server.url)
        assert sample(metrics, "modelguard_catalog_cached_keys") == 0
        assert sample(metrics, "modelguard_catalog_age_seconds") is None
        for key in ("sk-one-0000000001", "sk-two-0000000002"):
            assert httpx.post(server.url + "/v1/chat/completions", content=chat("gpt-5-4"),
                              headers={"authorization": f"Bearer {key}"},
                              timeout=TIMEOUT).status_code == 200
        metrics = metrics_of(server.url)
        text = httpx.get(server.url + "/metrics", timeout=TIMEOUT).text
    assert sample(metrics, "modelguard_catalog_cached_keys") == 2
    assert 0 <= sample(metrics, "modelguard_catalog_age_seconds") < 60
    assert before - 1 <= sample(metrics,
                                "modelguard_catalog_last_refresh_timestamp_seconds") <= time.time()
    assert "sk-one" not in text and "sk-two" not in text


# ============================================================================================
# Framing (decisions.md §11): the sidecar frames what it forwards; client errors are 502
# ============================================================================================


def raw_exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` as is and read until the server closes (bounded)."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(request)
        chunks = []
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0


@pytest.fixture(scope="module", params=PARSERS)
def parsed(request: pytest.FixtureRequest, upstream) -> Iterator[tuple[StandIn, int]]:
    standin, url = upstream
    app = create_app(url, str(CATALOG_FILE), read_timeout=TIMEOUT)
    with serve(app, http=request.param, **SERVE) as server:
        yield standin, server.port


FRAMING_CASES = {
    # name: (request head after the request line, body, forwarded body)
    "leading-zeros": (b"Content-Length: 0005\r\n", b"hello", b"hello"),
    "chunked": (b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n3\r\n, w\r\n0\r\n\r\n",
                b"hello, w"),
    "chunked-with-extension": (b"Transfer-Encoding: chunked\r\n",
                               b"5;ext=1\r\nhello\r\n0\r\n\r\n", b"hello"),
    "length-and-chunked": (b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
                           b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
    "repeated-length": (b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello", b"hello"),
    "empty-post": (b"Content-Length: 0\r\n", b"", b""),
}


#: Framings a server's own parser may refuse with a 400 before the sidecar sees the request.
PARSER_MAY_REFUSE = {"length-and-chunked", "repeated-length"}


@pytest.mark.parametrize("case", sorted(FRAMING_CASES))
def test_client_framing_is_never_forwarded(parsed, case):
    standin, port = parsed
    standin.clear()
    head, body, forwarded = FRAMING_CASES[case]
    request = (b"POST /v1/uploads/u1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + head +
               b"\r\n" + body)
    status = status_of(raw_exchange(port, request))
    assert 0 < status < 500, case  # the stand-in's own answer (404: no such route), or 400
    if not standin.requests:  # the server's parser refused the framing itself
        assert status == 400 and case in PARSER_MAY_REFUSE, case
        return
    (seen,) = standin.requests
    assert seen.body == forwarded
    lengths = [v for k, v in seen.headers if k == "content-length"]
    codings = [v for k, v in seen.headers if k == "transfer-encoding"]
    # One framing, chosen by the sidecar: the exact length, or chunked; never both.
    assert (lengths, codings) in (([str(len(forwarded))], []), ([], ["chunked"]))


def test_a_guarded_body_in_parts_keeps_an_exact_length(parsed):
    standin, port = parsed
    standin.clear()
    body = chat("gpt-5-4")
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
               b"Authorization: Bearer " + KEY.encode() + b"\r\nContent-Type: application/json"
               b"\r\nContent-Length: 00" + str(len(body)).encode() + b"\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(request + body[:10])
        time.sleep(0.05)  # the body arrives in two parts
        sock.sendall(body[10:])
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    assert status_of(response) == 200
    (seen,) = standin.requests
    assert seen.body == body
    assert [v for k, v in seen.headers if k == "content-length"] == [str(len(body))]


ODD_HEADERS = {
    "del-in-value": b"X-Odd: a\x7fb\r\n",
    "high-bytes-value": b"X-Odd: caf\xc3\xa9\r\n",
    "nul-in-value": b"X-Odd: a\x00b\r\n",
    "control-in-value": b"X-Odd: a\x01b\r\n",
    "odd-name": b"X{Odd}: a\r\n",
    "space-before-colon": b"X-Odd : a\r\n",
    "empty-name": b": a\r\n",
    "obs-fold": b"X-Odd: a\r\n b\r\n",
    "bare-lf": b"X-Odd: a\nX-Two: b\r\n",
}


@pytest.mark.parametrize("case", sorted(ODD_HEADERS))
def test_odd_header_bytes_never_give_a_5xx(parsed, case):
    """Whatever a parser lets through, the HTTP client either sends it or the caller gets a
    502; never a 500, never a header split into two."""
    standin, port = parsed
    standin.clear()
    request = (b"GET /v1/files HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" +
               ODD_HEADERS[case] + b"\r\n")
    status = status_of(raw_exchange(port, request))
    assert status in (200, 400, 502), case
    if status == 200:
        (seen,) = standin.requests
        assert seen.header("x-odd") is not None
        assert all("\n" not in value and "\r" not in value for _, value in seen.headers)
    else:
        assert standin.requests == []


class BrokenUpstream:
    """A raw TCP upstream that answers each connection with fixed bytes (what no server
    library sends), then closes."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                    conn.sendall(self.answer)
                except OSError:
                    pass

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


BROKEN_ANSWERS = {
    "closed-without-answer": b"",
    "not-http": b"SSH-2.0-OpenSSH_9.6\r\n",
    "bad-status-line": b"HTTP/1.1 twohundred OK\r\n\r\n",
    "bad-content-length": b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n{}",
    "two-content-lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    "bad-header-line": b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
}


@pytest.mark.parametrize("http", PARSERS)
@pytest.mark.parametrize("case", sorted(BROKEN_ANSWERS))
def test_protocol_errors_of_the_client_are_502_in_the_callers_shape(case, http):
    broken = BrokenUpstream(BROKEN_ANSWERS[case])
    try:
        app = create_app(f"http://127.0.0.1:{broken.port}", str(CATALOG_FILE),
                         read_timeout=5, connect_timeout=2)
        with serve(app, http=http, **SERVE) as server:
            answer = httpx.post(server.url + "/v1/messages", timeout=TIMEOUT,
                                headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
                                json={"model": "claude-sonnet-4-6", "max_tokens": 10,
                                      "messages": HI})
            other = httpx.get(server.url + "/v1/files", timeout=TIMEOUT,
                              headers={"authorization": f"Bearer {KEY}"})
    finally:
        broken.close()
    assert answer.status_code == 502, case
    assert answer.json()["type"] == "error"  # Anthropic's shape
    assert answer.json()["error"]["type"] == "api_error"
    assert other.status_code == 502
    assert other.json()["error"]["code"] == "upstream_unreachable"  # OpenAI's shape


# ============================================================================================
# The collector for middleware users
# ============================================================================================


def test_metrics_middleware_counts_what_the_guard_decided():
    api = FastAPI()

    @api.post("/v1/chat/completions")
    async def completions() -> dict[str, Any]:
        return {"ok": True}

    @api.get("/other")
    async def other() -> dict[str, Any]:
        return {"ok": True}

    api.add_middleware(ModelGuardMiddleware, catalog=Catalog.from_file(CATALOG_FILE))
    api.add_middleware(MetricsMiddleware)
    with TestClient(api) as client:
        auth = {"authorization": f"Bearer {KEY}"}
        assert client.post("/v1/chat/completions", content=chat("gpt-5-4"),
                           headers=auth).status_code == 200
        assert client.post("/v1/chat/completions", content=chat("nope"),
                           headers=auth).status_code == 400
        assert client.get("/other").status_code == 200
        text = client.get("/metrics").text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("modelguard_requests_total",
                    (("outcome", "allowed"), ("protocol", "openai")))] == 1
    assert samples[("modelguard_requests_total",
                    (("outcome", "rejected"), ("protocol", "openai")))] == 1
    assert samples[("modelguard_requests_total",
                    (("outcome", "passthrough"), ("protocol", "none")))] == 1
    assert samples[("modelguard_rejections_total", (("model", "other"), ("protocol", "openai"),
                                                    ("reason", "unsupported_model")))] == 1
    assert samples[("modelguard_catalog_cached_keys", ())] == 0
    assert ("modelguard_catalog_age_seconds", ()) in samples
    assert KEY not in text
