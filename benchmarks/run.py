"""Run every modelguard benchmark and write benchmarks/RESULTS.md and benchmarks/guard_cost.png.

    python benchmarks/run.py            # the full run (a few minutes)
    python benchmarks/run.py --smoke    # tiny counts: checks that the benchmarks still run

All comparisons are measured side by side in one run, alternating between candidates, and
reported as medians; the machines are shared and noisy, so the ratios are what matters.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from shapes import Shape, agent_body, all_shapes  # noqa: E402

from modelguard import Catalog, Guard, ModelGuardMiddleware  # noqa: E402
from modelguard.body import ACCELERATED  # noqa: E402

TARGETS = {
    "ratio_large": 1.0, "ratio_tiny": 3.0, "throughput": 0.90, "catalog": 1.05, "memory": 1.3,
}


# -- micro benchmarks -----------------------------------------------------------------------------


def drive(coro: Any) -> Any:
    """Run a coroutine that never suspends (a static catalog) without an event loop."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("the coroutine suspended")


def naive_check(body: bytes, catalog: Catalog) -> bool:
    """What a user would write instead: json.loads and a walk over the obvious places."""
    doc = json.loads(body)
    model = catalog.get(doc.get("model", ""))
    if model is None:
        return False
    needed = set()
    for message in doc.get("messages", []):
        content = message.get("content")
        if isinstance(content, list):
            for block in content:
                kind = block.get("type")
                if kind in ("image", "image_url"):
                    needed.add("vision")
                elif kind in ("tool_use", "tool_result"):
                    needed.add("tool_use")
    if doc.get("tools"):
        needed.add("tool_use")
    if doc.get("stream"):
        needed.add("streaming")
    return all(model.has(tag) for tag in needed)


def _drain(value: Any) -> Any:
    """Pydantic validates Iterable fields lazily: consume them so the work really happens.

    (A string where the SDK type says ``str | Iterable[Block]`` comes back as a lazy iterator
    that fails on its first character; that element's validation is the work done.)
    """
    from pydantic import ValidationError

    if isinstance(value, dict):
        return {k: _drain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_drain(v) for v in value]
    if hasattr(value, "__iter__") and not isinstance(value, (str, bytes)):
        out = []
        try:
            for item in value:
                out.append(_drain(item))
        except ValidationError:
            pass
        return out
    return value


def _pydantic_adapters() -> dict[str, Callable[[bytes], Any]]:
    from anthropic.types import MessageCreateParams
    from openai.types.chat import completion_create_params
    from pydantic import TypeAdapter

    anthropic = TypeAdapter(MessageCreateParams)
    openai = TypeAdapter(completion_create_params.CompletionCreateParams)
    return {
        "anthropic": lambda body: _drain(anthropic.validate_json(body)),
        "openai": lambda body: _drain(openai.validate_json(body)),
    }


def _middleware_call(app: Any, shape: Shape) -> Callable[[], Any]:
    path, _, query = shape.target.partition("?")
    scope = {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(),
             "query_string": query.encode(), "root_path": "",
             "headers": [(b"content-type", b"application/json")]}
    message = {"type": "http.request", "body": shape.body, "more_body": False}

    async def receive() -> dict:
        return message

    async def send(_: dict) -> None:
        return None

    def call() -> Any:
        return app(dict(scope), receive, send)

    return call


async def _bare_app(scope: dict, receive: Any, send: Any) -> None:
    message = await receive()
    assert message["body"] is not None
    await send({"type": "http.response.start", "status": 200, "headers": []})


