"""One step of a sans-I/O description: a generator that yields what it needs next (a catalog,
a download, a Redis round trip) and returns its result. The async and sync shells that answer
those needs all advance it with :func:`resume`."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

__all__ = ["resume"]


def resume(steps: Generator[Any, Any, Any], value: Any = None,
           failed: bool = False) -> tuple[bool, Any]:
    """Send ``value`` in (or throw it in, when ``failed``): ``(False, next need)`` or
    ``(True, result)``."""
    try:
        return False, (steps.throw(value) if failed else steps.send(value))
    except StopIteration as stop:
        return True, stop.value
