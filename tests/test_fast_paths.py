"""The fast paths of the hot path give exactly the full path's answers."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from modelguard import routing
from modelguard.routing import DEFAULT_FAMILIES, FAMILIES, match_route

_ROUTE_PATHS = [row.pattern.replace("{version}", "v1beta").replace("{model}", "models/gemini-x")
                for row in routing.ROUTES]
_PIECES = st.sampled_from(["/", "//", "/.", "/..", "%2F", "%2f", ";a=b", ".json", "\\", "?q=1",
                           "#f", "ſ", "K", "models/", ":generateContent", "V1", "%24", "http://h",
                           *_ROUTE_PATHS])
_PATHS = st.lists(_PIECES, max_size=6).map("".join) | st.text(max_size=40)
_ENABLED = st.sampled_from([DEFAULT_FAMILIES, frozenset(FAMILIES), frozenset({"messages"})])


@settings(max_examples=400, deadline=None)
@given(paths=st.lists(_PATHS, min_size=1, max_size=3), root=st.sampled_from(["", "/v1", "/gw"]),
       enabled=_ENABLED, any_prefix=st.booleans())
def test_cached_route_decision_is_the_uncached_one(paths: list[str], root: str,
                                                   enabled: frozenset[str],
                                                   any_prefix: bool) -> None:
    expected = routing._match(tuple(paths), root, enabled, any_prefix)
    for _ in range(2):  # the first call fills the cache, the second reads it
        got = match_route(*paths, root_path=root, enabled=enabled, any_prefix=any_prefix)
        assert got == expected


def test_route_cache_stays_bounded() -> None:
    for i in range(routing._CACHED_DECISIONS + 50):
        match_route(f"/v1beta/models/m-{i}:generateContent")
    assert len(routing._DECIDED) <= routing._CACHED_DECISIONS


def test_long_paths_are_not_cached() -> None:
    path = "/v1/" + "a" * routing._CACHED_PATH_CHARS + "/messages"
    assert match_route(path) == routing._match((path,), "", DEFAULT_FAMILIES, False)
    assert ((path,), "", DEFAULT_FAMILIES, False) not in routing._DECIDED


def test_agent_fixture_paths_route_as_uncached() -> None:
    fixtures = Path(__file__).parent / "fixtures"
    routed = 0
    for path in sorted(fixtures.rglob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if not isinstance(record, dict) or not isinstance(record.get("path"), str):
            continue
        target = record["path"]
        assert match_route(target) == routing._match((target,), "", DEFAULT_FAMILIES, False)
        routed += match_route(target) is not None
    assert routed >= 8  # the captured SDK and agent requests are on guarded routes
