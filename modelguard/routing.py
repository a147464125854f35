r"""Which requests are guarded, matched on a canonical path (decisions.md §1, §11).

A request that only a sloppy matcher would miss must not slip past the guard, so the path is
canonicalized generously (absolute-form, fragment, root_path, one percent-decode, repeated
slashes, dot segments, a trailing slash, ASCII case) and every plausible reading is matched:
also the path under Unicode case folding + NFKC, without one trailing format suffix
(``/v1/messages.json``), and with a leading ``//host`` or ``/\host`` read as a network-path
reference. Readings that land on different routes or models make the request ambiguous.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import unquote

from .errors import ANTHROPIC, GEMINI, OPENAI

__all__ = ["FAMILIES", "ROUTES", "Route", "RouteRow", "canonical_path", "match_route"]

# readers (``Route.kind``)
MESSAGES = "messages"
COUNT_TOKENS = "count_tokens"
CHAT = "chat"
IMAGES = "images"
VIDEOS = "videos"
GENERATE = "generateContent"
STREAM = "streamGenerateContent"
COUNT = "countTokens"
RESPONSES = "responses"
MULTIPART = "multipart"
TASKS = "tasks"
EMBEDDINGS = "embeddings"


@dataclass(frozen=True, slots=True)
class RouteRow:
    """One guarded route: where it is, who reads it and how it answers."""

    #: Canonical path (compared ASCII case-insensitively); ``{model}`` takes the rest of a
    #: Gemini path, ``{version}`` is v1, v1beta or v1alpha.
    pattern: str
    #: The reader (``policy.READERS``); Gemini rows name their method.
    kind: str
    #: The error envelope (``errors.ANTHROPIC`` / ``OPENAI`` / ``GEMINI``).
    protocol: str
    #: The family users switch on and off.
    family: str
    #: Token-counting style: input-side checks only (no stream, no output cap).
    counting: bool = False
    #: The body is ``multipart/form-data`` (read by ``protocols.multipart``), not JSON.
    multipart: bool = False
    #: The tag the route itself needs (generation routes), or None.
    tag: str | None = None
    #: Also matched without its ``/v1`` prefix (``/responses``), as LiteLLM serves both.
    alias: bool = False


#: Every guarded route (routes.md D0). Adding a route is adding a row.
ROUTES: tuple[RouteRow, ...] = (
    RouteRow("/v1/messages", MESSAGES, ANTHROPIC, "messages"),
    RouteRow("/v1/messages/count_tokens", COUNT_TOKENS, ANTHROPIC, "messages", counting=True),
    RouteRow("/v1/chat/completions", CHAT, OPENAI, "chat", alias=True),
    RouteRow("/v1beta/openai/chat/completions", CHAT, OPENAI, "chat"),
    RouteRow("/{version}/{model}:generateContent", GENERATE, GEMINI, "gemini"),
    RouteRow("/{version}/{model}:streamGenerateContent", STREAM, GEMINI, "gemini"),
    RouteRow("/{version}/{model}:countTokens", COUNT, GEMINI, "gemini", counting=True),
    RouteRow("/v1/responses", RESPONSES, OPENAI, "responses", alias=True),
    RouteRow("/v1/responses/input_tokens", RESPONSES, OPENAI, "responses", counting=True,
             alias=True),
    RouteRow("/v1/responses/compact", RESPONSES, OPENAI, "responses", counting=True,
             alias=True),
    RouteRow("/v1/images/generations", IMAGES, OPENAI, "images", tag="image_gen", alias=True),
    RouteRow("/v1/images/edits", MULTIPART, OPENAI, "images", multipart=True,
             tag="image_gen", alias=True),
    RouteRow("/v1/images/variations", MULTIPART, OPENAI, "images", multipart=True,
             tag="image_gen", alias=True),
    RouteRow("/v1/videos/generations", VIDEOS, OPENAI, "videos", tag="video_gen", alias=True),
    RouteRow("/v1/videos", MULTIPART, OPENAI, "videos", multipart=True, tag="video_gen",
             alias=True),
    RouteRow("/v1/tasks/submit", TASKS, OPENAI, "tasks", alias=True),
    RouteRow("/v1/embeddings", EMBEDDINGS, OPENAI, "embeddings", alias=True),
)
#: Families and whether they are guarded by default (embeddings: routes.md D13).
FAMILIES: dict[str, bool] = {row.family: row.family != "embeddings" for row in ROUTES}


def families(enabled: Mapping[str, bool] | None = None, *,
             embeddings: bool = False) -> frozenset[str]:
    """The guarded families: the defaults, ``embeddings`` and the user's switches."""
    state = dict(FAMILIES, embeddings=embeddings)
    for name, on in (enabled or {}).items():
        if name not in FAMILIES:
            raise ValueError(f"unknown route family {name!r}; known: {', '.join(FAMILIES)}")
        state[name] = bool(on)
    return frozenset(name for name, on in state.items() if on)


DEFAULT_FAMILIES = families()


