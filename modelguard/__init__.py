"""modelguard: stop requests a model cannot serve at the door of an LLM gateway."""

from .catalog import Catalog, CatalogError, ModelInfo
from .catalog.remote import CatalogChange, RemoteCatalog
from .catalog.sources import CatalogSource, CatalogUnavailable
from .catalog.store import RedisCatalogStore
from .guard import Guard
from .middleware import ModelGuardMiddleware
from .transports import AsyncGuardTransport, GuardTransport
from .verdict import Verdict

__all__ = [
    "AsyncGuardTransport",
    "Catalog",
    "CatalogChange",
    "CatalogError",
    "CatalogSource",
    "CatalogUnavailable",
    "Guard",
    "GuardTransport",
    "ModelGuardMiddleware",
    "ModelInfo",
    "RedisCatalogStore",
    "RemoteCatalog",
    "Verdict",
]

__version__ = "0.1.0"
