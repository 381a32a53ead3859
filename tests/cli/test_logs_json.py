"""Structured logs: one JSON object per line with the charger, station and session a line is about."""

from __future__ import annotations

import io
import json
import logging
import sys

from fairwatt.logs import JsonFormatter, configure_logging, subjects_of, wants_json


def record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("csms.protocol.session", logging.WARNING, __file__, 1, msg, args, None)
    for key, value in extra.items():
        setattr(made, key, value)
    return made


def test_subjects_come_from_the_message_shape_or_extra_fields() -> None:
    assert subjects_of(record("charger %s: %s timed out", "CP-1", "Reset")) == {"charger_id": "CP-1"}
    assert subjects_of(record("station %s: solved in %.3f s", "depot", 0.1)) == {"station_id": "depot"}
    assert subjects_of(record("session %s failed", "5f0c")) == {"session_id": "5f0c"}
    assert subjects_of(record("stopped by signal")) == {}
    stop = record(
        "charger %s: stop of session %s not accepted", "CP-1", "5f0c2b1e-0000-4000-8000-00000000abcd"
    )
    assert subjects_of(stop) == {"charger_id": "CP-1", "session_id": "5f0c2b1e-0000-4000-8000-00000000abcd"}
    explicit = record("charger %s: stop", "CP-1", session_id="5f0c", charger_id="CP-9")
    assert subjects_of(explicit) == {"charger_id": "CP-9", "session_id": "5f0c"}


def test_a_json_line_per_record_with_its_exception() -> None:
    formatter = JsonFormatter()
    line = json.loads(formatter.format(record("charger %s: %s timed out", "CP-1", "Reset")))
    assert line["message"] == "charger CP-1: Reset timed out"
    assert (line["level"], line["logger"], line["charger_id"]) == ("WARNING", "csms.protocol.session", "CP-1")
    assert line["time"].endswith("+00:00")
    try:
        raise ValueError("boom")
    except ValueError:
        failed = record("station %s: cycle failed", "depot")
        failed.exc_info = sys.exc_info()
    document = json.loads(formatter.format(failed))
    assert "ValueError: boom" in document["exception"]


def test_the_switch_and_the_handler() -> None:
    assert wants_json(False, {"FAIRWATT_LOG_JSON": "1"})
    assert not wants_json(False, {})
    assert wants_json(True, {})
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    root.handlers.clear()
    stream = io.StringIO()
    try:
        configure_logging(logging.INFO, json_lines=True, stream=stream)
        logging.getLogger("csms.server").info("charger %s: connected with OCPP %s", "CP-2", "1.6")
    finally:
        root.handlers[:] = saved
        root.setLevel(level)
    assert json.loads(stream.getvalue())["charger_id"] == "CP-2"
