"""Catalog payloads (``GET /v1/models`` JSON) the stand-in gateway serves in the agent tests.

``capture``: one model per agent with every capability the agents use (bodies are captured on it).
``gateway``: the gateway's documented catalog (the bundled snapshot, modelguard/data/catalog.json).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BUNDLED = HERE.parents[2] / "modelguard" / "data" / "catalog.json"


def catalog_path(name: str) -> Path:
    return BUNDLED if name == "gateway" else HERE / f"{name}.json"


def load_catalog(name: str) -> dict[str, Any]:
    return json.loads(catalog_path(name).read_text())
