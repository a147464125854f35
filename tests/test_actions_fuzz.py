"""Mutated SDK bodies under ``actions="compat"``: rewrites never crash, never leak a 5xx, and
what they forward is a body the model can serve.

The mutations are those of ``test_properties`` (dropped, duplicated, retyped, re-encoded,
deepened, case-folded keys, camel/snake swaps, unknown blocks, injected features, huge numbers,
compressed). Models are the bundled catalog's, lowered to a small output cap so that clamps,
budgets and strips all fire.
"""

from __future__ import annotations

import copy
import json

from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from modelguard import Catalog, Guard
from modelguard.errors import GEMINI

from .test_properties import (
    FIXTURE_DATA,
    INTERNAL_ERROR,
    SCALE,
    check,
    compress,
    emit,
    encode,
    mutate,
    tree,
)

#: The bundled catalog with every output cap at 1500 (Anthropic's 1024 minimum budget fits).
SMALL = Catalog.model_validate({"object": "list", "data": [
    {**m.model_dump(), "max_output_tokens": 1500} for m in Catalog.default()]})
COMPAT = Guard(SMALL, actions="compat")
PLAIN = Guard(SMALL, actions={"thinking": "allow", "cache_control": "allow",
                              "max_tokens": "allow"})


@settings(max_examples=1500 * SCALE, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(index=st.integers(0, len(FIXTURE_DATA) - 1), data=st.data())
def test_compat_on_mutated_bodies(index: int, data: st.DataObject) -> None:
    fx = FIXTURE_DATA[index]
    protocol = fx["protocol"]
    model = data.draw(st.sampled_from(SMALL.ids), "model")
    body = copy.deepcopy(fx["body"])
    if protocol != GEMINI:
        body["model"] = model
    if protocol == "anthropic" and "max_tokens" in body:
        body["max_tokens"] = data.draw(st.sampled_from([body["max_tokens"], 4096, 32000]))
    target = fx["path"]
    if protocol == GEMINI:
        head, _, method = target.rpartition(":")
        target = head.rsplit("/", 1)[0] + f"/{model}:{method}"
    if fx["query"]:
        target += "?" + fx["query"]
    root = tree(body)
    for _ in range(data.draw(st.integers(0, 3), "mutations")):
        root = mutate(data, root, protocol)
    raw = encode(data, emit(root, ascii_only=data.draw(st.booleans(), "ascii")))
    wire, headers, _ = compress(data, raw)
    note(f"{target} {headers} {raw[:2000]!r}")
    verdict = check(COMPAT, target, wire, headers)  # must not raise
    assert verdict.status < 500, verdict
    if not verdict.allowed:
        assert INTERNAL_ERROR not in verdict.first.message, verdict.first.message
        event(f"refused {verdict.reason}")
        return
    if verdict.rewritten_body is None:
        event("allowed unchanged")
        return
    event("rewritten " + " ".join(a.split("=")[0] for a in verdict.adjustments))
    sent = verdict.rewritten_body
    json.loads(sent)  # plain JSON
    # what is forwarded needs nothing the model lacks but what was allowed anyway
    again = check(PLAIN, target, sent, {"content-type": "application/json"})
    assert again.allowed, again.body
    assert all(v.key not in ("thinking", "cache_control", "max_tokens")
               for v in again.violations), again.violations
