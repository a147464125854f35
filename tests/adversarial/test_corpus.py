"""Runs the adversarial corpus (cases.py) through the guard, in-process and over real sockets.

Every case gets the same assertion (harness.check): the app is reached iff the case expects
PASS, and then with the exact bytes sent; a refusal has the protocol's status, token and
``application/json``; nothing answers 5xx, no exception escapes, every call ends in time, and
the guard never hides an internal error behind a fail-closed refusal.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from modelguard import ModelGuardMiddleware

from .cases import CASES, Case
from .conftest import SERVERS, Capture, ServerThread
from .harness import Recorder, check, run_in_process, run_over_socket


def _param(case: Case, server: str | None = None) -> pytest.param:
    reason = case.bug or (case.bug_socket.get(server) if server else None)
    marks = [pytest.mark.xfail(strict=True, reason=f"BUG: {reason}")] if reason else []
    return pytest.param(case, id=case.id, marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
async def test_in_process(case: Case, catalog, capture: Capture) -> None:
    body = case.data()
    mark = len(capture.records)
    try:
        out = await run_in_process(lambda app: ModelGuardMiddleware(app, catalog=catalog), case,
                                   body)
    except asyncio.TimeoutError:
        pytest.fail(f"{case.id}: the guarded call did not finish in time (hang)")
    except Exception as exc:  # noqa: BLE001 - that is the point
        pytest.fail(f"{case.id}: an exception escaped the middleware: {exc!r}")
    check(case, case.expect, out, body)
    assert not capture.problems(mark), capture.problems(mark)


SOCKET_CASES = [(c, s) for s in SERVERS for c in CASES if c.socket]


@pytest.mark.parametrize(
    ("server", "case"),
    [pytest.param(s, *_param(c, s).values, id=f"{s}-{c.id}", marks=_param(c, s).marks)
     for c, s in SOCKET_CASES],
)
async def test_over_socket(server: str, case: Case, servers: dict[str, ServerThread],
                           capture: Capture) -> None:
    running = servers[server]
    body = case.data()
    key = f"{case.id}|{server}|{uuid.uuid4().hex}"
    mark = len(capture.records)
    out = await run_over_socket(running.port, running.recorder, case, body, key)
    check(case, case.expected_over(server), out, body)
    assert not capture.problems(mark), capture.problems(mark)