def _compile(rows: tuple[RouteRow, ...]) -> tuple[dict[str, RouteRow],
                                                     list[tuple[re.Pattern[str], RouteRow]]]:
    fixed: dict[str, RouteRow] = {}
    templated = []
    for row in rows:
        pattern = row.pattern.lower()
        if "{" not in pattern:
            fixed[pattern] = row
            if row.alias:
                fixed[pattern.removeprefix("/v1")] = row
            continue
        regex = re.escape(pattern).replace(r"\{version\}", "(?:v1|v1beta|v1alpha)")
        regex = regex.replace(r"\{model\}", "(?P<model>.+)")
        templated.append((re.compile(regex, re.DOTALL), row))
    return fixed, templated


_FIXED, _TEMPLATED = _compile(ROUTES)
_ABSOLUTE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/]*")
_SLASHES = re.compile(r"/{2,}")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
#: Headers a client may use to ask for another method (read by :func:`is_post`).
METHOD_OVERRIDES = ("x-http-method-override", "x-http-method", "x-method-override")


@dataclass(frozen=True, slots=True)
class Route:
    """A request's guarded route: its row of :data:`ROUTES`, and the model the path names."""

    protocol: str
    kind: str
    #: Gemini: the model segment from the path, with one leading ``models/`` removed.
    model: str | None = None
    #: Set when two readings of the path disagree; such a request is refused as ambiguous.
    ambiguous: bool = False
    #: The row's pattern (``/v1/responses``): names the route in verdicts, logs and metrics.
    name: str = ""
    family: str = ""
    #: Token counting: input-side checks only (no stream, no output cap).
    counting: bool = False
    multipart: bool = False
    tag: str | None = None

    @classmethod
    def of(cls, row: RouteRow, model: str | None = None) -> Route:
        return cls(row.protocol, row.kind, model, False, row.pattern, row.family,
                   row.counting, row.multipart, row.tag)


def canonical_path(path: str, root_path: str = "") -> str:
    """The path as a lenient router would see it (case is kept; routes compare folded)."""
    if not root_path and _is_canonical(path):
        return path
    path = _ABSOLUTE.sub("", path, count=1)
    for mark in ("#", "?"):
        cut = path.find(mark)
        if cut >= 0:
            path = path[:cut]
    if root_path and path.startswith(root_path):
        path = path[len(root_path):]
    path = unquote(path, errors="surrogateescape").replace("\\", "/")
    path = _SLASHES.sub("/", "/" + path)
    segments: list[str] = []
    for segment in path.split("/")[1:]:
        if segment == "..":
            if segments:
                segments.pop()
        elif segment != ".":
            segments.append(segment)
    if path.endswith(("/.", "/..")):
        segments.append("")
    canonical = "/" + "/".join(segments)
    if len(canonical) > 1 and canonical.endswith("/"):
        canonical = canonical[:-1]
    return canonical


def _is_canonical(path: str) -> bool:
    """Already canonical: the common case, recognised without rewriting anything."""
    return (path[:1] == "/" and not path.endswith("/") and "//" not in path
            and "/." not in path and not _SPECIAL.search(path))


_SPECIAL = re.compile(r"[%\\#?]")


def _route_of(canonical: str, enabled: frozenset[str] = DEFAULT_FAMILIES) -> Route | None:
    folded = canonical.translate(_ASCII_LOWER)
    row = _FIXED.get(folded)
    if row is not None:
        return Route.of(row) if row.family in enabled else None
    if ":" not in folded:
        return None
    for regex, row in _TEMPLATED:
        match = regex.fullmatch(folded)
        if match is None:
            continue
        if row.family not in enabled:
            return None
        model = canonical[match.start("model"):match.end("model")]
        if model[:7].lower() == "models/":  # the collection is route, compared like one
            model = model[7:]
        return Route.of(row, model)
    return None


def _route_at_end(canonical: str, enabled: frozenset[str] = DEFAULT_FAMILIES) -> Route | None:
    """The route of the longest segment-aligned suffix of the path that is one."""
    start = 0
    while start >= 0:
        route = _route_of(canonical[start:], enabled)
        if route is not None:
            return route
        start = canonical.find("/", start + 1)
    return None


def is_post(method: str, headers: list[tuple[str, str]]) -> bool:
    """POST, compared case-insensitively, or a method override header asking for it."""
    if method.upper() == "POST":
        return True
    return any(name in METHOD_OVERRIDES and value.strip().upper() == "POST"
               for name, value in headers)


