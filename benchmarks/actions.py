"""What actions cost: the same real Claude Code body checked side by side, in one run.

    python benchmarks/actions.py            # a few seconds
    python benchmarks/actions.py --smoke    # tiny counts

Candidates (alternating, medians of several rounds; ratios against the first):
- ``pass``: a catalog whose model has everything, no actions (the hot path);
- ``pass, compat set``: the same with ``actions="compat"`` configured but nothing to change
  (must cost the same: actions are looked at only when there is a violation);
- ``refuse``: a catalog lacking thinking and cache_control, with a 8192 cap (one refusal
  naming every violation);
- ``rewrite (compat)``: that catalog with ``actions="compat"`` (strip, clamp, re-check).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from modelguard import Catalog, Guard  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "agents" / "claude-read-image-1.json"
TAGS = ["text", "vision", "tool_use", "streaming", "cache_control", "thinking"]


def _catalog(tags: list[str], limit: int) -> Catalog:
    return Catalog.model_validate({"data": [{
        "id": "claude-sonnet-4-6", "owned_by": "anthropic", "capabilities": tags,
        "max_output_tokens": limit}]})


def _drive(coro: Any) -> Any:
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("the coroutine suspended")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    fixture = json.loads(FIXTURE.read_text())
    body = fixture["body"].encode()
    target = f"{fixture['path']}?{fixture['query']}"
    headers = fixture["headers"]
    full = _catalog(TAGS, 64000)
    lacking = _catalog(["text", "vision", "tool_use", "streaming"], 8192)
    guards: dict[str, Guard] = {
        "pass": Guard(full),
        "pass, compat set": Guard(full, actions="compat"),
        "refuse": Guard(lacking),
        "rewrite (compat)": Guard(lacking, actions="compat"),
    }
    expect = {"pass": (True, False), "pass, compat set": (True, False),
              "refuse": (False, False), "rewrite (compat)": (True, True)}
    calls: dict[str, Callable[[], Any]] = {}
    for name, guard in guards.items():
        calls[name] = (lambda g=guard: _drive(g.check("POST", target, headers, body)))
        verdict = calls[name]()
        assert (verdict.allowed, verdict.rewritten_body is not None) == expect[name], name
    n, rounds = (20, 2) if args.smoke else (400, 7)
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            for _ in range(n):
                call()
            times[name].append((time.perf_counter() - start) / n)
    base = statistics.median(times["pass"])
    print(f"body: {FIXTURE.name} ({len(body)} bytes); {rounds} rounds x {n} checks")
    print(f"{'candidate':<20} {'median us':>10} {'ratio':>7}")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:<20} {median * 1e6:>10.1f} {median / base:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
