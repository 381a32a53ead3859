"""Log output of the ``fairwatt`` command: readable lines, or one JSON object per line (``--log-json``).

A JSON line carries ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message`` and, where the
record names them, ``charger_id``, ``station_id`` and ``session_id``: taken from the record's
``extra`` fields when a caller passed them, else from the house style's message shape
(``"charger %s: ..."``, ``"station %s: ..."``, ``"session %s ..."``, or a session's UUID anywhere
after the word ``session``), so every existing log line of a charger is attributed without touching
its call site. Exceptions go in ``exception``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

READABLE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
ENV_JSON = "FAIRWATT_LOG_JSON"
_SESSION_UUID = re.compile(r"\bsession ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b")
_SUBJECTS = (("charger", "charger_id"), ("station", "station_id"), ("session", "session_id"))


def subjects_of(record: logging.LogRecord) -> dict[str, str]:
    """The charger, station and session a record is about (explicit ``extra`` wins over its message)."""
    found: dict[str, str] = {}
    for _, field in _SUBJECTS:
        value = getattr(record, field, None)
        if value is not None:
            found[field] = str(value)
    template = record.msg if isinstance(record.msg, str) else ""
    args = record.args if isinstance(record.args, tuple) else ()
    for word, field in _SUBJECTS:
        if field in found or not args:
            continue
        lowered = template.lower()
        if lowered.startswith(f"{word} %s") or lowered.startswith(f"{word} %r"):
            found[field] = str(args[0])
    if "session_id" not in found:  # "... of session 5f0c...": a session id anywhere in the message
        match = _SESSION_UUID.search(record.getMessage())
        if match is not None:
            found["session_id"] = match.group(1)
    return found


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **subjects_of(record),
        }
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


def wants_json(flag: bool, environ: Mapping[str, str] = os.environ) -> bool:
    return flag or environ.get(ENV_JSON, "").lower() in {"1", "true", "yes"}


def configure_logging(level: int, *, json_lines: bool, stream: TextIO | None = None) -> None:
    """Set the root logger up for the command's run (unless the host, e.g. pytest, already did)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(READABLE_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])  # a no-op when logging is already set up
