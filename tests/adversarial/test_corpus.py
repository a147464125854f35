"""Runs the adversarial corpus (cases.py) through the guard, in-process and over real sockets.

Every case gets the same assertion (harness.check): the app is reached iff the case expects
PASS, and then with the exact bytes sent; a refusal has the protocol's status, token and
``application/json``; nothing answers 5xx, no exception escapes, every call ends in time, and
the guard never hides an internal error behind a fail-closed refusal.

Runs: ``asgi`` (in-process, hand-written scope/receive/send), ``pure`` (the same with the
pure-Python JSON decoder instead of the C accelerator, when both exist: the two must agree),
``h11`` / ``httptools`` (uvicorn on 127.0.0.1, raw bytes over a socket), and ``serve-h11`` /
``serve-httptools`` (``modelguard serve`` under uvicorn, forwarding over HTTP to a recorder).
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

import modelguard.body as body_module
from modelguard import ModelGuardMiddleware

from .cases import CASES, Case
from .conftest import SERVERS, Capture, ServerThread
from .harness import check, run_in_process, run_over_socket


def _marks(case: Case, run: str) -> list:
    reason = case.bug or case.bug_in.get(run)
    return [pytest.mark.xfail(strict=True, reason=f"BUG: {reason}")] if reason else []


async def _in_process(case: Case, catalog, capture: Capture) -> None:
    data = case.data()
    mark = len(capture.records)
    tasks_before = asyncio.all_tasks()
    try:
        out = await run_in_process(lambda app: ModelGuardMiddleware(app, catalog=catalog), case,
                                   data)
    except TimeoutError:
        pytest.fail(f"{case.id}: the guarded call did not finish in time (hang)")
    except Exception as exc:  # noqa: BLE001 - that is the point
        pytest.fail(f"{case.id}: an exception escaped the middleware: {exc!r}")
    check(case, case.expect, out, data)
    assert not capture.problems(mark), capture.problems(mark)
    leaked = {t for t in asyncio.all_tasks() - tasks_before if not t.done()}
    assert not leaked, f"tasks left running: {leaked}"


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=_marks(c, "asgi"))
                                  for c in CASES])
async def test_in_process(case: Case, catalog, capture: Capture) -> None:
    await _in_process(case, catalog, capture)


HAS_TWO_DECODERS = getattr(body_module, "_accelerated_loads", None) is not None


@pytest.mark.skipif(not HAS_TWO_DECODERS, reason="only one JSON decoder is built")
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=_marks(c, "pure"))
                                  for c in CASES])
async def test_in_process_pure_decoder(case: Case, catalog, capture: Capture,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(body_module, "_accelerated_loads", None)
    await _in_process(case, catalog, capture)


@pytest.mark.parametrize(
    ("server", "case"),
    [pytest.param(s, c, id=f"{s}-{c.id}", marks=_marks(c, s))
     for s in SERVERS for c in CASES if c.socket],
)
async def test_over_socket(server: str, case: Case, servers: dict[str, ServerThread],
                           capture: Capture) -> None:
    running = servers[server]
    data = case.data()
    key = f"{case.id}|{server}|{uuid.uuid4().hex}"
    mark = len(capture.records)
    out = await run_over_socket(running.port, running.recorder, case, data, key)
    check(case, case.expected_over(server), out, data)
    assert not capture.problems(mark), capture.problems(mark)


#: Cases run through ``modelguard serve``: the second-round classes, the valid requests that
#: must arrive unchanged, and every class the sidecar could read differently (routes, head).
SIDECAR_CLASSES = ("pass", "sdk-fixtures", "routes", "routes-gemini", "media-types",
                   "compression", "delivery", "methods", "dup-keys")


def _through_sidecar(case: Case) -> bool:
    return case.socket and (case.cls.startswith("r2-") or case.cls in SIDECAR_CLASSES)


@pytest.mark.parametrize(
    ("server", "case"),
    [pytest.param(s, c, id=f"serve-{s}-{c.id}", marks=_marks(c, f"serve-{s}") or _marks(c, s))
     for s in SERVERS for c in CASES if _through_sidecar(c)],
)
async def test_over_sidecar(server: str, case: Case, sidecars: dict[str, ServerThread],
                            capture: Capture) -> None:
    running = sidecars[server]
    data = case.data()
    key = f"serve|{case.id}|{server}|{uuid.uuid4().hex}"
    mark = len(capture.records)
    out = await run_over_socket(running.port, running.recorder, case, data, key)
    check(case, case.expected_over(server), out, data)
    assert not capture.problems(mark), capture.problems(mark)
