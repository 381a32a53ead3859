"""Read charging sessions from CSV.

Two formats, told apart by the header:

* periods (the ACN-Sim export): ``session_id,station_id,arrival_period,departure_period,
  estimated_departure_period,requested_energy_kwh,max_power_kw`` with periods of
  ``period_s`` (default 300 s) elapsed since an epoch. The epoch comes from ``--epoch``,
  else a leading ``# epoch: 2019-03-01T00:00`` comment line, else 2019-03-01 00:00 in the
  station's time zone (the ACN data's); ``# period_s: 300`` sets the period likewise.
* timestamps: ``arrival,departure,requested_energy_kwh`` plus optional ``session_id``,
  ``evse_id`` (or ``station_id``), ``estimated_departure``, ``max_power_kw``; ISO 8601
  timestamps, read in the station's time zone when they carry no offset.

A session without an EVSE (no such column, or an empty cell) reads as ``ANY_EVSE``: the car
takes whichever EVSE is free when it arrives (``placement.place_sessions`` chooses).

Every error names the file, the line and the column.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from fairwatt.config.nodes import closest, suggestion
from fairwatt.simulation.errors import SessionsFileError

DEFAULT_PERIOD_S = 300
PERIOD_COLUMNS = ("arrival_period", "departure_period")
ANY_EVSE = ""  # a session's ``evse_id`` when the file names none: any free EVSE
TIMESTAMP_COLUMNS = ("arrival", "departure")


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One EV's visit as it really happened (times UTC).

    ``evse_id`` is ``ANY_EVSE`` when the file names none (``place_sessions`` then picks one);
    ``estimated_departure`` is what the driver told us (``None``: nothing; the policy's
    default stay applies); ``max_power_kw`` the car's own limit (``None``: the EVSE's).
    """

    session_id: str
    evse_id: str
    arrival: datetime
    departure: datetime
    estimated_departure: datetime | None
    requested_energy_kwh: float
    max_power_kw: float | None
    line: int


@dataclass(frozen=True, slots=True)
class _Meta:
    epoch: datetime | None
    period_s: int


