"""What the protocol readers share: the features they report and the strict key checks."""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from ..body import BodyError
from ..errors import Reason
from ._extensions import EXTENSIONS

__all__ = [
    "Features", "Keys", "ModelRef", "Need", "malformed", "media_tag", "need_bool", "need_dict",
    "need_list", "token_count",
]

# capability tags
VISION, AUDIO, VIDEO = "vision", "audio", "video"
TOOL_USE, STREAMING, CACHE_CONTROL = "tool_use", "streaming", "cache_control"
THINKING, JSON_SCHEMA, LOGPROBS = "thinking", "json_schema", "logprobs"
IMAGE_GEN, VIDEO_GEN = "image_gen", "video_gen"
#: The tag of a need that asks only for a vendor (opaque, vendor-held context).
VENDOR_ONLY = ""


@dataclass(slots=True)
class Need:
    """One capability the request needs, and where in the body it asks for it."""

    tag: str
    path: str
    what: str
    #: ``owned_by`` the model must have (server-run tools run on their vendor's servers).
    vendor: str | None = None
    #: Output-side needs are skipped on token-counting routes.
    output: bool = False
    #: Anthropic body-level ``thinking``: replaced by a fallback's own ``thinking``.
    body_thinking: bool = False
    #: The tool type whose runner ``vendor`` is (``tool_vendors`` may name other owners).
    tool: str | None = None
    #: Other tags any one of which satisfies this need instead of ``tag`` (an any-of need).
    any_of: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The tag, or ``a|b`` for an any-of need."""
        return "|".join((self.tag, *self.any_of))


@dataclass(slots=True)
class ModelRef:
    """A model the request would run on, with the output cap that applies to it."""

    path: str
    slug: str
    #: (field path, requested output tokens) pairs to compare with ``max_output_tokens``.
    caps: list[tuple[str, int]] = field(default_factory=list)
    #: A fallback's own thinking needs, replacing the body's (None: the body's apply).
    thinking: list[Need] | None = None
    #: A secondary model (an image tool's model, ``svg.model``): it must exist and have only
    #: these tags; the body's needs and caps are not its own.
    only: tuple[str, ...] | None = None


@dataclass(slots=True, init=False)
class Features:
    """Everything the verdict needs from a body, and nothing else."""

    models: list[ModelRef]
    needs: list[Need]
    #: (path, type) of content the guard does not know.
    unknown: list[tuple[str, str]]
    #: (path, what) of stored conversation state, when the reader was told to refuse it.
    stored: list[tuple[str, str]]
    recorded: set[tuple[Any, ...]] = field(repr=False)

    def __init__(self) -> None:
        # Written out, and without arguments: every request builds one.
        self.models = []
        self.needs = []
        self.unknown = []
        self.stored = []
        self.recorded = set()

    def need(self, tag: str, path: str, what: str, vendor: str | None = None,
             output: bool = False, tool: str | None = None,
             any_of: tuple[str, ...] = ()) -> None:
        """Record a need; only the first of a kind is kept (it names the first path)."""
        key = (tag, vendor, output) if tool is None and not any_of else \
            (tag, vendor, output, tool, any_of)
        if key not in self.recorded:
            self.recorded.add(key)
            # positional: a keyword call costs about as much again as building the Need
            self.needs.append(Need(tag, path, what, vendor, output, False, tool, any_of))



def malformed(path: str | None, message: str) -> BodyError:
    where = f" at {path}" if path else ""
    return BodyError(Reason.INVALID, f"Invalid request body{where}: {message}", path)


@functools.lru_cache(maxsize=4096)
def _fold(key: str) -> str:
    """The form under which lenient decoders may match a field name."""
    if key.isascii():
        return key.lower()
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", key).casefold())


_SEEN_LIMIT = 2048
_ABSENT = object()


class Keys:
    """The field names of one kind of object the verdict reads.

    ``check`` refuses keys that are not these names but equal one under Unicode casefold and
    NFKC (``"MODEL"``, ``"ſtream"``): some decoders fold field names, and then the guard and
    the upstream would read different values. Gemini objects also refuse a field spelled both
    in camelCase and snake_case.
    """

    __slots__ = ("names", "_folded", "_snake", "_to_snake", "_seen", "accepts", "camel_only")

    def __init__(self, *names: str, gemini: bool = False) -> None:
        all_names = set(names)
        self._snake: dict[str, str] = {}
        self._to_snake: dict[str, str] = {}
        if gemini:
            for name in names:
                snake = _snake_case(name)
                if snake != name:
                    self._snake[snake] = name
                    self._to_snake[name] = snake
                    all_names.add(snake)
        self.names = frozenset(all_names)
        self._folded = frozenset(_fold(n) for n in all_names)
        #: Names already checked and found harmless, so common extra keys cost one set test.
        self._seen = set(all_names)
        #: ``accepts(obj)``: the fast test that every key is known or already found harmless.
        self.accepts = self._seen.issuperset
        #: ``camel_only(obj)``, Gemini: whether ``obj`` spells none of these fields in
        #: snake_case (then ``obj.get(name)`` is :meth:`get`'s value, under ``name``). A set
        #: method, so the test costs no Python call.
        self.camel_only = frozenset(self._snake).isdisjoint

    def check(self, obj: dict[str, Any], path: str) -> None:
        if not self.accepts(obj):
            for key in obj:  # document order: the same key is named whatever came before
                if key in self._seen:
                    continue
                if _fold(key) in self._folded:
                    raise malformed(
                        path or None,
                        f"key {shown(key)!r} is a look-alike of a field name (case or "
                        "Unicode variant); spell field names exactly.",
                    )
                if len(self._seen) < _SEEN_LIMIT:
                    self._seen.add(key)
        if not self.camel_only(obj):
            for key in obj:
                camel = self._snake.get(key)
                if camel is not None and camel in obj:
                    raise malformed(
                        path or None,
                        f"field {camel!r} is given twice, as {camel!r} and {key!r}; send one.",
                    )

    def settled(self, obj: dict[str, Any]) -> bool:
        """Whether :meth:`check` would let ``obj`` through without a word (so a fast path
        may skip it): every key known or already found harmless, no field spelled twice."""
        return self.accepts(obj) and self.camel_only(obj)

    def camel(self, key: str) -> str:
        """Gemini: the camelCase name of a snake_case key (other keys as they are)."""
        return self._snake.get(key, key)

    def snake(self, name: str) -> str:
        """Gemini: the snake_case name of a camelCase field (other names as they are)."""
        return self._to_snake.get(name, name)

    def get(self, obj: dict[str, Any], name: str) -> tuple[str, Any]:
        """Gemini: the value under either spelling of ``name``, with the spelling used."""
        value = obj.get(name, _ABSENT)
        if value is not _ABSENT:
            return name, value
        snake = self._to_snake.get(name, name)
        return snake, obj.get(snake)


def _snake_case(name: str) -> str:
    out = []
    for ch in name:
        if ch.isupper():
            out.append("_")
            out.append(ch.lower())
        else:
            out.append(ch)
    return "".join(out)


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def need_dict(value: Any, path: str, what: str = "an object") -> dict[str, Any]:
    if type(value) is not dict:
        raise malformed(path, f"expected {what}, got {_kind(value)}.")
    return value


def need_list(value: Any, path: str) -> list[Any]:
    if type(value) is not list:
        raise malformed(path, f"expected an array, got {_kind(value)}.")
    return value


def need_bool(value: Any, path: str) -> bool:
    """``True``/``False``/``None`` only: ``"true"`` or ``1`` are refused, never guessed."""
    if value is None or value is False:
        return False
    if value is True:
        return True
    raise malformed(path, f"expected true or false, got {_kind(value)}.")


def need_str(value: Any, path: str) -> str:
    if type(value) is not str:
        raise malformed(path, f"expected a string, got {_kind(value)}.")
    return value


def token_count(value: Any, path: str, *, strings: bool = False) -> int | None:
    """An output cap as an int; Gemini (proto3 JSON) may send it as a decimal string."""
    if value is None:
        return None
    kind = type(value)
    if kind is int:
        return value
    if kind is float and value.is_integer():
        return int(value)
    if strings and kind is str and _INT64.fullmatch(value.strip()):
        return int(value)
    raise malformed(path, f"expected an integer, got {_kind(value)}.")


#: A proto3 JSON int64 as a string: ASCII digits, one optional minus, at most 19 digits (§11:
#: nothing client-supplied reaches ``int()`` unchecked).
_INT64 = re.compile(r"-?[0-9]{1,19}")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if type(value) is bool:
        return "a boolean"
    return {dict: "an object", list: "an array", str: "a string", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)


#: MIME types (before ``;``) that are plain text and need no capability.
_TEXT_APPLICATIONS = frozenset({
    "application/json", "application/x-javascript", "application/javascript",
    "application/x-python", "application/x-python-code", "application/xml",
    "application/x-yaml", "application/yaml", "application/x-sh", "application/sql",
    "application/x-typescript", "application/rtf", "application/csv", "application/ld+json",
})


def media_tag(mime: Any) -> str | None:
    """The tag media of a MIME type needs; unknown kinds need ``vision`` (conservative)."""
    if type(mime) is not str:
        return VISION
    main = _media_main(mime)
    if main.startswith("image/"):
        return VISION
    if main.startswith("audio/"):
        return AUDIO
    if main.startswith("video/"):
        return VIDEO
    if main.startswith("text/") or main in _TEXT_APPLICATIONS:
        return None
    return VISION  # application/pdf by policy, anything unreadable by caution


def _media_main(mime: str) -> str:
    """``type/subtype`` of a media type, lower case; ``\\/`` reads as ``/`` (§11)."""
    return mime.split(";", 1)[0].strip(_IGNORED).lower().replace("\\/", "/")


#: Characters ignored around a URL or media type: ASCII whitespace and C0 controls (§11).
_IGNORED = "".join(chr(c) for c in range(0x21))


def data_url_mime(url: Any) -> str | None:
    """The MIME type of a ``data:`` URL, or None for any other URL.

    Leading and trailing whitespace and C0 controls are ignored before the ``data:`` test, as
    URL parsers do. An empty media type stays empty (read as unknown, so ``vision``): the
    reader behind may sniff the bytes rather than assume RFC 2397's ``text/plain``."""
    if not isinstance(url, str):
        return None
    url = url.strip(_IGNORED)
    if url[:5].lower() != "data:":
        return None
    head = url[5:].split(",", 1)[0]
    return head.split(";", 1)[0].strip(_IGNORED)