def _timed(fn: Callable[[], Any], n: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(n):
        fn()
    return (time.perf_counter_ns() - start) / n / 1000


def _iterations(size: int, smoke: bool) -> int:
    if smoke:
        return 2
    return max(3, min(2000, int(3_000_000 / max(size, 100))))


def micro(shapes: list[Shape], catalog: Catalog, rounds: int, smoke: bool) -> list[dict]:
    guard = Guard(catalog)
    guarded = ModelGuardMiddleware(_bare_app, catalog=catalog)
    pydantic = _pydantic_adapters()
    loop = asyncio.new_event_loop()
    rows = []
    for shape in shapes:
        verdict = drive(guard.check("POST", shape.target, {}, shape.body))
        assert verdict.allowed is shape.allowed, (shape.label, verdict)
        bare_call = _middleware_call(_bare_app, shape)
        guarded_call = _middleware_call(guarded, shape)
        candidates: dict[str, Callable[[], Any]] = {
            "msgspec": lambda b=shape.body: msgspec.json.decode(b),
            "orjson": lambda b=shape.body: orjson.loads(b),
            "guard": lambda s=shape: drive(guard.check("POST", s.target, {}, s.body)),
            "bare_asgi": lambda c=bare_call: loop.run_until_complete(c()),
            "guarded_asgi": lambda c=guarded_call: loop.run_until_complete(c()),
            "naive": lambda b=shape.body: naive_check(b, catalog),
        }
        if shape.protocol in pydantic and shape.allowed:
            candidates["pydantic"] = lambda b=shape.body, v=pydantic[shape.protocol]: v(b)
        n = _iterations(len(shape.body), smoke)
        samples: dict[str, list[float]] = {name: [] for name in candidates}
        for _ in range(rounds):
            order = list(candidates)
            random.shuffle(order)
            for name in order:
                samples[name].append(_timed(candidates[name], n))
        med = {name: statistics.median(values) for name, values in samples.items()}
        rows.append({
            "shape": shape.label, "bytes": len(shape.body), "allowed": shape.allowed,
            **{name: round(value, 2) for name, value in med.items()},
            "middleware": round(max(med["guarded_asgi"] - med["bare_asgi"], 0.0), 2),
            "ratio": round(med["guard"] / med["msgspec"], 3),
            "ratio_orjson": round(med["guard"] / med["orjson"], 3),
        })
        print(f"  {shape.label:28s} {len(shape.body):>9d} B  guard {med['guard']:9.1f} us  "
              f"msgspec {med['msgspec']:9.1f} us  ratio {med['guard'] / med['msgspec']:.2f}",
              flush=True)
    loop.close()
    return rows


def catalog_scale(rounds: int, smoke: bool) -> dict:
    base = Catalog.default()
    extra = [{"id": f"filler-model-{i:05d}", "owned_by": "other", "capabilities": ["text"]}
             for i in range(10_000)]
    small = Catalog.model_validate({"data": [m.model_dump() for m in base.data][:10]})
    big = Catalog.model_validate({"data": [m.model_dump() for m in base.data] + extra[:9_990 -
                                                                                      len(base)]})
    path, body = agent_body()
    guards = {"10": Guard(small), "10000": Guard(big)}
    n = 2 if smoke else 300
    samples: dict[str, list[float]] = {k: [] for k in guards}
    for _ in range(rounds):
        for name in random.sample(list(guards), len(guards)):
            g = guards[name]
            samples[name].append(_timed(lambda g=g: drive(g.check("POST", path, {}, body)), n))
    med = {k: statistics.median(v) for k, v in samples.items()}
    return {"models_small": len(small), "models_big": len(big), "small_us": round(med["10"], 2),
            "big_us": round(med["10000"], 2), "ratio": round(med["10000"] / med["10"], 3)}


# -- end to end under uvicorn ---------------------------------------------------------------------

_SERVER = """
import sys
import uvicorn
from modelguard import Catalog, ModelGuardMiddleware

async def echo(scope, receive, send):
    if scope["type"] != "http":
        return
    size = 0
    more = True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = b'{"received":%d}' % size
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})

app = echo if sys.argv[2] == "bare" else ModelGuardMiddleware(echo, catalog=Catalog.default())
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="error", access_log=False,
            lifespan="off")
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(kind: str, workdir: Path) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    script = workdir / "server.py"
    script.write_text(_SERVER)
    proc = subprocess.Popen([sys.executable, str(script), str(port), kind],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode()) from None
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not start")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _ensure_wrk() -> str | None:
    found = shutil.which("wrk")
    if found or os.environ.get("MODELGUARD_BENCH_NO_INSTALL"):
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], capture_output=True,
                       timeout=300, check=False)
    return shutil.which("wrk")


def _wrk(wrk: str, port: int, lua: Path, seconds: int) -> dict:
    out = subprocess.run([wrk, "-t1", "-c16", f"-d{seconds}s", "--latency", "-s", str(lua),
                          f"http://127.0.0.1:{port}/v1/messages"], capture_output=True, text=True,
                         timeout=seconds + 60, check=True).stdout
    result: dict[str, float] = {}
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            result["rps"] = float(parts[1])
        elif len(parts) == 2 and parts[0] in ("50%", "99%"):
            result["p" + parts[0].rstrip("%")] = _millis(parts[1])
        elif "Non-2xx" in line:
            result["errors"] = float(parts[-1])
    return result


def _millis(text: str) -> float:
    for unit, scale in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * scale
    return float(text)


def end_to_end(smoke: bool) -> dict | None:
    wrk = _ensure_wrk()
    if wrk is None:
        print("  wrk not available: end-to-end skipped")
        return None
    path, body = agent_body()
    seconds, rounds = (1, 1) if smoke else (5, 3)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "body.json").write_bytes(body)
        lua = workdir / "post.lua"
        lua.write_text(
            'wrk.method = "POST"\n'
            'wrk.headers["content-type"] = "application/json"\n'
            f'local f = io.open("{workdir / "body.json"}", "rb")\n'
            "wrk.body = f:read('*a')\nf:close()\n"
        )
        servers = {kind: _start_server(kind, workdir) for kind in ("bare", "guarded")}
        try:
            runs: dict[str, list[dict]] = {"bare": [], "guarded": []}
            for _ in range(rounds):
                for kind in ("bare", "guarded"):
                    runs[kind].append(_wrk(wrk, servers[kind][1], lua, seconds))
        finally:
            for proc, _ in servers.values():
                _stop(proc)
    med = {kind: {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50", "p99")}
           for kind, rs in runs.items()}
    return {
        "body_bytes": len(body), "seconds": seconds, "rounds": rounds,
        "bare": med["bare"], "guarded": med["guarded"],
        "throughput_ratio": round(med["guarded"]["rps"] / med["bare"]["rps"], 3),
        "added_p50_ms": round(med["guarded"]["p50"] - med["bare"]["p50"], 3),
        "added_p99_ms": round(med["guarded"]["p99"] - med["bare"]["p99"], 3),
        "errors": sum(r.get("errors", 0) for rs in runs.values() for r in rs),
    }


# -- memory ---------------------------------------------------------------------------------------


def _rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


async def _send_all(port: int, body: bytes, count: int) -> list[int]:
    async def one() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = (f"POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json"
                f"\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n").encode()
        writer.write(head)
        view = memoryview(body)
        for start in range(0, len(body), 256 * 1024):
            writer.write(view[start:start + 256 * 1024])
            await writer.drain()
        status = int((await asyncio.wait_for(reader.readline(), 120)).split()[1])
        writer.close()
        return status

    return await asyncio.wait_for(asyncio.gather(*(one() for _ in range(count))), 300)


def memory(smoke: bool) -> dict:
    from shapes import _anthropic_image

    size = 8 * 1024 * 1024
    count = 2 if smoke else 32
    body = _anthropic_image(size=size * 3 // 4 - 200)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("bare", "guarded"):
            proc, port = _start_server(kind, Path(tmp))
            try:
                asyncio.run(_send_all(port, body, 1))  # warm up
                baseline = _rss_kib(proc.pid, "VmRSS")
                statuses = asyncio.run(_send_all(port, body, count))
                peak = _rss_kib(proc.pid, "VmHWM")
            finally:
                _stop(proc)
            assert all(s == 200 for s in statuses), statuses
            results[kind] = {"baseline_mib": round(baseline / 1024, 1),
                             "peak_mib": round(peak / 1024, 1),
                             "growth_mib": round((peak - baseline) / 1024, 1)}
    in_flight = count * len(body) / 2**20
    return {"bodies": count, "body_mib": round(len(body) / 2**20, 2),
            "in_flight_mib": round(in_flight, 1), **results,
            "ratio": round(results["guarded"]["growth_mib"] / in_flight, 3)}


# -- report ---------------------------------------------------------------------------------------


def plot(rows: list[dict], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    allowed = [r for r in rows if r["allowed"]]
    fig, ax = plt.subplots(figsize=(8, 5))
    for protocol, marker in (("anthropic", "o"), ("openai", "s"), ("gemini", "^")):
        pts = sorted((r["bytes"], r["guard"]) for r in allowed if r["shape"].startswith(protocol))
        ax.plot(*zip(*pts, strict=True), marker=marker,
                label=f"modelguard Guard.check ({protocol})")
    floor = sorted((r["bytes"], r["msgspec"]) for r in allowed)
    ax.plot(*zip(*floor, strict=True), "k--", label="floor: msgspec.json.decode (generic)")
    orj = sorted((r["bytes"], r["orjson"]) for r in allowed)
    ax.plot(*zip(*orj, strict=True), ":", color="grey", label="orjson.loads")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("request body (bytes)")
    ax.set_ylabel("median time per request (µs)")
    ax.set_title("Full check (JSON parsing included) vs one generic JSON decode")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _met(value: float | None, target: float, higher: bool = False) -> str:
    if value is None:
        return "not measured"
    ok = value >= target if higher else value <= target
    return "met" if ok else "**not met**"


def report(data: dict, out: Path) -> None:
    rows = data["micro"]
    lines = [
        "# Benchmark results",
        "",
        f"Measured {data['when']} on {data['machine']}; Python {data['python']}; "
        f"C accelerator {'on' if data['accelerated'] else 'off'}. Regenerate with "
        "`python benchmarks/run.py` (needs the `bench` extra). Times are medians of "
        f"{data['rounds']} alternating rounds, in microseconds per request.",
        "",
        "## Cost per request, side by side",
        "",
        "`guard` is `Guard.check` (route, strict decode, features, policy, verdict); `middleware` "
        "is the extra cost of a request through `ModelGuardMiddleware` over the same bare ASGI "
        "app; `pydantic` validates the body with the official SDK's request type (`TypeAdapter` "
        "over `anthropic`'s `MessageCreateParams` / `openai`'s `CompletionCreateParams`); "
        "`naive` is `json.loads` plus a hand-written walk.",
        "",
        "| shape | bytes | msgspec | orjson | guard | middleware | pydantic | naive | "
        "guard / msgspec |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['shape']} | {r['bytes']:,} | {r['msgspec']:.1f} | {r['orjson']:.1f} | "
            f"{r['guard']:.1f} | {r['middleware']:.1f} | "
            f"{r['pydantic']:.1f} | " if "pydantic" in r else
            f"| {r['shape']} | {r['bytes']:,} | {r['msgspec']:.1f} | {r['orjson']:.1f} | "
            f"{r['guard']:.1f} | {r['middleware']:.1f} | – | "
        )
        lines[-1] += f"{r['naive']:.1f} | {r['ratio']:.2f} |"
    large = [r["ratio"] for r in rows if r["bytes"] >= 15_000 or "/agent" in r["shape"]]
    tiny = [r["ratio"] for r in rows if r["shape"].endswith("/tiny")]
    e2e, cat, mem = data.get("e2e"), data["catalog"], data.get("memory")
    lines += ["", "![guard cost against body size](guard_cost.png)", "",
              "## End to end (uvicorn, one worker, loaded by wrk from a second process)", ""]
    if e2e:
        lines += [
            f"Agent-sized Anthropic request ({e2e['body_bytes']:,} bytes), `wrk -t1 -c16`, "
            f"{e2e['rounds']} alternating rounds of {e2e['seconds']} s each.", "",
            "| server | requests/s | p50 (ms) | p99 (ms) |", "| --- | ---: | ---: | ---: |",
            f"| bare | {e2e['bare']['rps']:.0f} | {e2e['bare']['p50']:.2f} | "
            f"{e2e['bare']['p99']:.2f} |",
            f"| guarded | {e2e['guarded']['rps']:.0f} | {e2e['guarded']['p50']:.2f} | "
            f"{e2e['guarded']['p99']:.2f} |", "",
            f"Throughput ratio guarded / bare: **{e2e['throughput_ratio']:.3f}**; added p50 "
            f"{e2e['added_p50_ms']:.3f} ms, added p99 {e2e['added_p99_ms']:.3f} ms; non-2xx "
            f"responses: {e2e['errors']:.0f}.",
        ]
        agent = next((r for r in rows if r["shape"] == "anthropic/agent"), None)
        if agent is not None:
            bare_us = 1e6 / e2e["bare"]["rps"]
            ceiling = bare_us / (bare_us + agent["msgspec"])
            lines += [
                "",
                f"For scale: the bare echo server spends {bare_us:.0f} µs per request and does "
                f"not parse the body; one generic msgspec decode of this body alone costs "
                f"{agent['msgspec']:.0f} µs, so even a guard that cost exactly that floor would "
                f"leave at most {ceiling:.2f} of the bare throughput. Against an app that "
                "parses its JSON (any real gateway), the guard's share is correspondingly "
                "smaller.",
            ]
    else:
        lines.append("Not measured (wrk unavailable).")
    lines += ["", "## Catalog size", "",
              f"Agent request against a {cat['models_small']}-model and a "
              f"{cat['models_big']:,}-model catalog: {cat['small_us']:.1f} µs vs "
              f"{cat['big_us']:.1f} µs, ratio **{cat['ratio']:.3f}** (lookups are one dict "
              "access; the catalog is scanned only to suggest alternatives on refusal).", "",
              "## Memory", ""]
    if mem:
        lines += [
            f"{mem['bodies']} concurrent {mem['body_mib']} MiB bodies in flight "
            f"({mem['in_flight_mib']} MiB) through uvicorn: peak RSS growth over the warmed-up "
            f"baseline, bare {mem['bare']['growth_mib']} MiB, guarded "
            f"{mem['guarded']['growth_mib']} MiB; guarded growth / bytes in flight = "
            f"**{mem['ratio']:.3f}**.",
        ]
    else:
        lines.append("Not measured.")
    summary = [
        ("guard / msgspec, agent-sized (~15 KB) and larger (worst)", max(large) if large else None,
         TARGETS["ratio_large"], False),
        ("guard / msgspec, tiny request (worst)", max(tiny) if tiny else None,
         TARGETS["ratio_tiny"], False),
        ("guarded / bare throughput, agent request", e2e["throughput_ratio"] if e2e else None,
         TARGETS["throughput"], True),
        ("10 000-model / 10-model catalog check time", cat["ratio"], TARGETS["catalog"], False),
        ("peak memory / body bytes in flight", mem["ratio"] if mem else None, TARGETS["memory"],
         False),
    ]
    lines += ["", "## Targets", "", "| target | measured | goal | |", "| --- | ---: | ---: | --- |"]
    for name, value, goal, higher in summary:
        shown = "–" if value is None else f"{value:.3f}"
        lines.append(f"| {name} | {shown} | {'≥' if higher else '≤'} {goal} | "
                     f"{_met(value, goal, higher)} |")
    over = [r["shape"] for r in rows
            if (r["bytes"] >= 15_000 or "/agent" in r["shape"]) and r["ratio"] > 1.0]
    if over:
        lines += ["", "Agent-sized and larger shapes above the 1.0 ratio: " + ", ".join(over)
                  + "."]
    out.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny counts, for CI")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--no-e2e", action="store_true")
    parser.add_argument("--no-memory", action="store_true")
    args = parser.parse_args(argv)
    random.seed(1)
    logging.getLogger("modelguard").setLevel(logging.CRITICAL)  # refusals are benchmarked too
    gc.collect()
    rounds = 3 if args.smoke else 15
    catalog = Catalog.default()
    print("micro benchmarks", flush=True)
    data: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d"), "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "accelerated": ACCELERATED, "rounds": rounds,
        "micro": micro(all_shapes(), catalog, rounds, args.smoke),
    }
    print("catalog scale", flush=True)
    data["catalog"] = catalog_scale(rounds, args.smoke)
    if not args.no_e2e:
        print("end to end", flush=True)
        data["e2e"] = end_to_end(args.smoke)
    if not args.no_memory:
        print("memory", flush=True)
        data["memory"] = memory(args.smoke)
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    plot(data["micro"], out.parent / "guard_cost.png")
    report(data, out)
    (out.parent / "results.json").write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
