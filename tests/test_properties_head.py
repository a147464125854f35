"""Property tests for the second-round readings (decisions.md §11), each against an oracle
written here from the spec, independently of modelguard's own code:

- media types on JSON routes: the stdlib ``email`` parser reads the Content-Type;
- Content-Length: ASCII digits only, one value, bounded;
- routes: guarded paths disguised by ASCII case, ``ſ``/Kelvin sign, fullwidth letters,
  percent-encoding, a format suffix and a network-path prefix stay guarded; other paths pass;
- media fields: data URLs with surrounding whitespace/C0 controls and ``\\/``, part types that
  disagree with their data, OpenAI file sources and ``format``, Gemini ``mimeType: ""`` with
  extensions from the stdlib ``mimetypes`` tables and the protocols' own lists;
- fast paths: plain text parts whose keys collide (look-alikes, both Gemini spellings);
- and ``Guard.check`` never raises and never answers 5xx, whatever it is handed.
"""

from __future__ import annotations

import email.message
import json
import mimetypes
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelguard import Catalog, Guard
from modelguard.protocols._extensions import EXTENSIONS

from .conftest import catalog_of, model_entry

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
LIMIT = 32 * 1024 * 1024
A_OK = json.dumps({"model": "claude-sonnet-4-6", "max_tokens": 10,
                   "messages": [{"role": "user", "content": "hi"}]}).encode()
A_UNKNOWN = A_OK.replace(b"claude-sonnet-4-6", b"claude-sonnet-9-9")
DEFAULT = Catalog.default()


def run(coro: Any) -> Any:
    import asyncio

    return asyncio.run(coro)


# -- media types ---------------------------------------------------------------------------------

MAIN_TYPES = ["application/json", "text/plain", "application/octet-stream", "multipart/form-data",
              "multipart/mixed", "multipart/related", "application/x-www-form-urlencoded",
              "application/vnd.api+json", "text/json", "application/x-ndjson"]
CHARSETS = ["utf-8", "UTF-8", "utf8", "Utf8", "utf-16", "UTF-16LE", "utf-7", "latin1",
            "iso-8859-1", "us-ascii", "windows-1252", "ucs-2", "utf-32"]


@st.composite
def content_types(draw: st.DrawFn) -> str:
    main = draw(st.sampled_from(MAIN_TYPES))
    main = "".join(c.upper() if draw(st.booleans()) else c for c in main)
    params = []
    for _ in range(draw(st.integers(0, 3))):
        if draw(st.booleans()):
            name = "".join(c.upper() if draw(st.booleans()) else c for c in "charset")
            value = draw(st.sampled_from(CHARSETS))
        else:
            name = draw(st.sampled_from(["boundary", "q", "version", "type"]))
            value = draw(st.from_regex(r"[A-Za-z0-9]{1,8}", fullmatch=True))
        if draw(st.booleans()):
            value = f'"{value}"'
        params.append(f"{draw(st.sampled_from(['', ' ']))}{name}={value}")
    return main + "".join(";" + p for p in params)


def media_oracle(value: str) -> bool:
    """Refused (415)? Read by the stdlib's own MIME header parser."""
    message = email.message.Message()
    message["content-type"] = value
    ctype = message.get_content_type()
    if message.get_content_maintype() == "multipart":
        return True
    if ctype == "application/x-www-form-urlencoded":
        return True
    charsets = [v for k, v in message.get_params() or [] if k.lower() == "charset"]
    return any(c.strip('"').lower() not in ("utf-8", "utf8") for c in charsets)


@SETTINGS
@given(st.lists(content_types(), min_size=1, max_size=2))
def test_media_types_against_the_email_parser(values: list[str]) -> None:
    verdict = run(Guard(DEFAULT).check("POST", "/v1/messages",
                                       [("content-type", v) for v in values], A_OK))
    refused = any(media_oracle(v) for v in values)
    assert (verdict.status == 415) == refused, (values, verdict)
    assert verdict.allowed == (not refused)


# -- Content-Length ------------------------------------------------------------------------------

LENGTH_PIECES = st.one_of(
    st.from_regex(r"0{0,5}[0-9]{1,9}", fullmatch=True),
    st.sampled_from(["", " ", "-1", "+5", "0x10", "1e3", "1.0", "\u00b2", "\u0661",
                     "\uff15", "5 5", "1_0", "\u00b9\u00b2", "9" * 40]),
    st.text(max_size=4),
)


@st.composite
def length_headers(draw: st.DrawFn) -> list[str]:
    values = []
    for _ in range(draw(st.integers(1, 3))):
        items = draw(st.lists(LENGTH_PIECES, min_size=1, max_size=2))
        pad = draw(st.sampled_from(["", " ", "\t"]))
        values.append(",".join(pad + i + pad for i in items))
    if draw(st.booleans()):  # often: copies of one honest value
        values = [str(len(A_OK))] * len(values)
    return values


