"""The gateway's model catalog (``GET /v1/models``) as validated, indexed data.

Only ``data[].id`` is required. Missing lists mean empty, missing limits mean "unknown, not
checked", unknown fields and unknown capability tags are kept and ignored. Duplicate ids make
the whole payload invalid: a catalog is never half-applied.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from importlib import resources
from os import PathLike
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from .suggest import family_members, family_word, near_spelling

__all__ = ["Catalog", "CatalogError", "ModelInfo"]

#: Input modalities that grant the matching capability tag (decisions.md §3).
_MODALITY_TAGS = {"image": "vision", "audio": "audio", "video": "video"}
#: The most models a "did you mean" search compares by similarity (it is not on the hot path,
#: but an unknown slug must not cost a large catalog's worth of string matching).
_SUGGEST_SCAN_LIMIT = 2000


class CatalogError(ValueError):
    """A catalog payload or file that cannot be used."""


def _empty_if_none(value: Any) -> Any:
    return () if value is None else value


class ModelInfo(BaseModel):
    """One ``data[]`` entry of the catalog."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: str = Field(min_length=1)
    object: str = "model"
    owned_by: str | None = None
    family: str | None = None
    capabilities: tuple[str, ...] = ()
    context_window: int | None = None
    max_output_tokens: int | None = None
    input_modalities: tuple[str, ...] = ()
    output_modalities: tuple[str, ...] = ()
    pricing_url: str | None = None
    created: int | None = None

    _tags: frozenset[str] = PrivateAttr(default=frozenset())

    _lists = field_validator(
        "capabilities", "input_modalities", "output_modalities", mode="before"
    )(_empty_if_none)

    def model_post_init(self, __context: Any) -> None:
        modal = (_MODALITY_TAGS[m] for m in self.input_modalities if m in _MODALITY_TAGS)
        self._tags = frozenset(self.capabilities).union(modal)

    def has(self, tag: str) -> bool:
        """Whether the model has ``tag``, by its capabilities or its input modalities."""
        # (private attributes read through __pydantic_private__: pydantic's __getattr__ is slow)
        return tag in self.__pydantic_private__["_tags"]

    @property
    def tags(self) -> frozenset[str]:
        return self.__pydantic_private__["_tags"]


class Catalog(BaseModel):
    """The models one caller may use, indexed by id for O(1) lookup."""

    model_config = ConfigDict(extra="allow", frozen=True)

    object: str = "list"
    data: tuple[ModelInfo, ...]

    _index: dict[str, ModelInfo] = PrivateAttr(default_factory=dict)
    _families: frozenset[str] | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _unique_ids(self) -> Catalog:
        index: dict[str, ModelInfo] = {}
        for entry in self.data:
            if entry.id in index:
                raise ValueError(f"duplicate model id {entry.id!r} in catalog")
            index[entry.id] = entry
        self._index = index
        return self

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_payload(cls, payload: Any) -> Catalog:
        """Validate a decoded ``GET /v1/models`` payload, raising :class:`CatalogError`."""
        try:
            return cls.model_validate(payload)
        except ValueError as exc:  # pydantic.ValidationError is a ValueError
            raise CatalogError(f"malformed catalog: {exc}") from None

    @classmethod
    def from_bytes(cls, raw: bytes | str) -> Catalog:
        try:
            payload = json.loads(raw)
        except ValueError as exc:
            raise CatalogError(f"catalog is not JSON: {exc}") from None
        return cls.from_payload(payload)

    @classmethod
    def from_file(cls, path: str | PathLike[str]) -> Catalog:
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
        except OSError as exc:
            raise CatalogError(f"cannot read catalog file {str(path)!r}: {exc.strerror}") from None
        return cls.from_bytes(raw)

    @classmethod
    def default(cls) -> Catalog:
        """The bundled sample snapshot (not a live catalog; see the README)."""
        raw = resources.files("modelguard").joinpath("data/catalog.json").read_bytes()
        return cls.from_bytes(raw)

    # -- queries --------------------------------------------------------------------------

    def get(self, model_id: str) -> ModelInfo | None:
        return self.__pydantic_private__["_index"].get(model_id)

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._index

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self) -> Iterator[ModelInfo]:  # type: ignore[override]
        return iter(self.data)

    @property
    def ids(self) -> list[str]:
        return list(self._index)

    def select(
        self, capabilities: Iterable[str] = (), family: str | None = None
    ) -> list[ModelInfo]:
        """Models with every capability tag whose ``family`` or ``owned_by`` is ``family``."""
        needed = frozenset(capabilities)
        wanted = family.lower() if family else None
        return [
            entry for entry in self.data
            if needed <= entry.tags and (wanted is None or wanted in (
                (entry.family or "").lower(), (entry.owned_by or "").lower()))
        ]

    @staticmethod
    def listing(models: Iterable[ModelInfo]) -> dict[str, Any]:
        """A ``GET /v1/models`` payload for ``models``, unknown fields included."""
        return {"object": "list", "data": [m.model_dump(mode="json", exclude_none=True)
                                           for m in models]}

    def suggest(self, slug: str) -> str | None:
        """The model ``slug`` is a misspelling of ("did you mean"), or None.

        Only spellings count (see :mod:`modelguard.catalog.suggest`): never another version
        or tier; for those, :meth:`family` lists what the key can use instead.
        """
        return near_spelling(slug, self.ids[:_SUGGEST_SCAN_LIMIT], self._family_words())

    def family(self, slug: str, limit: int = 3) -> tuple[str | None, list[str]]:
        """(label, up to ``limit`` ids) of this catalog's models of ``slug``'s family or owner."""
        return family_members(slug, self.data[:_SUGGEST_SCAN_LIMIT], limit)

    def _family_words(self) -> frozenset[str]:
        words = self.__pydantic_private__["_families"]
        if words is None:
            found = {family_word(e.id) for e in self.data[:_SUGGEST_SCAN_LIMIT]}
            for entry in self.data[:_SUGGEST_SCAN_LIMIT]:
                found.update(w.lower() for w in (entry.family, entry.owned_by) if w)
            words = frozenset(found)
            self.__pydantic_private__["_families"] = words
        return words

    def capable(
        self, tags: Iterable[str], *, vendor: str | None = None, min_output: int | None = None,
        exclude: str | None = None, limit: int = 3, prefer_owner: str | None = None,
    ) -> list[str]:
        """Up to ``limit`` ids of models that have every tag (and the vendor, and output room).

        Models owned by ``prefer_owner`` come first (an alternative from the same vendor is
        the smaller change for the caller).
        """
        needed = frozenset(tags)
        found: list[str] = []
        others: list[str] = []
        for entry in self.data:
            if entry.id == exclude or not needed <= entry.tags:
                continue
            if vendor is not None and entry.owned_by != vendor:
                continue
            room = entry.max_output_tokens
            if min_output is not None and room is not None and room < min_output:
                continue
            if prefer_owner is None or entry.owned_by == prefer_owner:
                found.append(entry.id)
                if len(found) == limit:
                    break
            elif len(others) < limit:
                others.append(entry.id)
        return (found + others)[:limit]
