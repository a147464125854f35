"""``multipart/form-data`` routes (``/v1/images/edits``, ``/variations``, ``/v1/videos``): D11.

The buffered body is read with python-multipart's low-level parser (no spooling, no copies of
file parts): text parts the verdict reads are kept (each capped), file parts only counted.
Everything two multipart parsers could read differently is refused, because then the guard
and the upstream would not see the same model: a body that does not end at its closing
boundary, a repeated ``model``, repeated or RFC 2231 ``Content-Disposition`` parameters, a
``model`` sent as a file, a transfer encoding, a non-UTF-8 ``model``, look-alike field names.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from python_multipart.multipart import MultipartParser, MultipartState

from ..body import BodyError
from ..errors import Reason
from ._base import IMAGE_GEN, STREAMING, VISION, Features, ModelRef, _fold, malformed

__all__ = ["read"]

#: Text fields whose values the verdict reads, and their size cap each.
READ_FIELDS = ("model", "stream", "svg[model]")
FIELD_CAP = 64 * 1024
#: Field names the verdict relies on: a field equal to one of them only under case folding
#: (``Model``, ``ſtream``) is refused.
KNOWN_FIELDS = frozenset({*READ_FIELDS, "prompt", "image", "image[]", "mask", "markup",
                          "input_reference", "svg[reasoning][effort]"})
_FOLDED = frozenset(_fold(name) for name in KNOWN_FIELDS)
#: Content-Transfer-Encoding values that leave the bytes as they are.
IDENTITY_ENCODINGS = frozenset({"7bit", "8bit", "binary"})
_TEXT_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii"})
_MAX_PARTS = 1000
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PARAM = re.compile(rf'\s*;\s*({_TOKEN})\s*=\s*(?:({_TOKEN})|"([^"\\]*)")?\s*')
_TYPE = re.compile(rf"\s*({_TOKEN}/{_TOKEN}|{_TOKEN})\s*")


def _media_error(message: str) -> BodyError:
    return BodyError(Reason.MEDIA_TYPE, message)


def parse_header(value: str, where: str | None) -> tuple[str, dict[str, str]]:
    """``type; a=b; c="d"``, strictly: no repeated parameter, no RFC 2231 ``x*=``, no
    backslash escapes (parsers disagree on them)."""
    match = _TYPE.match(value)
    if match is None:
        raise malformed(where, f"cannot read the header value {value[:64]!r}.")
    kind = match.group(1).lower()
    params: dict[str, str] = {}
    pos = match.end()
    while pos < len(value):
        param = _PARAM.match(value, pos)
        if param is None:
            raise malformed(where, f"cannot read the parameters of {value[:64]!r} (quote "
                            "values plainly, without backslash escapes).")
        name = param.group(1).lower()
        if name.endswith("*"):
            raise malformed(where, f"the RFC 2231 parameter {name!r} is not accepted; send "
                            "a plain quoted value.")
        if name in params:
            raise malformed(where, f"the parameter {name!r} is given twice.")
        params[name] = param.group(2) or param.group(3) or ""
        pos = param.end()
    return kind, params


def boundary_of(content_types: Sequence[str]) -> bytes:
    """The boundary of a ``multipart/form-data`` body; any other media type → 415."""
    values = {value.strip() for value in content_types}
    if not values:
        raise _media_error("This route takes a multipart/form-data body; the request has no "
                           "Content-Type.")
    if len(values) > 1:
        raise malformed(None, "the request carries several different Content-Type headers.")
    value = values.pop()
    try:
        kind, params = parse_header(value, "Content-Type")
    except BodyError as error:
        raise BodyError(Reason.INVALID, error.message) from None
    if kind != "multipart/form-data":
        raise _media_error(f"This route takes a multipart/form-data body, not {kind[:64]!r}.")
    boundary = params.get("boundary")
    if not boundary or len(boundary) > 70 or not boundary.isascii():
        raise _media_error("The multipart/form-data Content-Type needs a boundary parameter "
                           "(1 to 70 ASCII characters).")
    return boundary.encode("ascii")


class _Part:
    __slots__ = ("headers", "name", "file", "data", "size")

    def __init__(self) -> None:
        self.headers: list[tuple[str, str]] = []
        self.name: str | None = None
        self.file = False
        self.data: list[bytes] | None = None
        self.size = 0


class _Collector:
    """python-multipart callbacks: part headers, read fields' values, file part counts."""

    def __init__(self) -> None:
        self.parts: list[_Part] = []
        self.part: _Part | None = None
        self.field = bytearray()
        self.value = bytearray()
        self.error: BodyError | None = None

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self.begin,
            "on_header_field": lambda data, start, end: self.field.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self.value.extend(data[start:end]),
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_done,
            "on_part_data": self.data,
        }

    def begin(self) -> None:
        if len(self.parts) >= _MAX_PARTS:
            raise malformed(None, f"more than {_MAX_PARTS} multipart parts.")
        self.part = _Part()
        self.parts.append(self.part)

    def header_end(self) -> None:
        assert self.part is not None
        try:
            name = self.field.decode("ascii").strip().lower()
            value = self.value.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise malformed(None, "a multipart part header is not ASCII / UTF-8.") from None
        self.part.headers.append((name, value))
        self.field.clear()
        self.value.clear()

    def headers_done(self) -> None:
        part = self.part
        assert part is not None
        part.name, part.file = _disposition(part.headers)
        if part.name in READ_FIELDS:
            part.data = []

    def data(self, data: bytes, start: int, end: int) -> None:
        part = self.part
        assert part is not None
        part.size += end - start
        if part.data is not None:
            if part.size > FIELD_CAP:
                raise malformed(part.name, f"the {part.name!r} field is longer than "
                                f"{FIELD_CAP} bytes.")
            part.data.append(data[start:end])


