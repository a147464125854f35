"""Error envelopes: each rejection in the shape the caller's own SDK understands.

The table below is decisions.md §5 as data: one row per reason, one column per protocol.
"""

from __future__ import annotations

import json
from typing import NamedTuple

__all__ = ["ANTHROPIC", "GEMINI", "OPENAI", "Reason", "envelope"]

ANTHROPIC = "anthropic"
OPENAI = "openai"
GEMINI = "gemini"


class _Row(NamedTuple):
    status: int
    anthropic_type: str
    openai_type: str
    openai_code: str
    gemini_status: str
    gemini_reason: str
    has_param: bool  # whether OpenAI's ``param`` / Gemini's ``metadata.path`` carry the path
    #: Gemini names the model in the URL: an unknown model has no body path to point at.
    gemini_path: bool = True


class Reason:
    """The machine-readable reasons a request can be refused for."""

    UNSUPPORTED_MODEL = "unsupported_model"
    UNSUPPORTED_CAPABILITY = "unsupported_capability"
    UNSUPPORTED_CONTENT = "unsupported_content"
    MAX_TOKENS_EXCEEDED = "max_tokens_exceeded"
    INVALID = "invalid_request"
    TOO_LARGE = "request_too_large"
    MEDIA_TYPE = "unsupported_media_type"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "permission_denied"
    UNAVAILABLE = "catalog_unavailable"


_ROWS: dict[str, _Row] = {
    Reason.UNSUPPORTED_MODEL: _Row(
        400, "unsupported_model", "invalid_request_error", "unsupported_model",
        "INVALID_ARGUMENT", "UNSUPPORTED_MODEL", True, gemini_path=False),
    Reason.UNSUPPORTED_CAPABILITY: _Row(
        400, "unsupported_capability", "invalid_request_error", "unsupported_capability",
        "INVALID_ARGUMENT", "UNSUPPORTED_CAPABILITY", True),
    Reason.UNSUPPORTED_CONTENT: _Row(
        400, "unsupported_content", "invalid_request_error", "unsupported_content",
        "INVALID_ARGUMENT", "UNSUPPORTED_CONTENT", True),
    Reason.MAX_TOKENS_EXCEEDED: _Row(
        400, "invalid_request_error", "invalid_request_error", "max_tokens_exceeded",
        "INVALID_ARGUMENT", "MAX_TOKENS_EXCEEDED", True),
    Reason.INVALID: _Row(
        400, "invalid_request_error", "invalid_request_error", "invalid_param",
        "INVALID_ARGUMENT", "INVALID_REQUEST", True),
    Reason.TOO_LARGE: _Row(
        413, "request_too_large", "invalid_request_error", "request_too_large",
        "INVALID_ARGUMENT", "REQUEST_TOO_LARGE", False),
    Reason.MEDIA_TYPE: _Row(
        415, "invalid_request_error", "invalid_request_error", "unsupported_media_type",
        "INVALID_ARGUMENT", "UNSUPPORTED_MEDIA_TYPE", False),
    Reason.UNAUTHENTICATED: _Row(
        401, "authentication_error", "invalid_request_error", "invalid_api_key",
        "UNAUTHENTICATED", "API_KEY_INVALID", False),
    Reason.FORBIDDEN: _Row(
        403, "permission_error", "invalid_request_error", "permission_denied",
        "PERMISSION_DENIED", "PERMISSION_DENIED", False),
    Reason.UNAVAILABLE: _Row(
        503, "api_error", "api_error", "catalog_unavailable",
        "UNAVAILABLE", "CATALOG_UNAVAILABLE", False),
}

_JSON = ("content-type", "application/json")


def status_of(reason: str) -> int:
    return _ROWS[reason].status


def token_of(reason: str, protocol: str) -> str:
    """The fixed token a client matches on: Anthropic type, OpenAI code, Gemini reason."""
    row = _ROWS[reason]
    if protocol == ANTHROPIC:
        return row.anthropic_type
    if protocol == GEMINI:
        return row.gemini_reason
    return row.openai_code


def envelope(
    protocol: str,
    reason: str,
    message: str,
    *,
    path: str | None = None,
    model: str | None = None,
    capability: str | None = None,
    retry_after: int | None = None,
) -> tuple[int, bytes, list[tuple[str, str]]]:
    """Status, body bytes and headers for one rejection."""
    row = _ROWS[reason]
    if protocol == ANTHROPIC:
        doc: dict = {"type": "error", "error": {"type": row.anthropic_type, "message": message}}
    elif protocol == GEMINI:
        metadata = {}
        if model is not None:
            metadata["model"] = model
        if capability is not None:
            metadata["capability"] = capability
        if path is not None and row.has_param and row.gemini_path:
            metadata["path"] = path
        doc = {"error": {
            "code": row.status,
            "message": message,
            "status": row.gemini_status,
            "details": [{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": row.gemini_reason,
                "domain": "modelguard",
                "metadata": metadata,
            }],
        }}
    else:
        doc = {"error": {
            "message": message,
            "type": row.openai_type,
            "param": path if row.has_param else None,
            "code": row.openai_code,
        }}
    headers = [_JSON]
    if retry_after is not None:
        headers.append(("retry-after", str(retry_after)))
    return row.status, json.dumps(doc).encode(), headers
