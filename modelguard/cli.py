"""The ``modelguard`` command line: check, catalog and serve."""

from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import json
import os
import platform
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

from ._version import DISTRIBUTION, __version__
from .actions import PRESETS, resolve_actions
from .catalog import Catalog, CatalogError, ModelInfo
from .catalog.remote import RemoteCatalog
from .catalog.sources import CatalogUnavailable
from .guard import Guard
from .routing import FAMILIES
from .verdict import Verdict

__all__ = ["doctor_report", "main"]

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2
_SUFFIXES = (".json", ".jsonl", ".ndjson")


class InputError(Exception):
    """An input file or record that cannot be read as a request."""


@dataclass
class Request:
    source: str
    method: str
    target: str
    headers: Any
    body: bytes


#: Prefix of the environment variables that stand in for ``modelguard serve`` flags.
ENV_PREFIX = "MODELGUARD_"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.command == "serve":
        error = _from_environment(args, args.parser, os.environ)
        if error is not None:
            print(f"modelguard serve: {error}", file=sys.stderr)
            return EXIT_USAGE
    try:
        return args.run(args)
    except BrokenPipeError:  # `modelguard check ... | head`: the reader left, quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_REFUSED


_UNSET: Any = type("_Unset", (), {"__repr__": lambda self: "<unset>"})()
_ENV_DEFAULTS = "_env_defaults"


def _env_name(action: argparse.Action) -> str:
    return ENV_PREFIX + action.dest.upper()


def _environment_flags(parser: argparse.ArgumentParser) -> None:
    """Let every option of ``parser`` come from ``MODELGUARD_<OPTION>`` too (named in --help).

    The defaults move aside so that :func:`_from_environment` can tell "not given" apart."""
    defaults: dict[str, Any] = {}
    for action in parser._actions:  # noqa: SLF001
        if not action.option_strings or action.dest in ("help", "version"):
            continue
        defaults[action.dest] = action.default
        appends = isinstance(action, argparse._AppendAction)  # noqa: SLF001
        action.default = None if appends else _UNSET
        action.required = False
        note = f"env {_env_name(action)}" + (", comma-separated" if appends else "")
        action.help = f"{action.help} [{note}]" if action.help else f"[{note}]"
    parser.set_defaults(**{_ENV_DEFAULTS: defaults, "parser": parser})


def _from_environment(args: argparse.Namespace, parser: argparse.ArgumentParser,
                      environ: Any) -> str | None:
    """Fill every flag not given on the command line from ``MODELGUARD_<FLAG>``.

    The command line wins; a value from the environment is checked like the flag's own
    (type and choices), and a bad one is a usage error naming the variable."""
    defaults: dict[str, Any] = parser.get_default(_ENV_DEFAULTS) or {}
    for action in parser._actions:  # noqa: SLF001 - argparse has no public iterator
        if not action.option_strings or action.dest in ("help", "version"):
            continue
        appends = isinstance(action, argparse._AppendAction)  # noqa: SLF001
        given = getattr(args, action.dest)
        if given is not _UNSET and not (appends and given is None):
            continue
        name = _env_name(action)
        raw = environ.get(name)
        if raw is None or raw == "":
            setattr(args, action.dest, copy.copy(defaults.get(action.dest)))
            continue
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):  # noqa: SLF001
            switch = _SWITCHES.get(raw.strip().lower())
            if switch is None:
                return f"{name}={raw!r}: use 1/true/yes/on or 0/false/no/off"
            setattr(args, action.dest, action.const if switch else not action.const)
            continue
        values = _items(raw) if appends else [raw]
        parsed = []
        for value in values:
            try:
                converted = action.type(value) if callable(action.type) else value
            except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
                return f"{name}={value!r}: {exc}"
            if action.choices is not None and converted not in action.choices:
                return f"{name}={value!r}: choose from {', '.join(map(str, action.choices))}"
            parsed.append(converted)
        setattr(args, action.dest, parsed if appends else parsed[0])
    if args.upstream is None:
        return f"--upstream (or {ENV_PREFIX}UPSTREAM) is required"
    return None


_SWITCHES = {"1": True, "true": True, "yes": True, "on": True,
             "0": False, "false": False, "no": False, "off": False}


