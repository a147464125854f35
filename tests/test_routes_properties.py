"""Property-based tests of the Responses reader: any body built from its vocabulary is read
without an unexpected exception, and the plain-message fast path gives exactly the full
reading's answer (decisions.md §11: one reader, one rule set)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelguard.body import BodyError
from modelguard.policy import Options
from modelguard.protocols import responses
from modelguard.routing import match_route

KEYS = ["type", "role", "content", "id", "status", "phase", "output", "tools", "text",
        "image_url", "file_data", "file_id", "prompt_cache_breakpoint", "annotations",
        "result", "outputs", "reasoning", "TYPE", "Role", "ſtatus", "call_id"]
TYPES = [*responses.ITEMS, *responses.PARTS, *responses.TOOLS, "message", "bogus", None, 3,
         ["input_text"], {"type": "message"}]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2, 2), st.sampled_from(
    ["user", "assistant", "developer", "x", "data:image/png;base64,AA", "data:video/mp4,AA",
     "https://x/a.png", "none", "high"]))


def _objects(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.dictionaries(st.sampled_from(KEYS), children, max_size=5).flatmap(
        lambda d: st.sampled_from(TYPES).map(
            lambda t: d if t is None else {**d, "type": t}))


VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), _objects(inner)), max_leaves=25)
ITEMS = st.lists(st.one_of(_objects(VALUES), VALUES), max_size=5)

#: The route the Responses reader is given (any Responses route that is not a count).
RESPONSES_ROUTE = match_route("/v1/responses")


def _outcome(body: dict[str, Any]) -> tuple:
    try:
        f = responses.read(body, RESPONSES_ROUTE, Options())
    except BodyError as error:
        return ("error", error.message, error.path)
    return ([(n.tag, n.path, n.vendor, n.tool, n.output) for n in f.needs],
            f.unknown, [(m.path, m.slug, m.only) for m in f.models])


@settings(max_examples=400, deadline=None)
@given(ITEMS, st.sampled_from(["input", "instructions"]))
def test_reader_total_and_fast_path_equals_full_reading(items, key, ) -> None:
    body = {"model": "m", key: items}
    fast = _outcome(body)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(responses, "_plain_message", lambda item: False)
        slow = _outcome(body)
    assert fast == slow


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(list(responses.ROOT.names) + ["MODEL", "ſtream"]),
                       VALUES, max_size=8))
def test_any_root_is_read_or_refused_cleanly(fields) -> None:
    outcome = _outcome({"model": "m", **fields})
    assert outcome[0] == "error" or isinstance(outcome[0], list)