def read_sessions(
    path: str | Path,
    time_zone: ZoneInfo,
    *,
    epoch: datetime | None = None,
    known_evse_ids: Collection[str] | None = None,
) -> tuple[SessionRecord, ...]:
    """Read a sessions CSV; raises ``SessionsFileError`` naming file, line and field."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise SessionsFileError(f"cannot read the file: {exc.strerror or exc}", file=name) from None
    except UnicodeDecodeError as exc:
        raise SessionsFileError(f"not UTF-8 text ({exc.reason})", file=name) from None
    return parse_sessions(text, name, time_zone, epoch=epoch, known_evse_ids=known_evse_ids)


def parse_sessions(
    text: str,
    name: str,
    time_zone: ZoneInfo,
    *,
    epoch: datetime | None = None,
    known_evse_ids: Collection[str] | None = None,
) -> tuple[SessionRecord, ...]:
    """Like :func:`read_sessions` for CSV text already in memory (``name`` appears in errors)."""
    meta = _read_meta(text, name, time_zone)
    rows = _rows(text)
    header = next(rows, None)
    if header is None:
        raise SessionsFileError("the file has no header line", file=name, line=1)
    line, columns = header
    columns = [c.strip() for c in columns]
    if all(c in columns for c in PERIOD_COLUMNS):
        start = epoch or meta.epoch or datetime(2019, 3, 1, tzinfo=time_zone)
        reader = _RowReader(name, columns, start.astimezone(UTC), meta.period_s, time_zone, line)
    elif all(c in columns for c in TIMESTAMP_COLUMNS):
        reader = _RowReader(name, columns, None, meta.period_s, time_zone, line)
    else:
        raise SessionsFileError(
            "unknown header: expected arrival_period,departure_period,... or arrival,departure,...",
            file=name,
            line=line,
        )
    out: list[SessionRecord] = []
    seen: dict[str, int] = {}
    known = set(known_evse_ids) if known_evse_ids is not None else None
    for line, values in rows:
        if not any(v.strip() for v in values):
            continue
        record = reader.record(line, values)
        if record.session_id in seen:
            raise SessionsFileError(
                f"session id {record.session_id!r} repeats line {seen[record.session_id]}",
                file=name,
                line=line,
                field="session_id",
            )
        seen[record.session_id] = line
        if known is not None and record.evse_id != ANY_EVSE and record.evse_id not in known:
            raise SessionsFileError(
                f"EVSE {record.evse_id!r} is not in the station config{suggestion(record.evse_id, known)}",
                file=name,
                line=line,
                field=reader.evse_column,
            )
        out.append(record)
    return tuple(out)


def _renamed(wanted: str, columns: Collection[str]) -> str:
    """`` (the file has 'x': rename it?)`` when a column looks like the one ``wanted``."""
    close = closest(wanted, columns)
    return f" (the file has '{close}': rename it?)" if close else ""


def _rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """CSV rows with their 1-based line numbers, comment lines (``#``) skipped."""
    reader = csv.reader(io.StringIO(text))
    while True:
        line = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        if values and values[0].lstrip().startswith("#"):
            continue
        yield line, values


def _read_meta(text: str, name: str, tz: ZoneInfo) -> _Meta:
    epoch: datetime | None = None
    period_s = DEFAULT_PERIOD_S
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped.startswith("#"):
            if stripped:
                break
            continue
        key, sep, value = stripped.lstrip("#").partition(":")
        key, value = key.strip(), value.strip()
        if not sep:
            continue
        if key == "epoch":
            epoch = _parse_time(value, tz, name, number, "epoch")
        elif key == "period_s":
            if not value.isdigit() or int(value) <= 0:
                raise SessionsFileError(
                    f"expected a whole number of seconds, got {value!r}",
                    file=name,
                    line=number,
                    field="period_s",
                )
            period_s = int(value)
    return _Meta(epoch, period_s)


def _parse_time(value: str, tz: ZoneInfo, name: str, line: int, field: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise SessionsFileError(
            f"expected an ISO 8601 time such as 2019-03-01T08:30, got {value!r}",
            file=name,
            line=line,
            field=field,
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(UTC)


class _RowReader:
    """Turns one row of either format into a ``SessionRecord``."""

    def __init__(
        self,
        name: str,
        columns: list[str],
        epoch: datetime | None,
        period_s: int,
        tz: ZoneInfo,
        header_line: int = 1,
    ) -> None:
        self.name = name
        self.columns = columns
        self.epoch = epoch
        self.period_s = period_s
        self.tz = tz
        self.evse_column = "station_id" if "station_id" in columns else "evse_id"
        if "requested_energy_kwh" not in columns:
            others = [c for c in columns if c not in (*PERIOD_COLUMNS, *TIMESTAMP_COLUMNS)]
            raise SessionsFileError(
                f"missing column 'requested_energy_kwh'{_renamed('requested_energy_kwh', others)}",
                file=name,
                line=header_line,
            )

    def _error(self, line: int, column: str, detail: str) -> SessionsFileError:
        return SessionsFileError(detail, file=self.name, line=line, field=column)

    def _time(
        self, line: int, fields: dict[str, str], column: str, *, optional: bool = False
    ) -> datetime | None:
        raw = fields.get(column, "").strip()
        if not raw:
            if optional:
                return None
            raise self._error(line, column, "missing value")
        if self.epoch is None:
            return _parse_time(raw, self.tz, self.name, line, column)
        try:
            period = int(raw)
        except ValueError:
            raise self._error(line, column, f"expected a whole number of periods, got {raw!r}") from None
        if period < 0:
            raise self._error(line, column, f"expected a period >= 0, got {raw!r}")
        return self.epoch + timedelta(seconds=self.period_s * period)

    def _number(
        self, line: int, fields: dict[str, str], column: str, *, optional: bool = False
    ) -> float | None:
        raw = fields.get(column, "").strip()
        if not raw:
            if optional:
                return None
            raise self._error(line, column, "missing value")
        try:
            value = float(raw)
        except ValueError:
            raise self._error(line, column, f"expected a number, got {raw!r}") from None
        if not math.isfinite(value) or value < 0:
            raise self._error(line, column, f"expected a number >= 0, got {raw!r}")
        return value

    def record(self, line: int, values: list[str]) -> SessionRecord:
        if len(values) != len(self.columns):
            raise SessionsFileError(
                f"expected {len(self.columns)} fields, got {len(values)}", file=self.name, line=line
            )
        fields = dict(zip(self.columns, values, strict=True))
        suffix = "_period" if self.epoch is not None else ""
        arrival = self._time(line, fields, "arrival" + suffix)
        departure = self._time(line, fields, "departure" + suffix)
        estimated = self._time(line, fields, "estimated_departure" + suffix, optional=True)
        assert arrival is not None
        assert departure is not None
        if departure <= arrival:
            raise self._error(line, "departure" + suffix, "departure must be after arrival")
        evse_id = fields.get(self.evse_column, ANY_EVSE).strip()
        requested = self._number(line, fields, "requested_energy_kwh")
        assert requested is not None
        max_power = self._number(line, fields, "max_power_kw", optional=True)
        if max_power == 0:
            raise self._error(line, "max_power_kw", "expected a number > 0, got '0'")
        session_id = fields.get("session_id", "").strip() or f"line-{line}"
        return SessionRecord(session_id, evse_id, arrival, departure, estimated, requested, max_power, line)
