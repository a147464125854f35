"""Catalogs: the model list itself, where it comes from, and how it is cached."""

from .model import Catalog, CatalogError, ModelInfo

__all__ = ["Catalog", "CatalogError", "ModelInfo"]
