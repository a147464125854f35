"""Where the catalog for a request comes from: one small async interface.

A fixed :class:`Catalog` applies to everyone. A remote source (``RemoteCatalog``) fetches the
catalog of each caller's key; it may refuse (401/403) or be unavailable (503).
"""

from __future__ import annotations

from os import PathLike
from typing import Protocol, runtime_checkable

from ..errors import Reason
from .model import Catalog

__all__ = ["CatalogSource", "CatalogUnavailable", "StaticSource", "SyncCatalogSource",
           "as_source"]


class CatalogUnavailable(Exception):
    """No catalog for this caller: refused by the gateway, or not reachable and none cached.

    ``reason`` is :attr:`Reason.UNAUTHENTICATED`, :attr:`Reason.FORBIDDEN` or
    :attr:`Reason.UNAVAILABLE`; the message never contains a key.
    """

    def __init__(self, reason: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retry_after = retry_after


@runtime_checkable
class CatalogSource(Protocol):
    """Where a guard gets each caller's catalog: implement it to plug in your own store
    (``RemoteCatalog`` is one; a fixed ``Catalog`` is wrapped in one)."""

    #: Whether the caller's credential selects the catalog (then a request without one is 401).
    needs_credential: bool

    async def catalog_for(self, credential: str | None) -> Catalog:
        """The catalog that applies to this caller; raises :class:`CatalogUnavailable`."""
        ...

    async def refresh_for_unknown(self, credential: str | None) -> Catalog | None:
        """An early refresh after an unknown slug, if one is due (else None)."""
        ...


class SyncCatalogSource(CatalogSource, Protocol):
    """A source that also answers without an event loop (``Guard.check_sync``, the sync
    transport). A source without these methods still works there: its coroutines are run to
    completion on a private event loop."""

    def catalog_for_sync(self, credential: str | None) -> Catalog:
        ...

    def refresh_for_unknown_sync(self, credential: str | None) -> Catalog | None:
        ...


class StaticSource:
    """One fixed catalog for every caller."""

    needs_credential = False

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    async def catalog_for(self, credential: str | None) -> Catalog:
        return self.catalog

    async def refresh_for_unknown(self, credential: str | None) -> Catalog | None:
        return None

    def catalog_for_sync(self, credential: str | None) -> Catalog:
        return self.catalog

    def refresh_for_unknown_sync(self, credential: str | None) -> Catalog | None:
        return None

    def __repr__(self) -> str:
        return f"StaticSource({len(self.catalog)} models)"


def as_source(catalog: object) -> CatalogSource:
    """Accept a :class:`Catalog`, a catalog source, or a path to a catalog JSON file."""
    if isinstance(catalog, Catalog):
        return StaticSource(catalog)
    if isinstance(catalog, (str, PathLike)):
        return StaticSource(Catalog.from_file(catalog))
    if isinstance(catalog, CatalogSource):
        return catalog
    raise TypeError(
        "catalog must be a Catalog, a RemoteCatalog (or other catalog source) or a path to "
        f"a catalog JSON file, not {type(catalog).__name__}"
    )


def no_credential() -> CatalogUnavailable:
    """The refusal for a request that carries no key where the catalog depends on one."""
    return CatalogUnavailable(
        Reason.UNAUTHENTICATED,
        "No API key: send it as x-api-key, Authorization: Bearer, x-goog-api-key or ?key=.",
    )
