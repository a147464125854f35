"""Credentials the guard would judge differently from the upstream (decisions.md §6, §11).

The catalog comes from a real stand-in gateway (forwarding mode: each caller's key selects its
catalog). One credential slot carrying two different values, or a key that cannot be sent on
as a header value, is a 401 in the protocol's shape: nothing reaches the app or the upstream,
the gateway is never asked, nothing is logged at ERROR, and no part of the key shows up in any
log record. Identical copies pass. Each case runs in-process through the middleware, and over
raw sockets through ``modelguard serve`` under uvicorn with h11 and with httptools.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from modelguard import Guard, ModelGuardMiddleware, RemoteCatalog
from modelguard.serve.sidecar import create_app

from ..conftest import model_entry
from ..gateway import Gateway
from ..upstream import serve
from .cases import (
    A_OK,
    A_PATH,
    G_OK,
    G_PATH,
    O_OK,
    O_PATH,
    PASS,
    REFUSE_A,
    REFUSE_G,
    REFUSE_O,
    SERVER_REJECT,
    Case,
)
from .conftest import SERVERS, ServerThread
from .harness import check, run_in_process, run_over_socket

GOOD = "sk-good-credential-0001"
OTHER = "sk-other-credential-0002"
#: A distinctive part of every refused key: it must never appear in a log record.
SECRET = "SECRETFRAGMENT"
A_401 = REFUSE_A(401, "authentication_error")
O_401 = REFUSE_O(401, "invalid_api_key")
G_401 = REFUSE_G(401, "API_KEY_INVALID")
LONG = "sk-" + SECRET + "x" * 4100


@dataclass(frozen=True)
class Cred:
    id: str
    target: str
    body: bytes
    headers: tuple[tuple[str, str], ...]
    expect: object
    #: Over a socket the bytes cannot be sent (a CR/LF/NUL in a header value).
    socket: bool = True
    #: A sendable key the gateway itself refuses: asking the gateway is right.
    asks_gateway: bool = False
    #: Over a socket, per parser: what that HTTP server does with the bytes itself.
    socket_expect: tuple[tuple[str, object], ...] = ()
    #: Through the sidecar, per parser: a known forwarding bug (strict xfail).
    serve_bug: tuple[tuple[str, str], ...] = ()

    def case(self) -> Case:
        return Case(id=f"cred:{self.id}", cls="credentials", target=self.target, body=self.body,
                    expect=self.expect, headers=self.headers, socket=self.socket,
                    socket_expect=dict(self.socket_expect))


def _a(id: str, headers: tuple[tuple[str, str], ...], expect: object, **kw: object) -> Cred:
    return Cred(id, A_PATH, A_OK, headers, expect, **kw)


CREDS = [
    _a("x-api-key-twice-different", (("x-api-key", GOOD), ("x-api-key", OTHER + SECRET)), A_401),
    _a("x-api-key-twice-identical-pass", (("x-api-key", GOOD), ("x-api-key", GOOD)), PASS),
    _a("x-api-key-identical-but-spaces-pass", (("x-api-key", GOOD), ("x-api-key", f" {GOOD} ")),
       PASS),
    _a("authorization-twice-different",
       (("authorization", f"Bearer {GOOD}"), ("authorization", f"Bearer {SECRET}")), A_401),
    _a("authorization-bearer-and-basic",
       (("authorization", f"Bearer {GOOD}"), ("authorization", f"Basic {SECRET}")), A_401),
    _a("authorization-twice-identical-pass",
       (("authorization", f"Bearer {GOOD}"), ("authorization", f"Bearer {GOOD}")), PASS),
    _a("x-api-key-good-authorization-conflicting",
       (("x-api-key", GOOD), ("authorization", f"Bearer {GOOD}"),
        ("authorization", f"Bearer {SECRET}")), A_401),
    _a("x-api-key-non-ascii", (("x-api-key", f"sk-{SECRET}-\u00e9"),), A_401),
    _a("x-api-key-tab-inside", (("x-api-key", f"sk-{SECRET}\tx"),), A_401),
    _a("x-api-key-del-char", (("x-api-key", f"sk-{SECRET}\x7f"),), A_401,
       socket_expect=(("httptools", SERVER_REJECT),)),
    _a("x-api-key-over-4096", (("x-api-key", LONG),), A_401),
    _a("bearer-over-4096", (("authorization", f"Bearer {LONG}"),), A_401),
    _a("x-api-key-4096-exactly-unknown-to-gateway", (("x-api-key", "k" * 4096),), A_401,
       asks_gateway=True),
    _a("x-api-key-nul", (("x-api-key", f"sk-{SECRET}\x00"),), A_401, socket=False),
    _a("x-api-key-crlf", (("x-api-key", f"sk-{SECRET}\r\nx-evil: 1"),), A_401, socket=False),
    Cred("openai-two-bearers", O_PATH, O_OK,
         (("authorization", f"Bearer {GOOD}"), ("authorization", f"Bearer {SECRET}")), O_401),
    Cred("openai-one-bearer-pass", O_PATH, O_OK, (("authorization", f"Bearer {GOOD}"),), PASS),
    Cred("gemini-two-goog-keys", G_PATH(), G_OK,
         (("x-goog-api-key", GOOD), ("x-goog-api-key", SECRET)), G_401),
    Cred("gemini-two-goog-keys-identical-pass", G_PATH(), G_OK,
         (("x-goog-api-key", GOOD), ("x-goog-api-key", GOOD)), PASS),
    Cred("gemini-query-key-twice", G_PATH() + f"?key={GOOD}&key={SECRET}", G_OK, (), G_401),
    Cred("gemini-query-key-twice-identical-pass", G_PATH() + f"?key={GOOD}&key={GOOD}", G_OK,
         (), PASS),
    Cred("gemini-header-good-query-conflicting", G_PATH() + f"?key={GOOD}&key={SECRET}", G_OK,
         (("x-goog-api-key", GOOD),), G_401),
    Cred("gemini-query-key-nul", G_PATH() + f"?key={SECRET}%00", G_OK, (), G_401),
    Cred("gemini-query-key-crlf", G_PATH() + f"?key={SECRET}%0D%0Ax-evil:%201", G_OK, (), G_401),
    Cred("gemini-query-key-utf8", G_PATH() + f"?key={SECRET}%C3%A9", G_OK, (), G_401),
    Cred("gemini-query-key-pass", G_PATH() + "?key=" + GOOD, G_OK, (), PASS),
]


class Logs(logging.Handler):
    """Every record of every logger, formatted, to search for key fragments and ERRORs."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self, since: int) -> str:
        out = []
        for record in self.records[since:]:
            out.append(record.getMessage())
            if record.exc_info:
                out.append(logging.Formatter().formatException(record.exc_info))
            out.append(repr(record.__dict__))
        return "\n".join(out)

    def errors(self, since: int) -> list[str]:
        return [f"{r.name}: {r.getMessage()}" for r in self.records[since:]
                if r.levelno >= logging.ERROR]


