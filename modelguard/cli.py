"""The ``modelguard`` command line: check, catalog and serve."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .actions import PRESETS, resolve_actions
from .catalog import Catalog, CatalogError, ModelInfo
from .catalog.remote import RemoteCatalog
from .catalog.sources import CatalogUnavailable
from .guard import Guard
from .verdict import Verdict

__all__ = ["main"]

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


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return args.run(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelguard",
        description="Check LLM API requests against a gateway's model catalog.",
    )
    parser.set_defaults(command=None)
    commands = parser.add_subparsers(title="commands")
    check = commands.add_parser(
        "check", help="check request files; exit 0 all allowed, 1 any refused, 2 bad input",
        description="Each FILE holds one request {method, path, headers, body} as a JSON "
                    "document, or JSON Lines of them; a directory means its .json/.jsonl files; "
                    "- reads standard input.",
    )
    check.add_argument("files", nargs="*", metavar="FILE")
    check.add_argument("--catalog", metavar="FILE|URL",
                       help="catalog JSON file, or the gateway's base URL (fetched with "
                            "BYTESPIKE_API_KEY); default: the bundled sample snapshot")
    check.add_argument("--json", action="store_true", help="print JSON Lines, one per request")
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
                    "GET /healthz and GET /metrics are the sidecar's own. Needs the serve "
                    "extra: pip install 'modelguard[serve]'.",
    )
    serve.add_argument("--upstream", required=True, metavar="URL",
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
                       help="log level; access lines are JSON on stderr (default: info)")
    _action_arguments(serve)
    serve.set_defaults(command="serve", run=_serve)
    return parser


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
    return asyncio.run(_check_all(Guard(source, actions=actions), args.files, args.json,
                                  sys.stdout))


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
        print(f"modelguard serve: needs the serve extra (pip install 'modelguard[serve]'): "
              f"{exc}", file=sys.stderr)
        return EXIT_USAGE
    catalog: object = None
    if args.catalog and _is_url(args.catalog):
        catalog = RemoteCatalog(args.catalog)
    elif args.catalog:
        try:
            catalog = Catalog.from_file(args.catalog)
        except CatalogError as exc:
            print(f"modelguard serve: {exc}", file=sys.stderr)
            return EXIT_USAGE
    try:
        app = create_app(args.upstream, catalog, connect_timeout=args.connect_timeout,
                         read_timeout=args.read_timeout, mode=args.mode, actions=actions)
    except ValueError as exc:
        print(f"modelguard serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(args.log_level)
    uvicorn.run(
        app, host=args.host, port=args.port, log_level=args.log_level, lifespan="on",
        access_log=False,    # modelguard.access logs each request, with keys masked
        server_header=False, date_header=False,  # the upstream's own headers pass through
        timeout_graceful_shutdown=args.shutdown_timeout,
    )
    return EXIT_OK


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
        return (f"{item.source}: allowed {verdict.protocol} {verdict.model_id} [{needs}]"
                f"{adjusted}")
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
    if body is None:
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
