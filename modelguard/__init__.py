"""modelguard: stop requests a model cannot serve at the door of an LLM gateway."""

from ._version import DISTRIBUTION, __version__
from .body import ACCELERATED
from .catalog import Catalog, CatalogError, ModelInfo
from .catalog.remote import CatalogChange, RemoteCatalog
from .catalog.sources import CatalogSource, CatalogUnavailable
from .catalog.store import RedisCatalogStore
from .errors import Reason
from .guard import Guard
from .middleware import ModelGuardMiddleware
from .policy import Violation
from .types import CatalogLike, Mode
from .verdict import Verdict

__all__ = [
    "ACCELERATED",
    "DISTRIBUTION",
    "Catalog",
    "CatalogChange",
    "CatalogError",
    "CatalogLike",
    "CatalogSource",
    "CatalogUnavailable",
    "Guard",
    "Mode",
    "ModelGuardMiddleware",
    "ModelInfo",
    "Reason",
    "RedisCatalogStore",
    "RemoteCatalog",
    "Verdict",
    "Violation",
    "__version__",
]