@dataclass
class Env:
    gateway: Gateway
    gateway_url: str
    sidecars: dict[str, ServerThread]
    logs: Logs


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    gateway = Gateway()
    gateway.set_models(GOOD, model_entry("claude-sonnet-4-6", {"vision"}),
                       model_entry("gpt-5-4", {"vision"}, owned_by="openai"),
                       model_entry("gemini-3-flash", {"vision"}, owned_by="google"))
    logs = Logs()
    root = logging.getLogger()
    root.addHandler(logs)
    previous = root.level
    root.setLevel(logging.DEBUG)
    started: list[ServerThread] = []
    try:
        with serve(gateway.app()) as gateway_server:
            sidecars = {}
            for http in SERVERS:
                upstream = ServerThread("h11", None)
                upstream.start()
                started.append(upstream)
                app = create_app(f"http://127.0.0.1:{upstream.port}", gateway_server.url)
                sidecar = ServerThread(http, None, app=app, recorder=upstream.recorder)
                sidecar.start()
                started.append(sidecar)
                sidecars[http] = sidecar
            yield Env(gateway, gateway_server.url, sidecars, logs)
            for server in reversed(started):
                server.stop()
            started.clear()
    finally:
        for server in reversed(started):
            server.stop()
        root.removeHandler(logs)
        root.setLevel(previous)


def _after(env: Env, cred: Cred, hits_before: dict[str, int], mark: int) -> None:
    if cred.expect is not PASS and not cred.asks_gateway:
        refused_hits = {k: v for k, v in env.gateway.hits.items() if k not in hits_before
                        or hits_before[k] != v}
        assert all(k == GOOD for k in refused_hits), (
            f"the gateway was asked with a refused key: {sorted(refused_hits)}")
    assert SECRET not in env.logs.text(mark), "a part of a refused key was logged"
    assert not env.logs.errors(mark), env.logs.errors(mark)


@pytest.mark.parametrize("cred", CREDS, ids=[c.id for c in CREDS])
async def test_in_process(cred: Cred, env: Env) -> None:
    case = cred.case()
    hits, mark = dict(env.gateway.hits), len(env.logs.records)
    catalog = RemoteCatalog(env.gateway_url)
    try:
        out = await run_in_process(lambda app: ModelGuardMiddleware(app, catalog=catalog), case,
                                   case.data())
    finally:
        await catalog.aclose()
    check(case, case.expect, out, case.data())
    _after(env, cred, hits, mark)


@pytest.mark.parametrize(("server", "cred"),
                         [pytest.param(s, c, id=f"serve-{s}-{c.id}", marks=[
                             pytest.mark.xfail(strict=True, reason=f"BUG: {dict(c.serve_bug)[s]}")
                         ] if s in dict(c.serve_bug) else []) for s in SERVERS
                          for c in CREDS if c.socket])
async def test_over_sidecar(server: str, cred: Cred, env: Env) -> None:
    case = cred.case()
    running = env.sidecars[server]
    hits, mark = dict(env.gateway.hits), len(env.logs.records)
    key = f"cred|{case.id}|{server}|{uuid.uuid4().hex}"
    out = await run_over_socket(running.port, running.recorder, case, case.data(), key)
    check(case, case.expected_over(server), out, case.data())
    _after(env, cred, hits, mark)


@pytest.mark.parametrize("cred", CREDS, ids=[c.id for c in CREDS])
async def test_guard_check(cred: Cred, env: Env) -> None:
    """``Guard.check`` as a proxy calls it, headers as str pairs: same answers, never raises."""
    hits, mark = dict(env.gateway.hits), len(env.logs.records)
    catalog = RemoteCatalog(env.gateway_url)
    try:
        verdict = await Guard(catalog).check("POST", cred.target, list(cred.headers), cred.body)
    finally:
        await catalog.aclose()
    if cred.expect is PASS:
        assert verdict.allowed, verdict
    else:
        assert not verdict.allowed and verdict.status == 401, verdict
        assert verdict.token == cred.expect.token
        assert SECRET not in verdict.body.decode()
    _after(env, cred, hits, mark)
