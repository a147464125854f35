"""Turning request bytes into JSON values, strictly (decisions.md §8).

Every disagreement between this reading and the next parser's is a hole, so the body must be
I-JSON: UTF-8 without BOM, no NaN/Infinity, numbers within double range, no lone surrogates,
bounded nesting and no duplicate keys (rejected in every object, not just the ones the verdict
reads: I-JSON forbids them and no reader should have to guess which copy counts).
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jiter

from .errors import Reason

try:
    from . import _strictjson
except ImportError:  # no compiler at install time: the pure-Python path below is equivalent
    _strictjson = None

__all__ = ["ACCELERATED", "MAX_EXPANSION", "BodyError", "LongString", "SettleRule", "Settled",
           "SettledItems", "SkippedArray", "SkippedObject", "decode_content", "encoding_refusal",
           "parse_json", "settle_table", "unreadable_encoding", "worst_size"]

ACCELERATED = _strictjson is not None


class LongString(str):
    """A long string that was validated whole but kept only as its first characters (or none)."""

    __slots__ = ()


class SkippedObject(dict):
    """Stands for a non-empty object the verdict never reads (a tool's schema): validated
    strictly, duplicate keys and all, but not built. Truthy, like the object it replaces."""

    __slots__ = ()

    def __bool__(self) -> bool:
        return True


class SkippedArray(list):
    """Stands for a non-empty array the verdict never reads; see :class:`SkippedObject`."""

    __slots__ = ()

    def __bool__(self) -> bool:
        return True


class Settled:
    """Stands for an object whose kind is all the verdict reads (a plain text block, a
    function tool): validated strictly, duplicate keys and all, but not built. One shared
    marker per kind; its reader treats it as the object it replaces (the full reading of such
    an object only looks at its kind)."""

    __slots__ = ("kind", "flagged")

    def __init__(self, kind: str | None, flagged: bool = False) -> None:
        self.kind = kind
        #: The object also had its rule's ``flag`` key, not null (a cache breakpoint).
        self.flagged = flagged

    def __repr__(self) -> str:
        return f"Settled({self.kind!r}{', flagged' if self.flagged else ''})"


class SettledItems(list):  # type: ignore[type-arg]
    """Stands for an object whose nested array (a turn's content blocks, see
    :attr:`SettleRule.nested`) held only settled objects: the list of their markers, in
    order, and ``marker``, the object's own (its kind)."""

    __slots__ = ("marker",)

    def __init__(self, marker: Settled | None = None) -> None:
        super().__init__()
        self.marker = marker


@dataclass(frozen=True)
class SettleRule:
    """When an object at one place of a body is settled: every key is one of ``keys``,
    ``required`` (if any) is present, the values under ``strings`` are strings, and its
    ``type_key`` holds a string naming one of ``kinds`` (``None`` in ``kinds``: the type may
    be absent). Other values are never looked at, so a rule may only list keys whose values
    the reader never reads for those kinds (beyond a string's being a string)."""

    kinds: Mapping[str | None, Settled]
    keys: frozenset[str]
    #: None: the kind is the one key of ``kinds`` the object has (a Gemini part's data key).
    type_key: str | None = "type"
    required: str | None = None
    #: Keys whose values, when present, must be strings (a tool result's ``content``).
    strings: frozenset[str] = frozenset()
    #: A key (one of ``keys``) whose presence with a value other than null selects the
    #: marker from ``flagged`` instead of ``kinds`` (``cache_control``: the breakpoint is a
    #: need of its own, its value is not read).
    flag: str | None = None
    flagged: Mapping[str | None, Settled] = field(default_factory=dict)
    #: A key (one of ``keys``) whose value, when an array whose elements all settle under
    #: the rule at ``path + (nested, "*")``, settles with the object: the pair is handed back
    #: as :class:`SettledItems` of their markers. Any other value than an array (or a string,
    #: when the key is in ``strings``) leaves the object built.
    nested: str | None = None

    def as_tuple(self, inner: tuple[Any, ...] | None = None) -> tuple[Any, ...]:
        """The rule as both decoders read it (``inner``: the nested key's element rule); the
        last item is the accelerator's compiled form of the rest (None without it)."""
        rule = (self.type_key, self.keys, dict(self.kinds), self.required, self.strings,
                self.flag, dict(self.flagged), self.nested, inner)
        return (*rule, None if _strictjson is None else
                _strictjson.compile_rule(rule, SettledItems))

    def names(self) -> tuple[Any, ...]:
        """Every key and kind name the rule compares input with."""
        return (*self.keys, self.type_key, self.required, self.flag, self.nested,
                *self.kinds, *self.flagged)


#: Where a body's settled objects are: ``(children by key, the node of array elements,
#: the rule of an object here)``; one per protocol, built by :func:`settle_table`.
SettleNode = tuple[dict[str, "SettleNode"], "SettleNode | None", "tuple[Any, ...] | None"]


def settle_table(rules: Mapping[tuple[str, ...], SettleRule]) -> SettleNode:
    """The tree both decoders walk, from paths such as ``("messages", "*", "content", "*")``
    (``"*"``: any element of an array) to the rule of the objects there."""
    root: list[Any] = [{}, None, None]
    built: dict[tuple[str, ...], tuple[Any, ...]] = {}
    for path in sorted(rules, key=len, reverse=True):  # a nested key's element rule first
        rule = rules[path]
        inner = None if rule.nested is None else built.get((*path, rule.nested, "*"))
        if not path or len(rule.keys) > _MAX_RULE_KEYS or any(
                name is not None and (type(name) is not str or len(name) > _MAX_RULE_KEY
                                      or not name.isascii()) for name in rule.names()) or (
                rule.nested is not None and (inner is None or rule.nested not in rule.keys)):
            raise ValueError(f"bad settle rule at {path!r}")
        built[path] = rule.as_tuple(inner)
    for path, rule_tuple in built.items():
        node = root
        for step in path:
            if step == "*":
                if node[1] is None:
                    node[1] = [{}, None, None]
                node = node[1]
            else:
                node = node[0].setdefault(step, [{}, None, None])
        node[2] = rule_tuple

    def freeze(node: list[Any]) -> SettleNode:
        return ({key: freeze(child) for key, child in node[0].items()},
                None if node[1] is None else freeze(node[1]), node[2])

    return freeze(root)


#: Settle rules name short ASCII keys and kinds (up to 64 characters) and at most 64 keys:
#: the accelerator compares them byte for byte and keeps the keys an object had in one mask.
_MAX_RULE_KEY = 64
_MAX_RULE_KEYS = 64


def _settled(obj: dict[str, Any], rule: tuple[Any, ...]) -> Settled | SettledItems | None:
    """The marker standing for ``obj`` under ``rule`` (see :class:`SettleRule`), or None."""
    type_key, keys, kinds, required, strings, flag, flagged, nested, inner, _ = rule
    if not keys.issuperset(obj) or (required is not None and required not in obj):
        return None
    for key in strings:
        value = obj.get(key, _ABSENT)
        if value is not _ABSENT and type(value) is not str and key != nested:
            return None
    items = None
    if nested is not None and nested in obj:
        value = obj[nested]
        if type(value) is list:
            items = SettledItems(None)
            for element in value:
                marker = _settled(element, inner) if type(element) is dict else None
                if marker is None:
                    return None
                items.append(marker)
        elif type(value) is not str or nested not in strings:
            return None
    if type_key is None:
        found = [key for key in obj if key in kinds]
        if len(found) != 1:
            return None
        name = found[0]
    else:
        name = obj.get(type_key)
        if name is None and type_key in obj or name is not None and type(name) is not str:
            return None
    marker = flagged.get(name) if flag is not None and obj.get(flag) is not None else \
        kinds.get(name)
    if items is not None and marker is not None:
        items.marker = marker
        return items
    return marker


_ABSENT = object()


#: Keys whose string values the verdict never reads (content, base64, signatures): the
#: decoders validate such a string but, when it is long, hand back DROPPED.
_DROPPED_KEYS = (
    "text", "content", "system", "data", "thinking", "signature", "encrypted_content",
    "arguments", "description", "refusal", "prompt", "code", "output", "reasoning_content",
    "thoughtSignature", "thought_signature", "partial_json",
)
#: Keys whose long values are read only up to their first comma (a ``data:<mime>;base64,`` URL):
#: a long one is kept up to and including that comma (whole if it has none).
_PREFIX_KEYS = ("url", "file_data")
#: Keys whose object or array values the verdict never looks into (tool and response schemas,
#: function-call arguments): a non-empty one is validated but handed back as a placeholder,
#: :class:`SkippedObject` or :class:`SkippedArray`. A reader may test such a value for presence
#: or truth, never read inside it (tests/test_decoders.py holds the readers to that).
SKIPPED_KEYS = frozenset({
    "input_schema", "inputSchema", "parameters", "parametersJsonSchema",
    "parameters_json_schema", "properties", "schema", "json_schema", "jsonSchema",
    "responseSchema", "response_schema", "responseJsonSchema", "response_json_schema",
    "_responseJsonSchema", "responseJsonSchemaOrdered", "response_json_schema_ordered", "args",
    "functionDeclarations", "function_declarations",
})
_DROP, _PREFIX, _SKIP = 1, 2, 4
_KEY_MODES = ({key: _DROP for key in _DROPPED_KEYS} | {key: _PREFIX for key in _PREFIX_KEYS}
              | {key: _SKIP for key in SKIPPED_KEYS})
BULKY_KEYS = {key: mode for key, mode in _KEY_MODES.items() if mode != _SKIP}
#: Bulky strings up to this many UTF-8 bytes are always kept whole.
KEEP_BYTES = 512
DROPPED = LongString("")

#: Content codings inspected (decisions.md §8); anything else on a guarded route is a 415.
_CODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
_IDENTITY = {"", "identity"}
#: More stacked codings than this is an attack, not a client (decisions.md §11: one layer).
_MAX_CODINGS = 1
#: A compressed body that inflates to more than this many times its size is a bomb (§11).
MAX_EXPANSION = 200
_CHUNK = 64 * 1024
#: Compressed input is fed to zlib this many bytes at a time: what zlib has not consumed yet
#: (``unconsumed_tail``) is copied on every call, so feeding all of a 3 MB body at once would
#: copy it again for every 64 KiB inflated.
_FEED = 16 * 1024
#: The decoder's own nesting limit; ``max_depth`` above it cannot be honoured.
DECODER_MAX_DEPTH = 200
_MAX_DOUBLE_BITS = 1024  # ints this wide may round to infinity as a double


class BodyError(Exception):
    """A body that cannot be inspected; ``reason`` picks the status and envelope."""

    def __init__(self, reason: str, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.path = path


#: The structure budget (decisions.md §11 "Memory"): what decoding one body may build, in
#: bytes. Every JSON value built counts VALUE_COST (about what CPython spends on a small one),
#: every string built its width beyond one byte per character (CPython stores a string at 1, 2
#: or 4 bytes per character). Values inside skipped subtrees and dropped strings cost nothing.
#: The budget is a quarter of the body, never below BUDGET_FLOOR: a real 130 KB agent body is
#: charged well under 1 MB, a 32 MiB body of ``[{},{},...]`` would be charged 700 MB.
VALUE_COST = 64
BUDGET_FLOOR = 8 * 1024 * 1024
BUDGET_SHARE = 4
#: Integer parts longer than this are refused by both decoders (Python's own int() limit).
MAX_INT_DIGITS = 4300
#: Keys echoed in messages are cut to this many characters (decisions.md §11).
_SHOWN_KEY_CHARS = 64
_JITER_DUPLICATE = re.compile(r'Detected duplicate key "(.*)" at (line \d+ column \d+)',
                              re.DOTALL)

if _strictjson is not None:
    _strictjson.configure(_KEY_MODES, LongString, DROPPED, SkippedObject, SkippedArray,
                          KEEP_BYTES, VALUE_COST)
    _accelerated_loads = _strictjson.loads
    _StrictJSONError = _strictjson.StrictJSONError
    _StructureLimitError = _strictjson.StructureLimitError
else:
    _accelerated_loads = None


#: Bodies up to this size get the floor (inlined in parse_json: one check per body).
_FLOOR_SIZE = BUDGET_FLOOR * BUDGET_SHARE


def structure_budget(size: int) -> int:
    """The structure budget of a body of ``size`` bytes."""
    return max(BUDGET_FLOOR, size // BUDGET_SHARE)


def _codings(headers: Iterable[str]) -> list[str]:
    codings = []
    for value in headers:
        for item in value.split(","):
            coding = item.strip().lower()
            if coding not in _IDENTITY:
                codings.append(coding)
    return codings


def unreadable_encoding(content_encodings: Iterable[str]) -> str | None:
    """The content coding this guard will not decode, if any (for an early 415): an unknown
    one, or a stack of more than one layer (each layer multiplies the cost of a bomb)."""
    codings = _codings(content_encodings)
    for coding in codings:
        if coding not in _CODINGS:
            return coding[:64]
    if len(codings) > _MAX_CODINGS:
        return ", ".join(codings)[:64]
    return None


def encoding_refusal(coding: str) -> BodyError:
    """The 415 for a coding :func:`unreadable_encoding` named."""
    if "," in coding:
        return BodyError(
            Reason.MEDIA_TYPE,
            f"Content-Encoding {coding!r} stacks more than one coding; send the body "
            "compressed once, with gzip or deflate.",
        )
    return BodyError(
        Reason.MEDIA_TYPE,
        f"Content-Encoding {coding!r} is not supported here; send the body uncompressed, "
        "or with gzip or deflate.",
    )


def worst_size(size: int, content_encodings: Iterable[str]) -> int:
    """The most bytes a body of ``size`` may decode to (for choosing where to inspect it)."""
    return size * MAX_EXPANSION if _codings(content_encodings) else size


def decode_content(body: bytes, content_encodings: Iterable[str], limit: int) -> bytes:
    """Undo one gzip/deflate coding, never inflating past ``limit`` or ``MAX_EXPANSION``:1."""
    codings = _codings(content_encodings)
    bad = unreadable_encoding(codings)
    if bad is not None:
        raise encoding_refusal(bad)
    for coding in reversed(codings):
        body = _inflate(body, _CODINGS[coding], coding, limit)
    return body


def _inflate(data: bytes, wbits: int, coding: str, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    out = []
    size = 0
    #: Whichever comes first: the size limit or the expansion ratio.
    ceiling = min(limit, MAX_EXPANSION * len(data))
    view = memoryview(data)
    trailing = False
    try:
        for start in range(0, len(data), _FEED):
            pending = view[start:start + _FEED]
            while pending and not inflater.eof:
                piece = inflater.decompress(pending, _CHUNK)
                size += len(piece)
                if size > ceiling:
                    raise _too_expanded(limit, size, len(data))
                out.append(piece)
                pending = inflater.unconsumed_tail
            if inflater.eof:
                trailing = start + _FEED < len(data)
                break
        tail = inflater.flush()
    except zlib.error:
        raise BodyError(
            Reason.INVALID, f"The body is not valid {coding} data; check Content-Encoding."
        ) from None
    size += len(tail)
    if size > ceiling:
        raise _too_expanded(limit, size, len(data))
    if not inflater.eof or inflater.unused_data or trailing:
        raise BodyError(
            Reason.INVALID, f"The {coding} body is truncated or has trailing bytes."
        )
    out.append(tail)
    return b"".join(out)  # copies with the GIL released when large (CPython 3.9+)


def _too_expanded(limit: int, size: int, compressed: int) -> BodyError:
    if size > limit:
        return too_large(limit, "after decompression")
    return BodyError(
        Reason.TOO_LARGE,
        f"The compressed body inflates to more than {MAX_EXPANSION} times its "
        f"{compressed}-byte size; that is refused as a decompression bomb. Send it "
        "uncompressed.",
    )


def too_large(limit: int, when: str = "") -> BodyError:
    suffix = f" {when}" if when else ""
    return BodyError(
        Reason.TOO_LARGE,
        f"The request body is larger than the {limit}-byte limit{suffix}; "
        "send less content per request (for large media, use a file or URL reference).",
    )


def parse_json(body: bytes, max_depth: int, settle: SettleNode | None = None, *,
               accelerated: bool = True) -> Any:
    """Decode ``body`` as strict JSON, raising :class:`BodyError` on anything else.

    Both paths accept and refuse the same bodies (for the same reason) and hand back the same
    placeholders for skipped subtrees; the accelerated one also leaves long strings under
    :data:`BULKY_KEYS` as :class:`LongString` heads. Nesting deeper than
    :data:`DECODER_MAX_DEPTH` is refused whatever ``max_depth`` says; a body whose decoded form
    would exceed its :func:`structure_budget` is a 413. ``settle`` (a :func:`settle_table`)
    puts :class:`Settled` markers in place of the objects its rules settle, in both paths.
    """
    size = len(body)
    if not size:
        raise BodyError(Reason.INVALID, "The request body is empty; send a JSON object.")
    if max_depth > DECODER_MAX_DEPTH:
        max_depth = DECODER_MAX_DEPTH
    budget = BUDGET_FLOOR if size <= _FLOOR_SIZE else size // BUDGET_SHARE
    if accelerated and _accelerated_loads is not None:
        try:
            return _accelerated_loads(body, max_depth, budget, settle)
        except _StrictJSONError as exc:
            raise BodyError(Reason.INVALID, _explain(str(exc), body, max_depth)) from None
        except _StructureLimitError:
            raise _over_budget(size, budget) from None
    try:
        value = jiter.from_json(
            body, allow_inf_nan=False, catch_duplicate_keys=True, cache_mode="keys"
        )
    except ValueError as exc:
        raise BodyError(Reason.INVALID, _explain(str(exc), body, max_depth)) from None
    if _check_tree(value, max_depth, settle) > budget:
        raise _over_budget(len(body), budget)
    return value


def _over_budget(size: int, budget: int) -> BodyError:
    return BodyError(
        Reason.TOO_LARGE,
        f"The request body is too dense to inspect: decoding its {size}-byte JSON would "
        f"exceed the structure limit of {budget} bytes (each JSON value counts {VALUE_COST} "
        f"bytes; the limit is a quarter of the body, at least {BUDGET_FLOOR} bytes). Send "
        "fewer, larger values.",
    )


def _explain(detail: str, body: bytes, max_depth: int) -> str:
    if "recursion limit" in detail or "nesting too deep" in detail:
        return _too_deep(max_depth)
    if body.startswith(b"\xef\xbb\xbf"):
        detail = "byte order mark at the start"
    elif body[:2] in (b"\xff\xfe", b"\xfe\xff") or (len(body) > 1 and b"\x00" in body[:4]):
        detail = "the body is not UTF-8 (UTF-16/32?)"
    elif "duplicate key" in detail.lower():
        return f"The body is not strict JSON: {_cut_key(detail)}. Send each key once per object."
    return f"The body is not strict JSON (UTF-8, no NaN/Infinity, no lone surrogates): {detail}."


def _cut_key(detail: str) -> str:
    """jiter's duplicate-key message with the key cut as the accelerator cuts it."""
    found = _JITER_DUPLICATE.fullmatch(detail)
    if found is None:
        return detail
    key, where = found.groups()
    more = "..." if len(key) > _SHOWN_KEY_CHARS else ""
    return f"duplicate key {key[:_SHOWN_KEY_CHARS]!r}{more} at {where}"


def _too_deep(max_depth: int) -> str:
    return f"The body nests deeper than {max_depth} levels; flatten it."


def _check_tree(root: Any, max_depth: int, settle: SettleNode | None = None) -> int:
    """Enforce the depth limit and double range on the decoded tree, put the placeholders and
    settled markers in (as the accelerated decoder does) and return what the tree is charged
    (see :data:`VALUE_COST`): exactly what the accelerated decoder counts."""
    cost = VALUE_COST
    kind = type(root)
    if kind is str:
        return cost + _wide_extra(root)
    if kind is not dict and kind is not list:
        _check_scalar(root)
        return cost
    if max_depth < 1:
        raise BodyError(Reason.INVALID, _too_deep(max_depth))
    # node, its depth, whether it is built (not in a skipped subtree), its settle node
    stack: list[tuple[Any, int, bool, SettleNode | None]] = [(root, 1, True, settle)]
    pop, push = stack.pop, stack.append
    modes = _KEY_MODES
    while stack:
        node, depth, built, place = pop()
        if type(node) is dict:
            if built:
                cost += VALUE_COST * len(node)
            children = place[0] if place is not None else None
            for key, item in node.items():
                if built and not key.isascii():
                    cost += _wide_extra(key)
                kind = type(item)
                if kind is dict or kind is list:
                    if depth >= max_depth:
                        raise BodyError(Reason.INVALID, _too_deep(max_depth))
                    skip = built and modes.get(key) == _SKIP
                    child = children.get(key) if children and not skip else None
                    marker = (_settled(item, child[2]) if child is not None and kind is dict
                              and child[2] is not None else None)
                    if marker is not None:
                        node[key] = marker
                        cost += _settled_cost(marker)
                        push((item, depth + 1, False, None))
                    elif item:
                        push((item, depth + 1, built and not skip, child))
                        if skip:
                            node[key] = SkippedObject() if kind is dict else SkippedArray()
                elif kind is str:
                    if built and not item.isascii():
                        cost += _string_extra(item, modes.get(key, 0))
                elif kind is float or kind is int:
                    _check_scalar(item)
        else:
            if built:
                cost += VALUE_COST * len(node)
            element = place[1] if place is not None and built else None
            rule = element[2] if element is not None else None
            for i, item in enumerate(node):
                kind = type(item)
                if kind is dict or kind is list:
                    if depth >= max_depth:
                        raise BodyError(Reason.INVALID, _too_deep(max_depth))
                    marker = _settled(item, rule) if rule is not None and kind is dict else None
                    if marker is not None:
                        node[i] = marker
                        cost += _settled_cost(marker)
                        push((item, depth + 1, False, None))
                    elif item:
                        push((item, depth + 1, built, element))
                elif kind is str:
                    if built and not item.isascii():
                        cost += _wide_extra(item)
                elif kind is float or kind is int:
                    _check_scalar(item)
    return cost


def _settled_cost(marker: Settled | SettledItems) -> int:
    """What a marker costs beyond its slot in its container: a :class:`SettledItems` is
    charged as the list it is, one value per marker (as the accelerator charges it)."""
    return VALUE_COST * len(marker) if type(marker) is SettledItems else 0


def _check_scalar(item: Any) -> None:
    if type(item) is float:
        if math.isinf(item):
            raise _out_of_range()
    elif type(item) is int and item.bit_length() >= _MAX_DOUBLE_BITS and _overflows(item):
        raise _out_of_range()


def _string_extra(text: str, mode: int) -> int:
    """What a non-ASCII string value under a key of ``mode`` is charged: as built, cut or not."""
    if mode & (_DROP | _PREFIX) and len(text.encode("utf-8")) > KEEP_BYTES:
        if mode & _DROP:
            return 0
        comma = text.find(",")
        if comma >= 0:
            text = text[:comma + 1]
    return _wide_extra(text)


def _wide_extra(text: str) -> int:
    """The bytes a string's characters take beyond one each (CPython: 1, 2 or 4 per char)."""
    if text.isascii():
        return 0
    widest = max(text)
    if widest <= "\xff":
        return 0
    return len(text) * (1 if widest <= "\uffff" else 3)


def _overflows(value: int) -> bool:
    """Whether an int rounds to infinity as a double (the same test as the C decoder's)."""
    try:
        float(value)
    except OverflowError:
        return True
    return False


def _out_of_range() -> BodyError:
    return BodyError(
        Reason.INVALID,
        "The body is not strict JSON: a number is outside the range of a double.",
    )