def _disposition(headers: list[tuple[str, str]]) -> tuple[str, bool]:
    """(field name, is a file part) from a part's headers, refusing every ambiguity."""
    seen: dict[str, str] = {}
    for name, value in headers:
        if name in seen:
            raise malformed(None, f"a multipart part repeats its {name} header.")
        seen[name] = value
    encoding = seen.get("content-transfer-encoding")
    if encoding is not None and encoding.strip().lower() not in IDENTITY_ENCODINGS:
        raise malformed(None, f"Content-Transfer-Encoding {encoding[:32]!r} is not accepted "
                        "in multipart parts; send the bytes as they are.")
    disposition = seen.get("content-disposition")
    if disposition is None:
        raise malformed(None, "a multipart part has no Content-Disposition.")
    kind, params = parse_header(disposition, None)
    name = params.get("name")
    if kind != "form-data" or name is None:
        raise malformed(None, "every multipart part needs Content-Disposition: form-data "
                        "with a name.")
    if name not in KNOWN_FIELDS and _fold(name) in _FOLDED:
        raise malformed(name, f"field name {name[:64]!r} is a look-alike of a field name "
                        "(case or Unicode variant); spell field names exactly.")
    is_file = "filename" in params
    if name in READ_FIELDS:
        if is_file:
            raise malformed(name, f"the {name!r} field must be a text part, not a file.")
        declared = seen.get("content-type")
        if declared is not None:
            media, options = parse_header(declared, name)
            charset = options.get("charset", "utf-8").lower()
            if media != "text/plain" or charset not in _TEXT_CHARSETS:
                raise malformed(name, f"the {name!r} field must be plain UTF-8 text.")
    return name, is_file


def _parse(body: bytes, boundary: bytes) -> list[_Part]:
    opening = b"--" + boundary
    closing = b"\r\n--" + boundary + b"--"
    if not body.startswith(opening) or body.count(closing) != 1 or not (
            body.endswith(closing) or body.endswith(closing + b"\r\n")):
        raise malformed(None, "the multipart body must start at its first boundary and end "
                        "at its closing boundary, with nothing before or after.")
    collector = _Collector()
    parser = MultipartParser(boundary, collector.callbacks())
    try:
        parser.write(body)
        parser.finalize()
    except BodyError:
        raise
    except Exception as error:  # the parser's own errors: malformed multipart
        raise malformed(None, f"the multipart body cannot be parsed ({type(error).__name__})."
                        ) from None
    if parser.state != MultipartState.END:  # finalize() does not check a truncated body
        raise malformed(None, "the multipart body ends before its closing boundary.")
    return collector.parts


def _text(part: _Part) -> str:
    raw = b"".join(part.data or ())
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise malformed(part.name, f"the {part.name!r} field is not UTF-8 text.") from None


def read(body: bytes, content_types: Sequence[str], tag: str) -> Features:
    """What a multipart generation request needs: the model (with ``tag``), input images."""
    parts = _parse(body, boundary_of(content_types))
    values: dict[str, str] = {}
    f = Features()
    for part in parts:
        name = part.name or ""
        if name in READ_FIELDS:
            if name in values:
                raise malformed(name, f"the {name!r} field is given twice.")
            values[name] = _text(part)
        elif part.file:
            f.need(VISION, name, f"an uploaded file ({name[:64]})")
    model = values.get("model")
    if not model:
        raise malformed("model", "a non-empty model field is required.")
    f.models.append(ModelRef("model", model))
    if tag:
        f.need(tag, "model", "image generation" if tag == IMAGE_GEN else "video generation")
    stream = values.get("stream")
    if stream is not None:
        if stream not in ("true", "false"):
            raise malformed("stream", "stream must be true or false.")
        if stream == "true":
            f.need(STREAMING, "stream", "streaming partial images", output=True)
    svg = values.get("svg[model]")
    if svg is not None:
        f.models.append(ModelRef("svg[model]", svg, only=()))
    # vision first would name a file before the route's own tag: keep the model's need first
    f.needs.sort(key=lambda need: need.path != "model")
    return f
