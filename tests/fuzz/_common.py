"""What both harnesses share: the import path, a byte reader, and running a harness."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

try:
    import atheris
except ImportError:  # replays still work; only the fuzzing loop needs atheris
    atheris = None


class Bytes:
    """Reads fuzzer input the same way whether or not atheris is installed (so a saved input
    replays identically under plain pytest)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def byte(self) -> int:
        if self.at >= len(self.data):
            return 0
        self.at += 1
        return self.data[self.at - 1]

    def pick(self, items: Sequence[Any]) -> Any:
        return items[self.byte() % len(items)]

    def flag(self) -> bool:
        return bool(self.byte() & 1)

    def text(self, max_bytes: int = 64) -> str:
        """A string of at most ``max_bytes`` input bytes (length first), decoded leniently."""
        size = self.byte() % (max_bytes + 1)
        chunk = self.data[self.at:self.at + size]
        self.at += len(chunk)
        return chunk.decode("utf-8", errors="surrogateescape")

    def rest(self) -> bytes:
        chunk = self.data[self.at:]
        self.at = len(self.data)
        return chunk


def drive(coro: Any, *, loop: bool = False) -> Any:
    """Run a coroutine that never waits (a static catalog needs no I/O) without a loop, or,
    with ``loop``, on a fresh event loop (a body that may inflate past ``LARGE_BODY`` is
    inspected in a worker thread, which needs one)."""
    if loop:
        return asyncio.run(_awaited(coro))
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise AssertionError("Guard.check suspended although its catalog is static")


async def _awaited(coro: Any) -> Any:
    return await coro


def main(test_one_input: Callable[[bytes], None], argv: list[str]) -> None:
    if atheris is None:
        sys.exit("atheris is not installed: pip install atheris (Linux/macOS, CPython >= 3.8)")
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()
