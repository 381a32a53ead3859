"""How the operations commands print: a readable table by default, the API's JSON with ``--json``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from fairwatt.client import OperatorClient, add_server_arguments


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """``--server``, ``--api-key-file`` and ``--json`` for a command that talks to a running server."""
    add_server_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the server's JSON (for scripts)")


def client(args: argparse.Namespace) -> OperatorClient:
    return OperatorClient.from_args(args)


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str) and len(value) >= 19 and value[10:11] in ("T", " ") and value[4:5] == "-":
        return _timestamp(value)
    if isinstance(value, dict | list):
        return json.dumps(value, default=str, separators=(",", ":"))
    return str(value)


def _timestamp(text: str) -> str:
    """A timestamp to the second, keeping its zone: ``2024-05-01 08:00:00 UTC`` (never a bare wall time)."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text[:19].replace("T", " ")
    shown = when.strftime("%Y-%m-%d %H:%M:%S")
    offset = when.utcoffset()
    if offset is None:
        return shown
    if not offset:
        return f"{shown} UTC"
    return f"{shown} {when.strftime('%z')[:3]}:{when.strftime('%z')[3:]}"


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], out: TextIO | None = None) -> None:
    """``rows`` as aligned columns under a header (``(none)`` for no rows)."""
    stream = out or sys.stdout
    if not rows:
        print("(none)", file=stream)
        return
    cells = [[cell(row.get(column)) for column in columns] for row in rows]
    widths = [max(len(c), *(len(r[k]) for r in cells)) for k, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip(), file=stream)
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip(), file=stream)


def fields(
    document: Mapping[str, Any], names: Iterable[str] | None = None, out: TextIO | None = None
) -> None:
    """``name: value`` lines of a document (its scalar fields, or ``names``)."""
    stream = out or sys.stdout
    keys = (
        list(names)
        if names is not None
        else [k for k, v in document.items() if not isinstance(v, dict | list)]
    )
    width = max((len(k) for k in keys), default=0)
    for key in keys:
        print(f"{key.ljust(width)}  {cell(document.get(key))}", file=stream)


def emit(args: argparse.Namespace, document: Any, readable: Callable[[Any], None]) -> None:
    if getattr(args, "json", False):
        json.dump(document, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        readable(document)


def command_outcome(document: Mapping[str, Any]) -> int:
    """Print a command's answer in one line; exit status 0 only when the charger accepted it."""
    status = f" ({document['status']})" if document.get("status") else ""
    error = f" {document['error_code']}" if document.get("error_code") else ""
    print(f"{document['charger_id']}: {document['action']} {document['outcome']}{status}{error}")
    return 0 if document.get("outcome") == "accepted" else 1


def read_network_texts(path: Path) -> dict[str, str]:
    """The network file(s) at ``path`` as ``name -> text`` (the names errors will report)."""
    from fairwatt.config.network import network_files

    return {str(file): file.read_text(encoding="utf-8") for file in network_files(path)}