def length_oracle(values: list[str]) -> int | str:
    """400, 413, or the single declared length."""
    found = set()
    for value in values:
        for item in value.split(","):
            text = item.strip(" \t")
            if not re.fullmatch(r"[0-9]+", text, flags=re.ASCII):
                return 400
            found.add(int(text))
    if len(found) > 1:
        return 400
    (length,) = found
    return 413 if length > LIMIT else length


@SETTINGS
@given(length_headers())
def test_content_length_against_an_oracle(values: list[str]) -> None:
    verdict = run(Guard(DEFAULT).check("POST", "/v1/messages",
                                       [("content-length", v) for v in values], A_OK))
    want = length_oracle(values)
    if want in (400, 413):
        assert verdict.status == want, (values, verdict)
    else:
        assert verdict.allowed, (values, verdict)


# -- routes --------------------------------------------------------------------------------------

GUARDED = ["/v1/messages", "/v1/messages/count_tokens", "/v1/chat/completions",
           "/chat/completions", "/v1/images/generations", "/v1/videos/generations"]
UNGUARDED = ["/v1/models", "/v1/files", "/v1/embeddings", "/v1/messages/batches",
             "/v1/completions", "/v2/messages"]
#: Letters that NFKC + case folding turn into an ASCII letter.
LOOKALIKES = {"s": ["\u017f"], "k": ["\u212a"], **{c: [chr(0xFF41 + ord(c) - 97),
                                                       chr(0xFF21 + ord(c) - 97)]
                                                   for c in "abcdefghijklmnopqrstuvwxyz"}}


def _pct(text: str) -> str:
    return "".join(f"%{b:02X}" for b in text.encode())


@st.composite
def disguised(draw: st.DrawFn, base: str) -> str:
    out = []
    for ch in base:
        roll = draw(st.integers(0, 9))
        if ch.lower() in LOOKALIKES and roll == 0:
            out.append(_pct(draw(st.sampled_from(LOOKALIKES[ch.lower()]))))
        elif ch.isalpha() and roll == 1:
            out.append(ch.upper())
        elif ch.isalnum() and roll == 2:
            out.append(_pct(ch))
        else:
            out.append(ch)
    path = "".join(out)
    if draw(st.booleans()):
        path += draw(st.sampled_from([".json", ".xml", ".JSON", ".yaml"]))
    if draw(st.booleans()):
        path = draw(st.sampled_from(["//host", "/\\host", "//", "http://h//gw", "///a"])) + path
    if draw(st.booleans()):
        path += "/"
    return path + draw(st.sampled_from(["", "?beta=true", "#frag"]))


@SETTINGS
@given(st.sampled_from(GUARDED).flatmap(disguised))
def test_disguised_guarded_routes_stay_guarded(target: str) -> None:
    """The oracle built the path from a guarded route, so it must be guarded: a body naming
    an unknown model is refused, never passed."""
    verdict = run(Guard(DEFAULT).check("POST", target, {}, A_UNKNOWN))
    assert not verdict.allowed and verdict.status == 400, (target, verdict)
    assert verdict.guarded


@SETTINGS
@given(st.sampled_from(UNGUARDED).flatmap(disguised))
def test_disguised_other_routes_pass(target: str) -> None:
    verdict = run(Guard(DEFAULT).check("POST", target, {}, A_UNKNOWN))
    assert verdict.allowed and not verdict.guarded, (target, verdict)


# -- media fields --------------------------------------------------------------------------------

#: The protocols' own lists (protocols.md and the Gemini file docs): extension → kind.
DOCUMENTED = {"png": "vision", "jpg": "vision", "jpeg": "vision", "webp": "vision",
              "heic": "vision", "heif": "vision", "gif": "vision", "pdf": "vision",
              "wav": "audio", "mp3": "audio", "aiff": "audio", "aac": "audio", "ogg": "audio",
              "flac": "audio", "mp4": "video", "mpeg": "video", "mov": "video", "avi": "video",
              "flv": "video", "mpg": "video", "webm": "video", "wmv": "video", "3gpp": "video",
              "3gp": "video", "txt": None, "md": None, "csv": None, "json": None,
              "html": None, "py": None, "js": None,
              # 3GPP2 is a video container too (RFC 4393); the stdlib lists its audio type only
              "3g2": "video", "3gpp2": "video"}
_TEXTUAL = {"application/json", "application/x-javascript", "application/javascript",
            "application/xml", "application/x-sh", "application/sql", "application/rtf",
            "application/x-python", "application/x-python-code", "application/yaml",
            "application/x-yaml", "application/csv", "application/ld+json",
            "application/x-typescript"}