def _items(raw: str) -> list[str]:
    """A repeatable flag's values from one variable, comma-separated; a piece without ``=``
    continues a ``KEY=V1,V2`` item (``web_search=openai,deepseek``)."""
    items: list[str] = []
    for piece in (p.strip() for p in raw.split(",")):
        if not piece:
            continue
        if "=" not in piece and items and "=" in items[-1]:
            items[-1] += "," + piece
        else:
            items.append(piece)
    return items


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelguard",
        description="Check LLM API requests against a gateway's model catalog.",
    )
    parser.add_argument("--version", action="version",
                        version=f"modelguard {__version__} ({DISTRIBUTION})")
    parser.set_defaults(command=None)
    commands = parser.add_subparsers(title="commands")
    check = commands.add_parser(
        "check", help="check request files; exit 0 all allowed, 1 any refused, 2 bad input",
        description="Each FILE holds one request {method, path, headers, body} as a JSON "
                    "document, or JSON Lines of them (body: JSON, a string, or body_base64 "
                    "for bytes such as multipart uploads); a directory means its .json/.jsonl "
                    "files; - reads standard input.",
    )
    check.add_argument("files", nargs="*", metavar="FILE")
    check.add_argument("--catalog", metavar="FILE|URL",
                       help="catalog JSON file, or the gateway's base URL (fetched with "
                            "BYTESPIKE_API_KEY); default: the bundled sample snapshot")
    check.add_argument("--json", action="store_true", help="print JSON Lines, one per request")
    _route_options(check)
    _action_arguments(check)
    check.set_defaults(command="check", run=_check)

    listing = commands.add_parser(
        "catalog", help="show the models the current key may use",
        description="Fetch GET /v1/models with BYTESPIKE_API_KEY and filter it locally.",
    )
    listing.add_argument("--base-url", metavar="URL",
                         help=f"gateway base URL (default: $BYTESPIKE_BASE_URL or {DEFAULT_BASE})")
    listing.add_argument("--capability", action="append", default=[], metavar="TAG",
                         help="only models with this tag (repeat: all of them)")
    listing.add_argument("--family", metavar="NAME", help="only this family or vendor")
    listing.add_argument("--json", action="store_true", help="print the filtered JSON listing")
    listing.set_defaults(command="catalog", run=_catalog)

    serve = commands.add_parser(
        "serve", help="run a guarded reverse proxy in front of an LLM gateway",
        description="A sidecar for clients you cannot change: point their base URL here. "
                    "Requests on the guarded routes are checked against the catalog and "
                    "refused in the protocol's own error shape; everything else, and every "
                    "allowed request, is forwarded to --upstream unchanged (the caller's "
                    "credentials included) and the response streamed back as it arrives. "
                    "GET /livez, /readyz, /healthz and /metrics are the sidecar's own; "
                    "SIGHUP reloads a --catalog file. Every option can also come from the "
                    "environment variable named in brackets (the command line wins). Needs "
                    f"the serve extra: pip install '{DISTRIBUTION}[serve]'.",
    )
    serve.add_argument("--upstream", metavar="URL",
                       help="the gateway to forward to, e.g. https://llm.bytespike.ai")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    serve.add_argument("--catalog", metavar="FILE|URL",
                       help="catalog JSON file, or a gateway base URL fetched with each "
                            "caller's key; default: the upstream, with each caller's key")
    serve.add_argument("--connect-timeout", type=_seconds, default=10.0, metavar="S",
                       help="seconds to connect to the upstream; unreachable -> 502 "
                            "(default: 10)")
    serve.add_argument("--read-timeout", type=_seconds, default=600.0, metavar="S",
                       help="seconds to wait for the upstream's next bytes; exceeded -> 504, "
                            "or a stream cut short (default: 600)")
    serve.add_argument("--mode", choices=("enforce", "report"), default="enforce",
                       help="enforce refuses; report only logs and counts (default: enforce)")
    serve.add_argument("--shutdown-timeout", type=_seconds, default=30.0, metavar="S",
                       help="on SIGTERM, seconds to let requests in flight finish (default: 30)")
    serve.add_argument("--log-level", default="info",
                       choices=("critical", "error", "warning", "info", "debug"),
                       help="log level (default: info)")
    serve.add_argument("--log-format", default="json", choices=("json", "text"),
                       help="every log line on stderr as one JSON object, or as text "
                            "(default: json)")
    _route_options(serve)
    serve.add_argument("--websockets", choices=("refuse", "pass"), default="refuse",
                       help="websockets to guarded routes: refuse (HTTP 403 before accept) or "
                            "pass; the sidecar itself never proxies websockets "
                            "(default: refuse)")
    _action_arguments(serve)
    serve.set_defaults(command="serve", run=_serve)
    _environment_flags(serve)

    doctor = commands.add_parser(
        "doctor", help="print versions, the accelerator and the HTTP stack",
        description="What a bug report needs: modelguard's version, Python, whether the C "
                    "accelerator is in use, and the versions of the libraries modelguard "
                    "runs on (none of them is imported for long: this is safe anywhere).",
    )
    doctor.add_argument("--json", action="store_true", help="print one JSON object")
    doctor.set_defaults(command="doctor", run=_doctor)
    return parser


