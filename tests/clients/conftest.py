"""Fixtures for the coding-agent suite: installed CLIs, the stand-in gateway, the project folder,
and feature probes for parts of the contract built on other branches (the Responses route, the
``compat`` preset, refusals naming every violation)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelguard import Catalog, Guard
from tests.upstream import serve

from .agents import install, missing
from .catalogs import load_catalog
from .standin import AgentStandIn
from .workspace import make_workspace

HERE = Path(__file__).resolve().parent
#: Every agent run of the session: client, front, model, what was seen (filled by the tests).
RUNS: list[dict[str, str]] = []
#: Where to write the scenario table (client x scenario x expected x seen), when set.
TABLE_ENV = "MODELGUARD_AGENT_TABLE"
_ROWS: list[tuple[str, str, str, str, str]] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.clients)
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> object:
    """Collect the table rows: the test's scenario (docstring's first line) and its runs."""
    start = len(RUNS)
    try:
        return (yield)
    finally:
        doc = (getattr(item, "function", None).__doc__ or "").strip().splitlines()
        expected = getattr(item.function, "expected", "")  # type: ignore[attr-defined]
        for run in RUNS[start:]:
            _ROWS.append((run["client"], f"{doc[0] if doc else item.name} ({run['front']}, "
                          f"{run['model']})", expected, run["seen"], item.name))


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = os.environ.get(TABLE_ENV)
    if not target or not _ROWS:
        return
    lines = ["| client | scenario | expected | seen |", "| --- | --- | --- | --- |"]
    rows = sorted(_ROWS, key=lambda row: row[:2])  # stable: runs of one test keep their order
    lines += [f"| {c} | {s} | {e} | {seen} |" for c, s, e, seen, _ in rows]
    Path(target).write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="session")
def agents_installed() -> None:
    """The pinned CLIs, installed with npm into .clients/ when missing (CI must have npm; a
    developer machine without it skips the suite)."""
    if missing():
        if shutil.which("npm") is None and not os.environ.get("CI"):
            pytest.skip("npm is not installed: the coding-agent CLIs cannot be installed")
        install()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return make_workspace(tmp_path / "project")


@pytest.fixture
def standin_for() -> Iterator:
    """``standin_for(catalog_name)`` serves a stand-in gateway; yields (url, stand-in)."""
    stack: list = []

    def start(name: str) -> tuple[str, AgentStandIn]:
        standin = AgentStandIn(load_catalog(name))
        context = serve(standin.app)
        served = context.__enter__()
        stack.append(context)
        return served.url, standin

    yield start
    while stack:
        stack.pop().__exit__(None, None, None)


# -- what this build of modelguard has (parts of the contract land from other branches) --------


def _check(guard: Guard, path: str, body: dict) -> object:
    return asyncio.run(guard.check("POST", path, {"x-api-key": "k"}, json.dumps(body).encode()))


def responses_guarded() -> bool:
    """routes.md D0: POST /v1/responses is guarded (an unknown model is refused)."""
    verdict = _check(Guard(Catalog.default()), "/v1/responses",
                     {"model": "no-such-model", "input": "hi"})
    return not verdict.allowed  # type: ignore[attr-defined]


def compat_available() -> bool:
    """decisions.md §12: the ``compat`` actions preset."""
    try:
        Guard(Catalog.default(), actions="compat")
    except TypeError:
        return False
    return True


def names_every_violation() -> bool:
    """decisions.md §12: one refusal names every violation (here thinking and the output cap)."""
    verdict = _check(Guard(Catalog.default()), "/v1/messages", {
        "model": "claude-haiku-4-5", "max_tokens": 32000,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "messages": [{"role": "user", "content": "hi"}]})
    message = json.loads(verdict.body)["error"]["message"]  # type: ignore[attr-defined]
    return "thinking" in message and "32000" in message and "8192" in message


NEEDS_RESPONSES = pytest.mark.skipif(
    not responses_guarded(), reason="this build does not guard POST /v1/responses (routes.md)")
NEEDS_COMPAT = pytest.mark.skipif(
    not compat_available(), reason="this build has no actions='compat' (decisions.md §12)")
NEEDS_ALL_VIOLATIONS = pytest.mark.skipif(
    not names_every_violation(),
    reason="this build names only the first violation (decisions.md §12)")