_C0_WS = "".join(chr(c) for c in range(0x21))


def kind_of(mime: str) -> str | None:
    main = mime.split(";")[0].strip(_C0_WS).lower().replace("\\/", "/")
    for prefix, kind in (("image/", "vision"), ("audio/", "audio"), ("video/", "video")):
        if main.startswith(prefix):
            return kind
    return None if main.startswith("text/") or main in _TEXTUAL else "vision"


def stdlib_types(ext: str) -> set[str]:
    table = mimetypes.MimeTypes()
    return {t for strict in (True, False) for e, t in table.types_map[strict].items()
            if e == "." + ext}


def ext_kinds(ext: str) -> set[str | None]:
    kinds = {kind_of(t) for t in stdlib_types(ext)}
    if ext in DOCUMENTED:
        kinds.add(DOCUMENTED[ext])
    return kinds or {"vision"}


def data_kind(url: str) -> str | None | bool:
    """A data URL's kind, or False when ``url`` is not a data URL."""
    text = url.strip(_C0_WS)
    if text[:5].lower() != "data:":
        return False
    return kind_of(re.split("[;,]", text[5:], maxsplit=1)[0])


def uri_kinds(uri: str) -> set[str | None]:
    kind = data_kind(uri)
    if kind is not False:
        return {kind}
    name = uri.split("?")[0].split("#")[0].rsplit("/", 1)[-1]
    return ext_kinds(name.rsplit(".", 1)[1].lower()) if "." in name else {"vision"}


EXTS = sorted({e.lstrip(".") for s in (True, False)
               for e in mimetypes.MimeTypes().types_map[s]} | set(DOCUMENTED) | {"xyz", "bin"})
MIMES = ["image/png", "video/mp4", "audio/wav", "application/pdf", "text/plain",
         "application/octet-stream", "video\\/webm", "VIDEO/MP4", "audio\\/mpeg", "image/jpeg"]
PADS = ["", " ", "\t", "\n", "\r\n", "\x00", "\x01", "\x0b", "\x1f", " \x00 "]


@st.composite
def data_urls(draw: st.DrawFn) -> str:
    mime = draw(st.sampled_from(MIMES))
    scheme = "".join(c.upper() if draw(st.booleans()) else c for c in "data:")
    return (draw(st.sampled_from(PADS)) + scheme + mime + ";base64,AAAA"
            + draw(st.sampled_from(PADS)))


@st.composite
def file_urls(draw: st.DrawFn) -> str:
    ext = draw(st.sampled_from(EXTS))
    ext = ext.upper() if draw(st.booleans()) else ext
    return draw(st.sampled_from(["https://x.example/a/", "gs://bucket/", "https://x/"])) \
        + f"file.{ext}" + draw(st.sampled_from(["", "?sig=1", "#t=2"]))


@st.composite
def openai_parts(draw: st.DrawFn) -> tuple[dict[str, Any], set[str | None]]:
    kind = draw(st.sampled_from(["image_url", "video_url", "audio_url", "file"]))
    if kind != "file":
        url = draw(st.one_of(data_urls(), file_urls()))
        media: dict[str, Any] = {"url": url}
        need = {{"image_url": "vision", "video_url": "video", "audio_url": "audio"}[kind]}
        if data_kind(url) is not False:
            need.add(data_kind(url))
        if draw(st.booleans()):
            media["format"] = draw(st.sampled_from(MIMES))
            need.add(kind_of(media["format"]))
        return {"type": kind, kind: media}, need
    file: dict[str, Any] = {}
    need = set()
    if draw(st.booleans()):
        file["file_data"] = draw(data_urls())
        need.add(data_kind(file["file_data"]))
    if draw(st.booleans()):
        file["file_id"] = draw(st.one_of(file_urls(), st.just("file-abc123")))
        need |= {"vision"} | (uri_kinds(file["file_id"]) if "://" in file["file_id"] else set())
    if draw(st.booleans()):
        file["file_url"] = draw(file_urls())
        need |= {"vision"} | uri_kinds(file["file_url"])  # an extension never lowers a need
    if draw(st.booleans()):
        file["format"] = draw(st.sampled_from(MIMES))
        need.add(kind_of(file["format"]))
    return {"type": "file", "file": file}, need or {"vision"}


TAG_SETS = st.sets(st.sampled_from(["vision", "audio", "video"]))


@SETTINGS
@given(openai_parts(), TAG_SETS)
def test_openai_media_fields_against_an_oracle(drawn: tuple[dict, set], tags: set[str]) -> None:
    part, need = drawn
    catalog = catalog_of(model_entry("m-under-test", tags, owned_by="openai"))
    body = json.dumps({"model": "m-under-test",
                       "messages": [{"role": "user", "content": [part]}]}).encode()
    verdict = run(Guard(catalog).check("POST", "/v1/chat/completions", {}, body))
    allowed = (need - {None}) <= tags
    assert verdict.allowed == allowed, (part, need, tags, verdict)
    if not allowed:
        assert verdict.token == "unsupported_capability"