def _route_options(command: argparse.ArgumentParser) -> None:
    """The route settings of routes.md, shared by ``check`` and ``serve``."""
    command.add_argument("--embeddings", action="store_true",
                         help="also guard POST /v1/embeddings (the model must be in the "
                              "catalog)")
    command.add_argument("--tool-vendor", action="append", default=[], type=_tool_vendor,
                         metavar="TOOL=OWNER[,OWNER]", dest="tool_vendors",
                         help="owners whose models may run a server-run tool type, e.g. "
                              "web_search=openai,deepseek (repeatable; overrides the "
                              "default vendor of that tool type)")
    command.add_argument("--stored-state", choices=("allow", "refuse"), default="allow",
                         help="Responses stored conversation state (previous_response_id, "
                              "conversation, item_reference): allow or refuse "
                              "(default: allow)")
    command.add_argument("--disable-family", action="append", default=[], metavar="FAMILY",
                         choices=sorted(FAMILIES),
                         help="do not guard this route family (repeatable): "
                              + ", ".join(sorted(FAMILIES)))


def _tool_vendor(value: str) -> tuple[str, tuple[str, ...]]:
    tool, sep, owners = value.partition("=")
    names = tuple(o.strip() for o in owners.split(",") if o.strip())
    if not sep or not tool.strip() or not names:
        raise argparse.ArgumentTypeError(f"expected TOOL=OWNER[,OWNER], not {value!r}")
    return tool.strip(), names


def _route_settings(args: argparse.Namespace) -> dict[str, Any]:
    vendors: dict[str, set[str]] = {}
    for tool, owners in args.tool_vendors:
        vendors.setdefault(tool, set()).update(owners)
    return {"embeddings": args.embeddings, "tool_vendors": vendors,
            "stored_state": args.stored_state,
            "route_families": {name: False for name in args.disable_family}}
def _action_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--actions", metavar="PRESET", choices=tuple(PRESETS),
        help="start from a named set of actions: compat = strip cache_control and thinking, "
             "clamp max_tokens (for agent CLIs on mixed catalogs)")
    command.add_argument(
        "--action", action="append", default=[], metavar="KEY=ACTION",
        help="what to do instead of refusing: KEY is a capability tag or max_tokens, ACTION "
             "refuse, allow, strip (cache_control, thinking) or clamp (max_tokens); "
             "repeatable, applied after --actions")


def _actions(args: argparse.Namespace, command: str) -> dict[str, str] | None:
    """The actions the flags ask for; None (after a message) when they are not valid."""
    chosen: dict[str, str] = dict(PRESETS[args.actions]) if args.actions else {}
    for item in args.action:
        key, sep, action = item.partition("=")
        if not sep or not key.strip() or not action.strip():
            print(f"modelguard {command}: --action takes KEY=ACTION, not {item!r}",
                  file=sys.stderr)
            return None
        chosen[key.strip()] = action.strip()
    try:
        resolve_actions(chosen)
    except ValueError as exc:
        print(f"modelguard {command}: {exc}", file=sys.stderr)
        return None
    return chosen


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {value!r}")
    return seconds


DEFAULT_BASE = "https://llm.bytespike.ai"


def _is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def _remote(base_url: str, command: str) -> RemoteCatalog | None:
    key = os.environ.get("BYTESPIKE_API_KEY")
    if not key:
        print(f"modelguard {command}: set BYTESPIKE_API_KEY to fetch the catalog from "
              f"{base_url}", file=sys.stderr)
        return None
    return RemoteCatalog(base_url, api_key=key)


