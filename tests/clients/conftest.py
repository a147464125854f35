"""Fixtures for the coding-agent suite: installed CLIs, the stand-in gateway, the project folder,
and feature probes for parts of the contract built on other branches (the Responses route, the
``compat`` preset, refusals naming every violation)."""

from __future__ import annotations

import asyncio
import json
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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.clients)
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def agents_installed() -> None:
    """The pinned CLIs, installed with npm into .clients/ when missing."""
    if missing():
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
