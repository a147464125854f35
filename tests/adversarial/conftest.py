"""Fixtures for the adversarial corpus: log capture and real uvicorn servers on 127.0.0.1."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from modelguard import Catalog, ModelGuardMiddleware
from modelguard.serve.sidecar import create_app

from .harness import Recorder

SERVERS = ("h11", "httptools")


class Capture(logging.Handler):
    """Keeps every record of the loggers it is attached to (guard bugs, ASGI exceptions)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def problems(self, since: int = 0) -> list[str]:
        """Internal guard errors (fail-closed crashes) and exceptions the server logged."""
        out = []
        for record in self.records[since:]:
            message = record.getMessage()
            if record.name == "modelguard" and (record.exc_info or "internal error" in message):
                out.append(f"modelguard: {message} {record.exc_info and record.exc_info[1]!r}")
            elif record.name.startswith("uvicorn") and record.levelno >= logging.ERROR:
                out.append(f"{record.name}: {message} {record.exc_info and record.exc_info[1]!r}")
        return out


@pytest.fixture(scope="session")
def capture() -> Iterator[Capture]:
    handler = Capture()
    loggers = [logging.getLogger(name) for name in ("modelguard", "uvicorn.error")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return Catalog.default()


class ServerThread:
    """uvicorn serving the guarded recorder in a background thread, on a free port.

    With ``app``, uvicorn serves that instead (the sidecar in front of ``recorder``, which is
    then itself served over HTTP); with neither ``app`` nor ``catalog``, the bare recorder."""

    def __init__(self, http: str, catalog: Catalog | None, app: object | None = None,
                 recorder: Recorder | None = None) -> None:
        self.recorder = recorder or Recorder()
        if app is None:  # no catalog: the bare recorder (an upstream), unguarded
            app = self.recorder if catalog is None else ModelGuardMiddleware(
                self.recorder, catalog=catalog)
        config = uvicorn.Config(app, host="127.0.0.1", port=0, http=http, lifespan="off",
                                log_config=None, access_log=False, loop="asyncio",
                                timeout_keep_alive=2, timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{http}",
                                       daemon=True)
        self.port = 0

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        assert not self.thread.is_alive(), "uvicorn did not shut down"


@pytest.fixture(scope="module")
def servers(catalog: Catalog, capture: Capture) -> Iterator[dict[str, ServerThread]]:
    started: dict[str, ServerThread] = {}
    try:
        for http in SERVERS:
            server = ServerThread(http, catalog)
            server.start()
            started[http] = server
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(scope="module")
def sidecars(catalog: Catalog, capture: Capture) -> Iterator[dict[str, ServerThread]]:
    """``modelguard serve`` (the sidecar app) under uvicorn with each parser, forwarding to a
    recorder that is itself a real HTTP server: what reaches the recorder went over the wire."""
    started: list[ServerThread] = []
    running: dict[str, ServerThread] = {}
    try:
        for http in SERVERS:
            upstream = ServerThread("h11", None)
            upstream.start()
            started.append(upstream)
            app = create_app(f"http://127.0.0.1:{upstream.port}", catalog, read_timeout=15)
            sidecar = ServerThread(http, catalog, app=app, recorder=upstream.recorder)
            sidecar.start()
            started.append(sidecar)
            running[http] = sidecar
        yield running
    finally:
        for server in reversed(started):
            server.stop()
