"""Types of the public API, for annotations in user code (``from modelguard import Mode``)."""

from __future__ import annotations

from os import PathLike
from typing import Literal, TypeAlias

from .catalog.model import Catalog
from .catalog.sources import CatalogSource

__all__ = ["CatalogLike", "Mode"]

#: ``"enforce"`` refuses what the model cannot serve; ``"report"`` forwards it and only records
#: the violations (on the verdict, ``on_violation``, logs and metrics).
Mode: TypeAlias = Literal["enforce", "report"]

#: What ``catalog=`` accepts: a fixed :class:`~modelguard.Catalog`, a catalog source (a
#: :class:`~modelguard.RemoteCatalog`, or anything with ``catalog_for``/``refresh_for_unknown``),
#: or the path of a catalog JSON file.
CatalogLike: TypeAlias = Catalog | CatalogSource | str | PathLike[str]
