"""The request head, read as strictly as the body (decisions.md §6, §8, §11).

Pure functions over ``(lower-case name, value)`` pairs: the media type a JSON route accepts,
the one ``Content-Length`` a request may declare, and the one credential it may carry. Each
refusal is a :class:`HeadError` with the reason that picks the status and envelope; nothing
client-supplied reaches ``int()`` unchecked, and no message repeats a credential.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl

from .errors import Reason

__all__ = ["HeadError", "credential_of", "declared_length", "header_values",
           "media_type_problem"]

#: ``charset`` values that mean UTF-8 (compared case-insensitively, quotes removed).
UTF8_CHARSETS = frozenset({"utf-8", "utf8"})
#: Media types a JSON route never reads as JSON (a form reader would see other fields).
FORM_TYPES = frozenset({"application/x-www-form-urlencoded"})
#: Digits of a Content-Length beyond which the value only counts as "huge".
_LENGTH_DIGITS = 18
_DIGITS = re.compile(r"[0-9]+")
#: A credential must survive being sent as a header value unchanged (§11).
MAX_CREDENTIAL = 4096
_SENDABLE = re.compile(r"[\x20-\x7e]+")
#: Credential slots in the order §6 reads them: (where, header name or None for ``?key=``).
SLOTS = (("x-api-key", "x-api-key"), ("Authorization", "authorization"),
         ("x-goog-api-key", "x-goog-api-key"), ("the key query parameter", None))


class HeadError(Exception):
    """A request head that cannot be guarded; ``reason`` picks the status and envelope."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def header_values(headers: Iterable[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in headers if key == name]


# -- media type --------------------------------------------------------------------------------


def media_type_problem(values: Iterable[str], *, reads_multipart: bool = False) -> str | None:
    """Why these Content-Type values cannot be read as a JSON body, or None.

    ``multipart/*`` and form-urlencoded bodies are read as fields by other parsers, and a
    ``charset`` other than UTF-8 makes a charset-honouring reader see other characters than
    the guard. A route that reads multipart itself passes ``reads_multipart=True``.
    """
    for value in values:
        problem = (_remembered_problem(value, reads_multipart)
                   if type(value) is str and len(value) <= _REMEMBERED_VALUE_CHARS
                   else _value_problem(value, reads_multipart))
        if problem is not None:
            return problem
    return None


def _value_problem(value: str, reads_multipart: bool) -> str | None:
    """:func:`media_type_problem` of one Content-Type value."""
    for item in value.split(","):
        main, _, params = item.partition(";")
        main = main.strip(" \t").lower()
        if main.startswith("multipart/") and not reads_multipart:
            return (f"{_shown(main)} bodies are not supported here; send the request "
                    "as JSON.")
        if main in FORM_TYPES:
            return "form-encoded bodies are not supported here; send the request as JSON."
        for charset in _charsets(params):  # every one: readers differ on which counts
            if charset not in UTF8_CHARSETS:
                return (f"charset {_shown(charset)!r} is not supported here; send the "
                        "JSON body as UTF-8 (charset=utf-8, or no charset).")
    return None


#: A pure function of a short value, and most requests send one of a few: each is read once
#: (bounded by count and by length, so client-chosen values cannot grow it).
_REMEMBERED_VALUE_CHARS = 256
_remembered_problem = functools.lru_cache(maxsize=256)(_value_problem)


def _charsets(params: str) -> list[str]:
    found = []
    for param in params.split(";"):
        name, eq, value = param.partition("=")
        if eq and name.strip(" \t").lower() == "charset":
            found.append(value.strip(" \t").strip('"').strip(" \t").lower())
    return found


# -- Content-Length ----------------------------------------------------------------------------


def declared_length(values: Iterable[str]) -> int | None:
    """The one length the head declares (None: none declared); bounded, ASCII digits only.

    Leading zeros are allowed and identical copies are fine (RFC 9110 §8.6); any other
    value, or two different ones, raises :class:`HeadError`. A value too long to be a real
    length is returned as a number larger than any limit.
    """
    if type(values) is list and len(values) == 1:  # the common case: one plain number
        value = values[0]
        if (type(value) is str and len(value) <= _LENGTH_DIGITS and value.isdigit()
                and value.isascii()):
            return int(value)
    found: str | None = None
    for value in values:
        for item in value.split(","):
            text = item.strip(" \t")
            if not _DIGITS.fullmatch(text):
                raise HeadError(Reason.INVALID, (
                    "Content-Length must be a decimal number of bytes; fix the request's "
                    "framing."))
            text = text.lstrip("0") or "0"
            if found is not None and text != found:
                raise HeadError(Reason.INVALID, (
                    "The request declares several different Content-Length values; send one."))
            found = text
    if found is None:
        return None
    if len(found) > _LENGTH_DIGITS:
        return 10 ** _LENGTH_DIGITS
    return int(found)


# -- credentials -------------------------------------------------------------------------------


def credential_of(headers: list[tuple[str, str]], query: str) -> str | None:
    """The caller's key: x-api-key, then Bearer, then x-goog-api-key, then ``?key=``.

    A slot holding two different values, or a key that cannot be sent on as a header value,
    raises :class:`HeadError` (401): the guard would judge one key and the upstream act on
    another, or the catalog fetch would fail on the key itself. None when there is no key.
    """
    chosen: str | None = None
    for where, name in SLOTS:
        values = (header_values(headers, name) if name is not None
                  else [value for key, value in parse_qsl(query, keep_blank_values=True)
                        if key == "key"])
        if not values:
            continue
        distinct = {value.strip(" \t") for value in values}
        if len(distinct) > 1:
            raise HeadError(Reason.UNAUTHENTICATED, (
                f"The request carries {where} more than once with different values; "
                "send one API key."))
        value = distinct.pop()
        if name == "authorization":
            scheme, _, token = value.partition(" ")
            value = token.strip(" \t") if scheme.lower() == "bearer" else ""
        if not value:
            continue
        _sendable(value, where)
        if chosen is None:
            chosen = value
    return chosen


def _sendable(key: str, where: str) -> None:
    if len(key) > MAX_CREDENTIAL or not _SENDABLE.fullmatch(key):
        raise HeadError(Reason.UNAUTHENTICATED, (
            f"The API key in {where} cannot be used: it must be printable ASCII of at most "
            f"{MAX_CREDENTIAL} characters."))


def _shown(text: str, limit: int = 64) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