@st.composite
def gemini_files(draw: st.DrawFn) -> tuple[dict[str, Any], set[str | None]]:
    uri = draw(file_urls())
    blob: dict[str, Any] = {"fileUri": uri}
    mime = draw(st.sampled_from([None, "", "  ", *MIMES]))
    if mime is not None:
        blob["mimeType"] = mime
    need = uri_kinds(uri) if mime is None or not mime.strip() else {kind_of(mime)}
    return {"fileData": blob}, need


@SETTINGS
@given(gemini_files(), TAG_SETS)
def test_gemini_file_media_against_an_oracle(drawn: tuple[dict, set], tags: set[str]) -> None:
    part, need = drawn
    catalog = catalog_of(model_entry("g-under-test", tags, owned_by="google"))
    body = json.dumps({"contents": [{"role": "user", "parts": [part]}]}).encode()
    verdict = run(Guard(catalog).check(
        "POST", "/v1beta/models/g-under-test:generateContent", {}, body))
    assert verdict.allowed == ((need - {None}) <= tags), (part, need, tags, verdict)


def test_extension_table_covers_the_stdlib_tables() -> None:
    """Every extension the running Python's ``mimetypes`` knows is in the table, with every
    kind the stdlib gives it (and the protocols' own list too)."""
    table = mimetypes.MimeTypes()
    for strict in (True, False):
        for ext, mime in table.types_map[strict].items():
            listed = EXTENSIONS.get(ext.lstrip(".").lower())
            assert listed is not None, ext
            assert kind_of(mime) in {kind_of(m) for m in listed}, (ext, mime, listed)
    for ext, kind in DOCUMENTED.items():
        assert kind in {kind_of(m) for m in EXTENSIONS[ext]}, ext


# -- fast paths ---------------------------------------------------------------------------------

TEXT_PART_KEYS = ["thought", "thoughtSignature", "thought_signature", "THOUGHT",
                  "Thought_Signature", "thoughtsignature", "\u0074hought", "x_extra"]


@SETTINGS
@given(st.lists(st.sets(st.sampled_from(TEXT_PART_KEYS), max_size=3), min_size=1, max_size=3),
       st.booleans())
def test_gemini_plain_text_parts_hold_the_full_rules(key_sets: list[set[str]],
                                                     system: bool) -> None:
    """Text parts take the fast path only when the full path would accept them too."""
    parts = []
    refuse = False
    for keys in key_sets:
        part: dict[str, Any] = {"text": "hi"}
        for key in keys:
            part[key] = True if key.lower() == "thought" else "c2ln"
        # Any other key is a look-alike (400) or unknown content (400); both spellings of
        # one field are ambiguous (400).
        names = {"thought", "thoughtSignature", "thought_signature", "text"}
        both = "thoughtSignature" in part and "thought_signature" in part
        refuse = refuse or both or any(k not in names for k in part)
        parts.append(part)
    body: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": "q"}]}]}
    if system:
        body["systemInstruction"] = {"parts": parts}
    else:
        body["contents"].append({"role": "model", "parts": parts})
    verdict = run(Guard(DEFAULT).check(
        "POST", "/v1beta/models/gemini-3-flash:generateContent", {},
        json.dumps(body).encode()))
    assert verdict.allowed == (not refuse), (parts, verdict)


# -- Guard.check never raises -------------------------------------------------------------------

HEADER_NAMES = ["content-type", "content-length", "content-encoding", "x-api-key",
                "authorization", "x-goog-api-key", "x-http-method-override", "host", "x"]
ANY_TEXT = st.text(max_size=30) | st.sampled_from(["\u00b2", "gzip, gzip", "br", "9" * 50,
                                                   "multipart/x", "Bearer \x00"])


@SETTINGS
@given(method=st.sampled_from(["POST", "post", "GET", "PUT", ""]) | st.text(max_size=5),
       target=st.sampled_from(GUARDED + ["/v1beta/models/m:generateContent"]).flatmap(disguised)
       | st.text(max_size=40),
       headers=st.lists(st.tuples(st.sampled_from(HEADER_NAMES) | st.text(max_size=8),
                                  ANY_TEXT | st.binary(max_size=20)), max_size=6),
       body=st.binary(max_size=200) | st.just(A_OK))
def test_guard_check_never_raises(method: str, target: str, headers: list, body: bytes) -> None:
    verdict = run(Guard(DEFAULT).check(method, target, headers, body))
    assert verdict.status < 500
    if not verdict.allowed:
        assert json.loads(verdict.body)
