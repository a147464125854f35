"""How long a tiny request waits while large and decompression-heavy bodies are inspected.

    python benchmarks/stall.py                   # before (the ``main`` branch) and after
    python benchmarks/stall.py --before /path    # "before" = another checkout's modelguard
    python benchmarks/stall.py --smoke           # tiny counts: checks that it still runs

Each candidate runs as its own uvicorn server process (httptools, one worker) guarding an echo
app with the bundled catalog. A probe client sends one tiny chat request at a time and records
its latency while a load client keeps a few hostile or heavy bodies in flight:

- ``idle``: no load (the probe's own latency);
- ``large``: 8 MiB JSON bodies (a base64 image), allowed;
- ``gzip-large``: 3 MiB gzip bodies inflating to 4 MiB of base64, allowed;
- ``gzip-bomb``: 33 KB gzip bodies inflating to 33 MiB (refused);
- ``double-gzip``: 20 tiny ``gzip, gzip`` bodies inflating to 33 MiB (refused);
- ``large-32MiB``: 8 bodies just under the 32 MiB limit (a base64 image), allowed.

With ``--bare`` two floors are measured too: the same echo app without the guard (uvicorn's own
floor), and behind a middleware that only buffers each body and replays it, as any guard must
before its verdict, with nothing inspected (the floor of guarding at all). With ``--link``
the load client is paced to a 1 Gbit/s link shared by its connections (what remote clients
could send) instead of sending as fast as loopback goes. Every load lasts at least
:data:`MIN_LOAD_SECONDS`, repeating its bodies, so the probe's p99 is not its worst sample.

All candidates are measured in one run, alternating scenario by scenario; the machine is shared
and noisy, so the ratios matter, not the absolute numbers. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gzip
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MiB = 1024 * 1024
PROBE = json.dumps({"model": "gpt-5-4", "messages": [{"role": "user", "content": "hi"}]}).encode()
#: Hard bounds on every loop (count and seconds), whatever the options say.
MAX_SECONDS = 60.0
#: Seconds between two probes: short enough for a p99 of a few hundred samples per load.
PROBE_GAP = 0.002
#: Random bytes of the ``large-32MiB`` load's image: base64 makes the body just under 32 MiB.
HUGE_RAW = 23 * MiB + 512 * 1024
#: The load client writes its bodies this many bytes at a time (see ``_post``).
SLICE = 65536
#: A server's share of one 1 Gbit/s network link, in bytes per second (``--link``): what its
#: clients can send at most when they are not on the same machine.
GIGABIT = 125_000_000
#: Seconds a load lasts at least (it repeats its bodies meanwhile), so that even a fast load
#: gives the probe a few hundred samples: a p99 of a few dozen is its worst one.
MIN_LOAD_SECONDS = 1.5
#: At most this many load requests per scenario, whatever the duration.
MAX_LOAD_REQUESTS = 2000


class Link:
    """The network between the load client and the server: ``rate`` bytes per second shared by
    all load connections, or ``None`` for as fast as loopback goes (then the client, the kernel
    and the server share the machine's cores, and the client's CPU is part of what is measured).
    """

    def __init__(self, rate: float | None) -> None:
        self.rate, self._free = rate, 0.0

    async def send(self, size: int) -> None:
        """Wait until ``size`` more bytes fit the link (one slice at a time: no bursts)."""
        if self.rate is None:
            return
        now = time.monotonic()
        self._free = max(now, self._free) + size / self.rate
        await asyncio.sleep(self._free - now)


# -- the server side ---------------------------------------------------------------------------


async def echo(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = json.dumps({"received": size}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def buffering(app: Any) -> Any:
    """``app`` behind what a guard does besides inspecting: the whole body is received and
    kept before the app sees any of it, then replayed piece by piece, with
    ``ModelGuardMiddleware``'s own helpers, and nothing is read."""
    from modelguard.middleware import _read_body, _replay
    from modelguard.policy import DEFAULT_MAX_BODY_BYTES

    async def buffered(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        chunks = await _read_body(receive, DEFAULT_MAX_BODY_BYTES)
        if chunks is not None:  # None: the client left
            await app(scope, _replay(chunks, receive), send)

    return buffered


#: What a server runs: the guarded echo app, or one of the two floors (``--bare``).
KINDS = ("guarded", "bare", "buffered")


def serve(port: int, kind: str = "guarded") -> None:
    import uvicorn

    from modelguard import Catalog, ModelGuardMiddleware

    if kind == "guarded":
        app = ModelGuardMiddleware(echo, catalog=Catalog.default())
    else:
        app = echo if kind == "bare" else buffering(echo)
    uvicorn.run(app, host="127.0.0.1", port=port, http="httptools", log_level="warning",
                access_log=False, lifespan="off")


# -- bodies ------------------------------------------------------------------------------------


def _anthropic(extra: bytes) -> bytes:
    return (b'{"model":"claude-sonnet-4-6","max_tokens":64,"messages":[{"role":"user",'
            b'"content":[{"type":"text","text":"what is this?"},{"type":"image","source":'
            b'{"type":"base64","media_type":"image/png","data":"' + extra + b'"}}]}]}')


def bodies() -> dict[str, tuple[bytes, dict[str, str]]]:
    rng = random.Random(0)
    large = _anthropic(base64.b64encode(rng.randbytes(6 * MiB)))
    inflated = _anthropic(base64.b64encode(rng.randbytes(3 * MiB)))
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    bomb = c.compress(b'{"model":"claude-sonnet-4-6","pad":"') + b"".join(
        c.compress(b"a" * MiB) for _ in range(33)) + c.compress(b'"}') + c.flush()
    huge = _anthropic(base64.b64encode(random.Random(1).randbytes(HUGE_RAW)))
    return {
        "large": (large, {}),
        "gzip-large": (gzip.compress(inflated, 6), {"content-encoding": "gzip"}),
        "gzip-bomb": (bomb, {"content-encoding": "gzip"}),
        "double-gzip": (gzip.compress(bomb, 9), {"content-encoding": "gzip, gzip"}),
        "large-32MiB": (huge, {}),
    }


# -- the client side ---------------------------------------------------------------------------


async def _post(port: int, body: bytes, headers: dict[str, str], link: Link) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write((f"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json"
                      f"\r\ncontent-length: {len(body)}\r\n{head}connection: close\r\n\r\n")
                     .encode())
        # In slices, never copied whole: joining the head to a 32 MiB body, or handing the
        # transport all of it (it buffers what the socket does not take at once), would stall
        # this process's own loop for 100+ ms, and the probe would measure the client.
        view = memoryview(body)
        for start in range(0, len(body), SLICE):
            await link.send(min(SLICE, len(body) - start))
            writer.write(view[start:start + SLICE])
            await writer.drain()
        status = await reader.readline()
        with contextlib.suppress(ConnectionError):
            await reader.read()
        return int(status.split()[1]) if status else 0
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def _probe_loop(port: int, stop: asyncio.Event, out: list[float], limit: int) -> None:
    while not stop.is_set() and len(out) < limit:
        start = time.perf_counter()
        status = await _post_chat(port)
        out.append(time.perf_counter() - start)
        assert status == 200, status
        await asyncio.sleep(PROBE_GAP)


async def _post_chat(port: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: "
                     b"application/json\r\ncontent-length: " + str(len(PROBE)).encode()
                     + b"\r\nconnection: close\r\n\r\n" + PROBE)
        await writer.drain()
        status = await reader.readline()
        await reader.read()
        return int(status.split()[1])
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def scenario(port: int, load: tuple[bytes, dict[str, str]] | None, count: int,
                   concurrency: int, link: Link | None = None,
                   min_seconds: float = 0.0) -> tuple[list[float], list[int], float]:
    """Probe latencies while at least ``count`` load requests, and at least ``min_seconds`` of
    them, run ``concurrency`` at a time over ``link``; the load's statuses, and how long the
    whole load took."""
    stop = asyncio.Event()
    latencies: list[float] = []
    statuses: list[int] = []
    probe = asyncio.create_task(_probe_loop(port, stop, latencies, 100_000))
    began = time.monotonic()
    deadline = began + MAX_SECONDS
    if load is None:
        await asyncio.sleep(max(1.0, min_seconds))
    else:
        body, headers = load
        link = link or Link(None)
        started = 0

        def more() -> bool:
            now = time.monotonic()
            return (now < deadline and started < MAX_LOAD_REQUESTS
                    and (started < count or now - began < min_seconds))

        async def client() -> None:
            nonlocal started
            while more():
                started += 1
                statuses.append(await _post(port, body, headers, link))

        await asyncio.gather(*(client() for _ in range(concurrency)))
    took = time.monotonic() - began
    stop.set()
    await probe
    return latencies, statuses, took


def _summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {"n": len(ordered), "p50": statistics.median(ordered) * 1000,
            "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
            "max": ordered[-1] * 1000}


# -- candidates --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _checkout(ref: str, into: Path) -> Path:
    """``ref``'s modelguard package, with its accelerator built, under ``into``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "modelguard", "setup.py",
                              "pyproject.toml", "README.md"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace", "-q"], cwd=into,
                   check=False, capture_output=True)
    return into


class Server:
    def __init__(self, name: str, path: Path, kind: str = "guarded") -> None:
        """``kind``: one of :data:`KINDS` (the guarded echo app, or a floor)."""
        self.name, self.port = name, _free_port()
        env = {**os.environ, "PYTHONPATH": str(path)}
        self.process = subprocess.Popen([sys.executable, __file__, "--serve", str(self.port),
                                         "--kind", kind], env=env, cwd=str(path))

    def wait(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), timeout=0.2):
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name}: server did not start")

    def stop(self) -> None:
        self.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)
        if self.process.poll() is None:
            self.process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", help="a checkout whose modelguard/ is 'before' "
                        "(default: the main branch, built in a temporary directory)")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--bare", action="store_true",
                        help="also measure the echo app without the guard (uvicorn's floor) "
                        "and behind a middleware that only buffers (the floor of guarding)")
    parser.add_argument("--kind", choices=KINDS, default="guarded", help=argparse.SUPPRESS)
    parser.add_argument("--link", action="store_true",
                        help="pace the load client to a 1 Gbit/s link (default: loopback speed)")
    parser.add_argument("--json", help="also write the numbers to this file")
    parser.add_argument("--only", action="append", help="run only these loads (repeatable)")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.kind)
        return
    count, concurrency = (4, 2) if args.smoke else (20, 4)
    loads = bodies()
    tmp = Path(tempfile.mkdtemp(prefix="modelguard-stall-"))
    try:
        before = Path(args.before) if args.before else _checkout("main", tmp)
        servers = [Server("before", before), Server("after", ROOT)]
        if args.bare:
            servers += [Server(kind, ROOT, kind) for kind in ("buffered", "bare")]
        for server in servers:
            server.wait()
        results: dict[str, dict[str, Any]] = {}
        try:
            for name in args.only or ["idle", *loads]:
                for server in servers:
                    load = None if name == "idle" else loads[name]
                    n = {"double-gzip": max(count, 20), "large-32MiB": min(count, 8)}.get(
                        name, count)
                    latencies, statuses, took = asyncio.run(scenario(
                        server.port, load, n, concurrency, Link(GIGABIT if args.link else None),
                        0.2 if args.smoke else MIN_LOAD_SECONDS))
                    results.setdefault(name, {})[server.name] = {
                        **_summary(latencies), "load_status": sorted(set(statuses)),
                        "load_requests": len(statuses), "load_seconds": took}
        finally:
            for server in servers:
                server.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _report(results, loads)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def _took(row: dict[str, Any]) -> str:
    return "" if not row["load_requests"] else f"{row['load_seconds']:.2f}"


def _size(n: int) -> str:
    return f"{n} B" if n < 10_240 else f"{n / 1024:,.0f} KiB"


def _report(results: dict[str, dict[str, Any]], loads: dict[str, Any]) -> None:
    names = list(next(iter(results.values())))
    print("\nLatency of a tiny chat request (ms) while the load is inspected (before = main, "
          "after = this tree, bare = the echo app without the guard, buffered = behind a "
          "middleware that only buffers); ÷ idle = p99 over the "
          "same server's unloaded p99 (the target: ≤ 2)\n")
    print("| load | body | " + " | ".join(f"{n} p50 / p99 / max | {n} ÷ idle" for n in names)
          + " | load answered | load took (s) |")
    print("| --- | --- | " + " | ".join("--- | ---:" for _ in names) + " | --- | --- |")
    idle = results.get("idle", {})
    for name, row in results.items():
        size = "" if name == "idle" else _size(len(loads[name][0]))
        cells = []
        for n in names:
            r = row[n]
            ratio = r["p99"] / idle[n]["p99"] if n in idle else float("nan")
            cells.append(f"{r['p50']:.1f} / {r['p99']:.1f} / {r['max']:.1f} | {ratio:.2f}")
        answered = " → ".join(str(row[n]["load_status"]) for n in names)
        took = " → ".join(_took(row[n]) for n in names)
        print(f"| {name} | {size} | " + " | ".join(cells) + f" | {answered} | {took} |")


if __name__ == "__main__":
    main()
