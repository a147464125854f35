"""The outcome of one check: what the guard decided, why, and the response to send if refused."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .catalog import ModelInfo
from .errors import envelope, token_of
from .policy import Violation

__all__ = ["Verdict"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """``allowed`` says whether to forward; ``status``/``body``/``headers`` answer otherwise.

    In report mode a request with policy violations is allowed and ``violations`` still lists
    them.

    ``guarded`` is True when the request was on a guarded route and was inspected; it is False
    for requests the guard lets pass without looking (other routes and methods). Such a verdict
    is ``allowed`` too, so check ``guarded`` where a path prefix is involved: a proxy mounted
    under ``/llm`` that forgets ``root_path="/llm"`` gets ``allowed=True, guarded=False`` for
    every request (docs/client.md, "Prefixes").
    """

    allowed: bool
    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    guarded: bool = False
    protocol: str | None = None
    route: str | None = None
    model_id: str | None = None
    model: ModelInfo | None = None
    required: frozenset[str] = frozenset()
    violations: tuple[Violation, ...] = ()

    @property
    def reason(self) -> str | None:
        """The first violation's reason (``unsupported_model``, ...), or None."""
        return self.violations[0].reason if self.violations else None

    @property
    def error(self) -> dict[str, Any] | None:
        """The refusal envelope as JSON, or None when allowed."""
        return None if self.allowed or not self.body else json.loads(self.body)

    @property
    def token(self) -> str | None:
        """The protocol's fixed error token for the first violation."""
        if not self.violations or self.protocol is None:
            return None
        return token_of(self.violations[0].reason, self.protocol)

    def __repr__(self) -> str:
        state = "allowed" if self.allowed else f"refused {self.status} {self.reason}"
        return f"<Verdict {state} protocol={self.protocol} model={self.model_id!r}>"


PASS = Verdict(allowed=True)


def refusal(protocol: str, kind: str, violation: Violation, *, reject: bool = True,
            model: ModelInfo | None = None, required: frozenset[str] = frozenset(),
            violations: tuple[Violation, ...] = (), retry_after: int | None = None,
            model_id: str | None = None) -> Verdict:
    """A verdict refusing (or, in report mode, only reporting) ``violation``."""
    allowed = not reject
    status, body, headers = (200, b"", []) if allowed else envelope(
        protocol, violation.reason, violation.message, path=violation.path,
        model=violation.model or model_id, capability=violation.capability,
        retry_after=retry_after,
    )
    return Verdict(
        allowed=allowed, status=status, body=body, headers=headers, guarded=True,
        protocol=protocol, route=kind, model_id=model_id or violation.model, model=model,
        required=required, violations=violations or (violation,),
    )
