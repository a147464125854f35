"""``modelguard serve``: the guarded reverse proxy (sidecar) and its metrics.

Needs the ``serve`` extra. ``from modelguard.serve import create_app, MetricsMiddleware`` loads
only the module it names.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["GuardMetrics", "MetricsMiddleware", "Sidecar", "SidecarMetrics", "create_app"]

_WHERE = {"create_app": "sidecar", "Sidecar": "sidecar", "MetricsMiddleware": "metrics",
          "GuardMetrics": "metrics", "SidecarMetrics": "metrics"}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'modelguard.serve' has no attribute {name!r}")
    return getattr(import_module(f".{module}", __name__), name)
