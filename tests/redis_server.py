"""Test helpers for the shared cache: a real ``redis-server`` and a fleet of worker processes.

``RedisServer`` runs Debian's ``redis-server`` on 127.0.0.1 on a free port, without
persistence (``--save "" --appendonly no``), in a temporary directory; it can be killed,
restarted on the same port, paused (SIGSTOP) and resumed. Every wait is bounded.

``Fleet`` starts worker *processes* (multiprocessing, spawn): each builds its own
``RemoteCatalog(gateway_url, store=RedisCatalogStore(redis_url))`` and checks requests with
``Guard`` on its own event loop, on command from the test, and reports what it saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import traceback
from collections import Counter
from typing import Any

__all__ = ["REDIS_SERVER", "Fleet", "RedisServer", "free_port"]

#: The ``redis-server`` binary, or None (then the Redis tests are skipped).
REDIS_SERVER = shutil.which("redis-server")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1 (started by :meth:`start`)."""

    def __init__(self, port: int | None = None) -> None:
        if REDIS_SERVER is None:
            raise RuntimeError("redis-server is not on PATH")
        self.port = port or free_port()
        self._dir = tempfile.mkdtemp(prefix="modelguard-redis-")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> RedisServer:
        assert not self.running
        self._proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self._dir,
             "--daemonize", "no", "--loglevel", "warning"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"redis-server exited at start ({self._proc.returncode})")
            if self.ping():
                return self
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"redis-server did not answer on port {self.port} in {timeout}s")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: no goodbye to the clients, like a crash."""
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signal.SIGCONT)
                self._proc.kill()
            self._proc.wait(timeout=10)
            self._proc = None

    def pause(self) -> None:
        """SIGSTOP: connections stay open and nothing answers (a hung Redis)."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGCONT)

    def client(self) -> Any:
        return self.client_for(self.url)

    @staticmethod
    def client_for(url: str) -> Any:
        """A synchronous redis-py client, for looking inside."""
        import redis

        return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)

    def dump(self) -> dict[bytes, Any]:
        """Every key and its value (strings, hashes), read with SCAN."""
        with contextlib.closing(self.client()) as client:
            out: dict[bytes, Any] = {}
            for name in client.scan_iter(count=1000):
                kind = client.type(name)
                if kind == b"string":
                    out[name] = client.get(name)
                elif kind == b"hash":
                    out[name] = client.hgetall(name)
                else:
                    out[name] = kind
            return out

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self._dir, ignore_errors=True)


# -- worker processes ------------------------------------------------------------------------------


class Fleet:
    """``size`` worker processes, each with its own RemoteCatalog on one shared Redis."""

    def __init__(self, size: int, gateway_url: str, redis_url: str, *,
                 remote: dict[str, Any] | None = None, store: dict[str, Any] | None = None,
                 env: dict[str, str] | None = None, timeout: float = 20.0) -> None:
        self.timeout = timeout
        ctx = multiprocessing.get_context("spawn")
        self._conns = []
        self._procs = []
        config = {"gateway": gateway_url, "redis": redis_url, "remote": remote or {},
                  "store": store or {}, "env": env or {}}
        for index in range(size):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(child, config), daemon=True,
                               name=f"modelguard-worker-{index}")
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        self.call("ping")  # every worker is up and has its catalog

    def call(self, command: str, *args: Any, timeout: float | None = None) -> list[Any]:
        """Send one command to every worker at once; their answers, in worker order."""
        for conn in self._conns:
            conn.send((command, args))
        return self.collect(timeout)

    def send(self, command: str, *args: Any) -> None:
        for conn in self._conns:
            conn.send((command, args))

    def collect(self, timeout: float | None = None) -> list[Any]:
        deadline = time.monotonic() + (timeout or self.timeout)
        answers = []
        for index, conn in enumerate(self._conns):
            if not conn.poll(max(0.0, deadline - time.monotonic())):
                raise AssertionError(f"worker {index} did not answer in time")
            status, value = conn.recv()
            if status != "ok":
                raise AssertionError(f"worker {index} failed:\n{value}")
            answers.append(value)
        return answers

    def close(self) -> None:
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.send(("stop", ()))
        for proc in self._procs:
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
        for conn in self._conns:
            conn.close()


def chat(model: str) -> bytes:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]}).encode()


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[tuple[str, str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.name, record.levelname, record.getMessage()))


def worker_main(conn: Any, config: dict[str, Any]) -> None:
    os.environ.update(config["env"])
    if not config["env"]:
        os.environ.pop("MODELGUARD_KEY_SECRET", None)
    asyncio.run(_worker(conn, config))


async def _worker(conn: Any, config: dict[str, Any]) -> None:
    from modelguard import Guard, RedisCatalogStore, RemoteCatalog

    records = _Records()
    root = logging.getLogger("modelguard")
    root.addHandler(records)
    root.setLevel(logging.DEBUG)
    store = RedisCatalogStore(config["redis"], **config["store"])
    remote = RemoteCatalog(config["gateway"], store=store, **config["remote"])
    guard = Guard(remote)

    async def check(key: str, model: str) -> int:
        verdict = await guard.check("POST", "/v1/chat/completions", {"x-api-key": key},
                                    chat(model))
        return 200 if verdict.allowed else verdict.status

    async def burst(key: str, model: str, count: int) -> dict[int, int]:
        return dict(Counter(await asyncio.gather(*(check(key, model) for _ in range(count)))))

    async def run_for(seconds: float, prefix: str, model: str) -> dict[str, Any]:
        """Requests without pause for ``seconds``: known keys and new ones, a few at a time."""
        statuses: Counter[int] = Counter()
        deadline = time.monotonic() + seconds
        round_ = 0
        while time.monotonic() < deadline:
            keys = [f"{prefix}-{round_}", f"{prefix}-{round_ // 4}", f"{prefix}-0"]
            results = await asyncio.gather(*(check(k, model) for k in keys for _ in range(5)))
            statuses.update(results)
            round_ += 1
            await asyncio.sleep(0.01)
        return {"statuses": dict(statuses), "rounds": round_}

    async def settle() -> None:
        for _ in range(1000):
            if not remote._tasks:  # noqa: SLF001
                return
            await asyncio.sleep(0.01)
        raise AssertionError("background refresh did not finish")

    handlers = {
        "ping": lambda: _done(True),
        "burst": burst,
        "run_for": run_for,
        "settle": settle,
        "key_id": lambda key: _done(remote.key_id(key)),
        "counters": lambda: _done({"fetches": dict(remote.fetches),
                                   "shared": dict(remote.shared)}),
        "logs": lambda: _done(list(records.records)),
    }
    try:
        while True:
            command, args = await asyncio.to_thread(conn.recv)
            if command == "stop":
                break
            try:
                value = await handlers[command](*args)
            except Exception:  # noqa: BLE001 - reported to the test, which fails
                conn.send(("error", traceback.format_exc()))
            else:
                conn.send(("ok", value))
    finally:
        await remote.aclose()
        conn.close()


async def _done(value: Any) -> Any:
    return value
