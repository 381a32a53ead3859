"""Reading sessions CSVs: both formats, the epoch, and errors with file, line and field."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from fairwatt.errors import FairwattError
from fairwatt.simulation import SessionsFileError, parse_sessions, read_sessions
from fairwatt.simulation.sessions import ANY_EVSE

LA = ZoneInfo("America/Los_Angeles")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "acn-caltech-2019-03" / "sessions.csv"
HEADER = (
    "session_id,station_id,arrival_period,departure_period,estimated_departure_period,"
    "requested_energy_kwh,max_power_kw\n"
)


def error_of(text: str, **kwargs: object) -> SessionsFileError:
    with pytest.raises(SessionsFileError) as caught:
        parse_sessions(text, "s.csv", LA, **kwargs)  # type: ignore[arg-type]
    return caught.value


def test_the_caltech_file_reads_with_the_default_epoch() -> None:
    records = read_sessions(EXAMPLE, LA)
    assert len(records) == 954
    first = records[0]
    # period 76 after 2019-03-01 00:00 PST is 06:20 PST (the session id says 14:24:58 UTC)
    assert first.arrival == datetime(2019, 3, 1, 14, 20, tzinfo=UTC)
    assert first.departure == datetime(2019, 3, 1, 15, 40, tzinfo=UTC)
    assert first.estimated_departure == first.departure
    assert (first.evse_id, first.requested_energy_kwh, first.max_power_kw) == ("CA-315", 4.216, 6.6)
    assert first.line == 2


def test_periods_count_elapsed_time_across_daylight_saving() -> None:
    # 2019-03-10 has 23 local hours: period 288 * 10 is 2019-03-11 01:00 PDT, 08:00 UTC
    text = HEADER + "a,X,2880,2892,,5,\n"
    (record,) = parse_sessions(text, "s.csv", LA)
    assert record.arrival == datetime(2019, 3, 11, 8, tzinfo=UTC)
    assert record.estimated_departure is None
    assert record.max_power_kw is None


def test_epoch_and_period_from_comment_lines_and_argument() -> None:
    text = "# epoch: 2020-01-01T00:00\n# period_s: 900\n" + HEADER + "a,X,4,8,8,5,7\n"
    (record,) = parse_sessions(text, "s.csv", LA)
    assert record.arrival == datetime(2020, 1, 1, 9, tzinfo=UTC)  # 01:00 PST
    assert record.line == 4
    override = datetime(2021, 6, 1, tzinfo=UTC)
    (record,) = parse_sessions(text, "s.csv", LA, epoch=override)
    assert record.arrival == datetime(2021, 6, 1, 1, tzinfo=UTC)


def test_timestamp_format_reads_local_or_offset_times() -> None:
    text = (
        "evse_id,arrival,departure,estimated_departure,requested_energy_kwh\n"
        "A,2019-03-04T08:00,2019-03-04T17:00,2019-03-04T16:00,12.5\n"
        "B,2019-03-04T09:00+00:00,2019-03-04T10:00Z,,3\n"
    )
    first, second = parse_sessions(text, "s.csv", LA)
    assert first.arrival == datetime(2019, 3, 4, 16, tzinfo=UTC)
    assert first.estimated_departure == datetime(2019, 3, 5, 0, tzinfo=UTC)
    assert first.session_id == "line-2"
    assert second.arrival == datetime(2019, 3, 4, 9, tzinfo=UTC)
    assert second.estimated_departure is None


def test_bad_number_names_line_and_field() -> None:
    error = error_of(HEADER + "a,X,1,5,5,5,7\nb,X,6,9,9,lots,7\n")
    assert str(error) == "s.csv:3: requested_energy_kwh: expected a number, got 'lots'"
    assert isinstance(error, FairwattError)


def test_bad_period_and_time() -> None:
    assert str(error_of(HEADER + "a,X,one,5,5,5,7\n")).startswith("s.csv:2: arrival_period: expected a whole")
    text = "evse_id,arrival,departure,requested_energy_kwh\nA,yesterday,2019-03-04T10:00,3\n"
    assert str(error_of(text)).startswith("s.csv:2: arrival: expected an ISO 8601 time")


def test_departure_before_arrival_and_missing_values() -> None:
    assert (
        str(error_of(HEADER + "a,X,9,5,5,5,7\n"))
        == "s.csv:2: departure_period: departure must be after arrival"
    )


def test_a_session_without_an_evse_reads_as_any_evse() -> None:
    (blank,) = parse_sessions(HEADER + "a,,1,5,5,5,7\n", "s.csv", LA, known_evse_ids=("X",))
    assert blank.evse_id == ANY_EVSE
    text = "arrival,departure,requested_energy_kwh\n2019-03-04T08:00,2019-03-04T10:00,5\n"
    (no_column,) = parse_sessions(text, "s.csv", LA, known_evse_ids=("X",))
    assert (no_column.evse_id, no_column.requested_energy_kwh) == (ANY_EVSE, 5.0)


def test_wrong_field_count_and_header() -> None:
    assert str(error_of(HEADER + "a,X,1,5\n")) == "s.csv:2: expected 7 fields, got 4"
    assert "unknown header" in str(error_of("who,when\nme,now\n"))
    assert error_of("").detail == "the file has no header line"


def test_a_missing_energy_column_names_the_header_line_and_a_look_alike() -> None:
    # the header follows a comment line: the error points at the header, and at the column the
    # user probably meant
    text = "# period_s: 300\narrival,departure,energy_kwh\n2026-03-02T08:00,2026-03-02T12:00,30\n"
    assert str(error_of(text)) == (
        "s.csv:2: missing column 'requested_energy_kwh' (the file has 'energy_kwh': rename it?)"
    )
    unlike = error_of("arrival,departure,kwh\n2026-03-02T08:00,2026-03-02T12:00,30\n")
    assert str(unlike) == "s.csv:1: missing column 'requested_energy_kwh'"


def test_unknown_evse_and_repeated_session() -> None:
    error = error_of(HEADER + "a,X,1,5,5,5,7\nb,CA-31,1,5,5,5,7\n", known_evse_ids=("X", "CA-315"))
    assert error.line == 3
    assert error.field == "station_id"
    assert "EVSE 'CA-31' is not in the station config (did you mean 'CA-315'?)" in str(error)
    error = error_of(HEADER + "a,X,1,5,5,5,7\na,X,6,9,9,5,7\n")
    assert str(error) == "s.csv:3: session_id: session id 'a' repeats line 2"


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(SessionsFileError, match="cannot read the file"):
        read_sessions(tmp_path / "nope.csv", LA)