def _check(args: argparse.Namespace) -> int:
    if not args.files:
        print("modelguard check: name at least one FILE (or - for standard input)",
              file=sys.stderr)
        return EXIT_USAGE
    actions = _actions(args, "check")
    if actions is None:
        return EXIT_USAGE
    if args.catalog and _is_url(args.catalog):
        source: object = _remote(args.catalog, "check")
        if source is None:
            return EXIT_USAGE
    else:
        try:
            source = Catalog.from_file(args.catalog) if args.catalog else Catalog.default()
        except CatalogError as exc:
            print(f"modelguard check: {exc}", file=sys.stderr)
            return EXIT_USAGE
    guard = Guard(source, actions=actions, **_route_settings(args))
    return asyncio.run(_check_all(guard, args.files, args.json, sys.stdout))


async def _check_all(guard: Guard, files: Sequence[str], as_json: bool, out: TextIO) -> int:
    refused = unreadable = False
    try:
        for item in _requests(files):
            if isinstance(item, InputError):
                print(f"modelguard check: {item}", file=sys.stderr)
                unreadable = True
                continue
            verdict = await guard.check(item.method, item.target, item.headers, item.body)
            refused |= not verdict.allowed
            print(_report(item, verdict, as_json), file=out)
    finally:
        close = getattr(guard.source, "aclose", None)
        if close is not None:
            await close()
    if unreadable:
        return EXIT_USAGE
    return EXIT_REFUSED if refused else EXIT_OK


def _catalog(args: argparse.Namespace) -> int:
    base_url = args.base_url or os.environ.get("BYTESPIKE_BASE_URL") or DEFAULT_BASE
    source = _remote(base_url, "catalog")
    if source is None:
        return EXIT_USAGE
    try:
        catalog = asyncio.run(_fetch(source))
    except CatalogUnavailable as error:
        print(f"modelguard catalog: {base_url}: {error.message}", file=sys.stderr)
        return EXIT_REFUSED
    models = catalog.select(args.capability, args.family)
    if args.json:
        print(json.dumps(Catalog.listing(models), indent=2))
    else:
        print(_table(models))
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    actions = _actions(args, "serve")
    if actions is None:
        return EXIT_USAGE
    try:
        import uvicorn

        from .serve.sidecar import configure_logging, create_app
    except ImportError as exc:
        print(f"modelguard serve: needs the serve extra (pip install '{DISTRIBUTION}[serve]'): "
              f"{exc}", file=sys.stderr)
        return EXIT_USAGE
    catalog: object = None
    if args.catalog and _is_url(args.catalog):
        catalog = RemoteCatalog(args.catalog)
    elif args.catalog:
        catalog = args.catalog  # a file: the sidecar reads it (again on SIGHUP)
    try:
        app = create_app(args.upstream, catalog, connect_timeout=args.connect_timeout,
                         read_timeout=args.read_timeout, mode=args.mode,
                         websockets=args.websockets, actions=actions, **_route_settings(args))
    except ValueError as exc:  # CatalogError included
        print(f"modelguard serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(args.log_level, args.log_format)
    uvicorn.run(
        app, host=args.host, port=args.port, log_level=args.log_level, lifespan="on",
        log_config=None,     # configure_logging: one format for every line on stderr
        access_log=False,    # modelguard.access logs each request, with keys masked
        server_header=False, date_header=False,  # the upstream's own headers pass through
        timeout_graceful_shutdown=args.shutdown_timeout,
    )
    return EXIT_OK


def _doctor(args: argparse.Namespace) -> int:
    report = doctor_report()
    if args.json:
        print(json.dumps(report, indent=2))
        return EXIT_OK
    width = max(len(name) for name in report)
    for name, value in report.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v or '-'}" for k, v in value.items())
        print(f"{name.ljust(width)}  {value}")
    return EXIT_OK