def _readings(paths: tuple[str, ...], root_path: str) -> list[str]:
    """Canonical forms a lenient router might give: with and without ``root_path`` removed
    (an app mounted at ``/v1`` still forwards ``/v1/messages``), with ``;params`` dropped
    from each segment (as Java-style routers do), with a leading ``//authority`` dropped (a
    URL parser reading a network-path reference), under Unicode case folding + NFKC, and
    without one trailing format suffix (``.json``, as REST frameworks strip)."""
    raws: list[str] = []
    for raw in paths:
        raws.append(raw)
        text = raw
        if not raw.isascii():
            text = _as_utf8(raw)
            if text != raw:
                raws.append(text)
        if text[1:2] in _SLASHES_BOTH and text[:1] in _SLASHES_BOTH or "://" in text:
            network = _network_path(text)
            for _ in range(_MAX_AUTHORITIES):  # ``http://a//b/...``: read each authority away
                if network is None:
                    break
                raws.append(network)
                network = _network_path(network)
    found = []
    for raw in raws:
        forms = [canonical_path(raw, root_path)]
        if root_path:
            forms.append(canonical_path(raw))
        if ";" in raw:
            stripped = _MATRIX.sub("", raw.split("?", 1)[0].split("#", 1)[0])
            forms.append(canonical_path(stripped, root_path))
        if "%" in raw or not raw.isascii():
            folded = _unicode_fold(raw)
            if folded is not None:
                forms.append(canonical_path(folded, root_path))
        for form in forms:
            found.append(form)
            if form.rfind(".") > form.rfind("/"):
                bare = _SUFFIX.sub("", form)
                if bare != form:
                    found.append(canonical_path(bare))
    return found


_SLASHES_BOTH = ("/", "\\")
_MAX_AUTHORITIES = 3
#: One trailing format suffix on the last segment (``/v1/messages.json``).
_SUFFIX = re.compile(r"(?<=[^.])\.[A-Za-z0-9]{1,16}$")
#: A target that starts like ``//host/...`` (backslashes count as slashes, as in browsers).
_NETWORK = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*:)?[/\\]{2,}[^/\\?#]*")


def _network_path(path: str) -> str | None:
    """The path of ``//authority/path`` (a network-path reference), or None."""
    match = _NETWORK.match(path)
    if match is None:
        return None
    rest = path[match.end():]
    return rest if rest[:1] in ("/", "\\") else "/" + rest


def _as_utf8(raw: str) -> str:
    """A raw target (bytes read as Latin-1) read as UTF-8, as the server's path is."""
    if raw.isascii():
        return raw
    try:
        return raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return raw


def _unicode_fold(path: str) -> str | None:
    """The path with its non-ASCII characters under NFKC + case folding (``ſ`` → ``s``,
    Kelvin sign → ``k``), percent-escapes decoded first and the result re-escaped (so it is
    decoded once, like the plain reading); ASCII is left as is (a model keeps its case).
    None when nothing is non-ASCII once decoded."""
    text = unquote(path, errors="surrogateescape")
    if text.isascii():
        return None
    folded = "".join(ch if ch.isascii() else _fold_char(ch) for ch in text)
    return folded.replace("%", "%25")


def _fold_char(ch: str) -> str:
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", ch).casefold())


_MATRIX = re.compile(r";[^/]*")


def match_route(*paths: str, root_path: str = "", enabled: frozenset[str] = DEFAULT_FAMILIES,
                any_prefix: bool = False) -> Route | None:
    """The guarded route for the given readings of one request path, if any.

    Callers pass every reading they have (the raw target and the server-decoded path); if two
    readings land on different guarded routes or models, the request is marked ambiguous.
    ``enabled`` names the route families guarded (:func:`families`). ``any_prefix``: a path
    that *ends in* a guarded route is guarded, whatever comes before it (a client's base URL
    such as ``https://host/gw/v1``).
    """
    key = (paths, root_path, enabled, any_prefix)
    try:
        return _DECIDED[key]
    except KeyError:
        pass
    found = _match(paths, root_path, enabled, any_prefix)
    if sum(map(len, paths)) + len(root_path) <= _CACHED_PATH_CHARS:
        if len(_DECIDED) >= _CACHED_DECISIONS:
            _DECIDED.clear()  # bounded: many distinct paths only cost the slow reading again
        _DECIDED[key] = found
    return found


#: Route decisions per raw path (a pure function of its arguments, so it is cached): the
#: readings and canonical forms are worked out once per distinct target, not per request.
_DECIDED: dict[tuple[tuple[str, ...], str, frozenset[str], bool], Route | None] = {}
_CACHED_DECISIONS = 4096
_CACHED_PATH_CHARS = 512


def _match(paths: tuple[str, ...], root_path: str, enabled: frozenset[str],
           any_prefix: bool) -> Route | None:
    """:func:`match_route` without its cache."""
    found: Route | None = None
    for raw in _readings(paths, root_path):
        route = _route_at_end(raw, enabled) if any_prefix else _route_of(raw, enabled)
        if route is None:
            continue
        if found is None:
            found = route
        elif route != found and _checked_as(route) != _checked_as(found):
            return replace(found, ambiguous=True)
    return found


def _checked_as(route: Route) -> tuple[object, ...]:
    """What a check reads of a route: readings that differ only in the route's name
    (``/v1/chat/completions`` or ``/chat/completions``) are checked alike, so not ambiguous."""
    return (route.protocol, route.kind, route.model, route.family, route.counting,
            route.multipart, route.tag)
