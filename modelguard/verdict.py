"""The outcome of one check: what the guard decided, why, and the response to send if refused."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .catalog import ModelInfo
from .errors import envelope, token_of
from .policy import Violation
from .wording import compose

__all__ = ["Verdict"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """``allowed`` says whether to forward; ``status``/``body``/``headers`` answer otherwise.

    ``violations`` lists every violation found, each with the action taken on it; in report
    mode a request with refused violations is allowed and they are still listed. When an
    action changed the body, ``rewritten_body`` is the body to forward (decoded: send it with
    a matching Content-Length and without Content-Encoding) and ``adjustments`` says what
    changed (``"cache_control=stripped"``, ``"max_tokens=8192"``).

    ``guarded`` is True when the request was on a guarded route and was inspected; it is False
    for requests the guard lets pass without looking (other routes and methods). Such a verdict
    is ``allowed`` too, so check ``guarded`` where a path prefix is involved: a proxy mounted
    under ``/llm`` that forgets ``root_path="/llm"`` gets ``allowed=True, guarded=False`` for
    every request (see "Prefixes" in the client guide).
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
    adjustments: tuple[str, ...] = ()
    rewritten_body: bytes | None = None

    @property
    def refused(self) -> tuple[Violation, ...]:
        """The violations no action resolved (in report mode, forwarded all the same)."""
        return tuple(v for v in self.violations if v.refused)

    @property
    def first(self) -> Violation | None:
        """The violation that decides the token: the first refused one, else the first."""
        return next((v for v in self.violations if v.refused),
                    self.violations[0] if self.violations else None)

    @property
    def reason(self) -> str | None:
        """The deciding violation's reason (``unsupported_model``, ...), or None."""
        first = self.first
        return first.reason if first is not None else None

    @property
    def reasons(self) -> tuple[str, ...]:
        """Every distinct reason among the refused violations, in order."""
        return tuple(dict.fromkeys(v.reason for v in self.violations if v.refused))

    @property
    def error(self) -> dict[str, Any] | None:
        """The refusal envelope as JSON, or None when allowed."""
        return None if self.allowed or not self.body else json.loads(self.body)

    @property
    def token(self) -> str | None:
        """The protocol's fixed error token for the deciding violation."""
        first = self.first
        if first is None or self.protocol is None:
            return None
        return token_of(first.reason, self.protocol)

    @property
    def adjusted_header(self) -> str | None:
        """The ``modelguard-adjusted`` header value, or None when nothing was adjusted."""
        return "; ".join(self.adjustments) if self.adjustments else None

    def __repr__(self) -> str:
        state = "allowed" if self.allowed else f"refused {self.status} {self.reason}"
        if self.adjustments:
            state += f" adjusted {self.adjusted_header}"
        return f"<Verdict {state} protocol={self.protocol} model={self.model_id!r}>"


PASS = Verdict(allowed=True)


def refusal(protocol: str, kind: str, violation: Violation, *, reject: bool = True,
            model: ModelInfo | None = None, required: frozenset[str] = frozenset(),
            violations: tuple[Violation, ...] = (), retry_after: int | None = None,
            model_id: str | None = None) -> Verdict:
    """A verdict refusing (or, in report mode, only reporting) ``violation``.

    With several ``violations``, the envelope carries the token, status and path of
    ``violation`` (the first refused one) and a message naming every refused one.
    """
    allowed = not reject
    listed = violations or (violation,)
    refused = [v for v in listed if v.refused] or [violation]
    message = violation.message if len(refused) == 1 else compose(refused)
    status, body, headers = (200, b"", []) if allowed else envelope(
        protocol, violation.reason, message, path=violation.path,
        model=violation.model or model_id, capability=violation.capability,
        retry_after=retry_after,
    )
    return Verdict(
        allowed=allowed, status=status, body=body, headers=headers, guarded=True,
        protocol=protocol, route=kind, model_id=model_id or violation.model, model=model,
        required=required, violations=listed,
    )