def media_tags(*mimes: Any) -> set[str | None]:
    """The tags of several media types naming one piece of media (each may need its own)."""
    return {media_tag(mime) for mime in mimes}


def uri_tags(uri: Any) -> set[str | None]:
    """The tags media named only by a URI needs: a ``data:`` URL's type, else the extension of
    its path (every kind the extension may name); anything unknown needs ``vision``."""
    if type(uri) is not str:
        return {VISION}
    mime = data_url_mime(uri)
    if mime is not None:
        return {media_tag(mime)}
    path = uri.strip(_IGNORED).split("?", 1)[0].split("#", 1)[0]
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    if "." not in name:
        return {VISION}
    mimes = EXTENSIONS.get(name.rsplit(".", 1)[-1].lower())
    return {VISION} if mimes is None else media_tags(*mimes)


def url_shaped(value: Any) -> bool:
    """Whether a file reference is a URL (``https://…``, ``gs://…``, ``data:…``), not an id."""
    if type(value) is not str:
        return False
    text = value.strip(_IGNORED)
    return "://" in text or text[:5].lower() == "data:"


def shown(text: Any, limit: int = 64) -> str:
    """Client text echoed in a message, cut to ``limit`` characters (§11)."""
    text = text if type(text) is str else str(text)
    return text if len(text) <= limit else text[:limit] + "..."