def doctor_report() -> dict[str, Any]:
    """Versions, the accelerator and the HTTP stack (for bug reports; no network)."""
    from . import ACCELERATED

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {
        "modelguard": f"{__version__} ({DISTRIBUTION})",
        "python": f"{platform.python_version()} ({platform.python_implementation()}, "
                  f"{platform.system()} {platform.machine()})",
        "accelerator": "C (modelguard._strictjson)" if ACCELERATED
        else "none (pure-Python decoder: same answers, slower)",
        "http client": {name: version(name) for name in ("httpx2", "httpcore2", "httpx", "h11",
                                                           "h2")},
        "server": {name: version(name) for name in ("starlette", "uvicorn", "httptools",
                                                    "uvloop")},
        "libraries": {name: version(name) for name in ("pydantic", "jiter", "cachetools",
                                                       "prometheus_client", "redis")},
    }


async def _fetch(source: RemoteCatalog) -> Catalog:
    try:
        return await source.catalog_for(None)
    finally:
        await source.aclose()


def _table(models: Sequence[ModelInfo]) -> str:
    rows = [("ID", "OWNED BY", "FAMILY", "CONTEXT", "MAX OUT", "CAPABILITIES")]
    for m in models:
        rows.append((m.id, m.owned_by or "-", m.family or "-", _num(m.context_window),
                     _num(m.max_output_tokens),
                     ",".join(c for c in m.capabilities if c != "text") or "text"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
             for row in rows]
    lines.append(f"{len(models)} model{'s' if len(models) != 1 else ''}")
    return "\n".join(lines)


def _num(value: int | None) -> str:
    return "-" if value is None else str(value)


def _report(item: Request, verdict: Verdict, as_json: bool) -> str:
    if as_json:
        return json.dumps({
            "source": item.source,
            "allowed": verdict.allowed,
            "status": verdict.status,
            "error": verdict.error,
            "protocol": verdict.protocol,
            "route": verdict.route,
            "model": verdict.model_id,
            "required": sorted(verdict.required),
            "violations": [{"reason": v.reason, "key": v.key, "path": v.path,
                            "action": v.action} for v in verdict.violations],
            "adjustments": list(verdict.adjustments),
        })
    if not verdict.guarded:
        return f"{item.source}: pass (not a guarded route)"
    if verdict.allowed:
        needs = ", ".join(sorted(verdict.required)) or "text only"
        adjusted = f" adjusted: {verdict.adjusted_header}" if verdict.adjustments else ""
        return (f"{item.source}: allowed {verdict.protocol} {verdict.route} {verdict.model_id} "
                f"[{needs}]{adjusted}")
    message = verdict.error["error"]["message"] if verdict.error else ""
    return f"{item.source}: REFUSED {verdict.status} {verdict.token}: {message}"


def _requests(names: Sequence[str]) -> Iterator[Request | InputError]:
    for name in names:
        if name == "-":
            yield from _parse("<stdin>", sys.stdin.read())
            continue
        path = Path(name)
        files = sorted(p for p in path.rglob("*") if p.suffix in _SUFFIXES and p.is_file()) \
            if path.is_dir() else [path]
        for file in files:
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                yield InputError(f"cannot read {file}: {exc}")
                continue
            yield from _parse(str(file), text)


def _parse(source: str, text: str) -> Iterator[Request | InputError]:
    try:
        docs = [(source, json.loads(text))]
    except ValueError:
        docs = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                docs.append((f"{source}:{number}", json.loads(line)))
            except ValueError as exc:
                yield InputError(f"{source}:{number}: not JSON ({exc})")
    for where, doc in docs:
        try:
            yield _request(where, doc)
        except InputError as exc:
            yield exc


def _request(source: str, doc: Any) -> Request:
    if not isinstance(doc, dict) or not isinstance(doc.get("path"), str):
        raise InputError(f"{source}: expected an object with at least a string 'path'")
    body = doc.get("body")
    encoded = doc.get("body_base64")
    if encoded is not None:
        if body is not None or not isinstance(encoded, str):
            raise InputError(f"{source}: 'body_base64' must be a string, without 'body'")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except ValueError:
            raise InputError(f"{source}: 'body_base64' is not base64") from None
    elif body is None:
        raw = b""
    elif isinstance(body, str):
        raw = body.encode("utf-8", "surrogatepass")
    else:
        raw = json.dumps(body).encode()
    headers = doc.get("headers") or {}
    if not isinstance(headers, (dict, list)):
        raise InputError(f"{source}: 'headers' must be an object or a list of pairs")
    method = doc.get("method", "POST")
    if not isinstance(method, str):
        raise InputError(f"{source}: 'method' must be a string")
    return Request(source, method, doc["path"], headers, raw)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
