"""`fairwatt simulate` end to end on a slice of the example files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fairwatt.cli import main
from tests.simulation.test_engine import STATION as TINY_STATION

ROOT = Path(__file__).resolve().parents[2]
STATION = str(ROOT / "examples" / "station.yaml")
SESSIONS = str(ROOT / "examples" / "acn-caltech-2019-03" / "sessions.csv")
SATURDAY = ["--from", "2019-03-02", "--days", "1"]  # 13 sessions


def simulate(*extra: str) -> list[str]:
    return ["simulate", "--config", STATION, "--sessions", SESSIONS, *extra]


def test_table_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(simulate(*SATURDAY, "--algorithm", "llf")) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("station caltech-acn  algorithm llf  grid limit 150 kW")
    day = next(line for line in lines if line.startswith("2019-03-02"))
    assert day.split()[1] == "13"  # sessions
    assert any(line.startswith("overall") for line in lines)
    limits = lines[lines.index(next(li for li in lines if li.startswith("highest utilisation"))) + 1 :]
    assert [li.split()[0] for li in limits][:1] == ["transformer"]
    assert all(float(li.split()[-1]) <= 1.0 for li in limits)


def test_json_report_and_progress_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(simulate(*SATURDAY, "--algorithm", "edf", "--json", "--progress")) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert "100%" in captured.err
    assert report["algorithm"] == "edf"
    assert [d["label"] for d in report["days"]] == ["2019-03-02"]
    overall = report["overall"]
    assert overall["sessions"] == 13
    assert 0 < overall["energy_delivered_pct"] <= 100
    assert 0 < overall["jain_index"] <= 1
    assert set(overall["max_utilisation"]) >= {
        "transformer L1",
        "transformer primary L2",
        "cc-pod L1",
        "site kW",
    }
    assert max(overall["max_utilisation"].values()) <= 1.0


def test_cap_override_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plot = tmp_path / "day.png"
    assert (
        main(simulate(*SATURDAY, "--algorithm", "offline", "--cap-kw", "10", "--json", "--plot", str(plot)))
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["grid_limit_kw"] == 10.0
    assert report["overall"]["peak_kw"] <= 10.0 + 1e-6
    assert max(report["overall"]["max_utilisation"].values()) <= 1.0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_yaml_prints_file_line_column_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "station.yaml"
    bad.write_text(Path(STATION).read_text().replace("max_current_a: 32", "max_current_a: abc"))
    done = subprocess.run(
        [sys.executable, "-m", "fairwatt.cli", "simulate", "--config", str(bad), "--sessions", SESSIONS],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(f"fairwatt: error: {bad}:")
    assert ": station.evses[0].max_current_a: expected a number [A], got 'abc'" in done.stderr
    line, column = done.stderr.split(f"{bad}:")[1].split(":")[:2]
    assert bad.read_text().splitlines()[int(line) - 1][int(column) - 1 :] == "abc"  # points at the value


def test_bad_csv_names_line_and_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = Path(SESSIONS).read_text().splitlines()
    rows[2] = rows[2].replace(",6.6", ",fast")
    bad = tmp_path / "sessions.csv"
    bad.write_text("\n".join(rows[:5]) + "\n")
    assert main(["simulate", "--config", STATION, "--sessions", str(bad)]) == 1
    assert (
        capsys.readouterr().err == f"fairwatt: error: {bad}:3: max_power_kw: expected a number, got 'fast'\n"
    )


def test_unknown_evse_in_csv_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = Path(SESSIONS).read_text().splitlines()
    rows[3] = rows[3].replace("CA-319", "CA-999")
    bad = tmp_path / "sessions.csv"
    bad.write_text("\n".join(rows[:5]) + "\n")
    assert main(["simulate", "--config", STATION, "--sessions", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:4: station_id: EVSE 'CA-999' is not in the station config" in err


def test_conflicting_day_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(simulate("--days", "2", "--to", "2019-03-05")) == 1
    assert "give --days or --to, not both" in capsys.readouterr().err


def test_cars_without_an_evse_take_a_free_one_or_are_turned_away(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    station = tmp_path / "two.yaml"
    station.write_text(TINY_STATION)  # two EVSEs, A and B, under 7.2 kW
    sessions = tmp_path / "arrivals.csv"
    sessions.write_text(
        "arrival,departure,estimated_departure,requested_energy_kwh\n"
        "2019-03-04T08:00,2019-03-04T10:00,2019-03-04T10:00,6\n"
        "2019-03-04T08:30,2019-03-04T10:00,2019-03-04T10:00,3\n"
        "2019-03-04T09:00,2019-03-04T11:00,2019-03-04T11:00,4.5\n"  # both EVSEs taken until 10:00
        "2019-03-04T10:00,2019-03-04T11:00,2019-03-04T11:00,2\n"  # arrives as the first two leave
    )
    command = ["simulate", "--config", str(station), "--sessions", str(sessions)]
    assert main([*command, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["overall"]["sessions"] == 3
    assert report["overall"]["energy_delivered_pct"] == pytest.approx(100.0)  # 11 kWh fit under 7.2 kW
    assert report["turned_away"] == [
        {
            "session_id": "line-4",
            "line": 4,
            "arrival": "2019-03-04T09:00:00+00:00",
            "requested_energy_kwh": 4.5,
        }
    ]
    assert main(command) == 0
    assert (
        "1 sessions turned away, every EVSE taken when they arrived (file lines 4); "
        "their 4.5 kWh are not in the figures above" in capsys.readouterr().out
    )


def test_the_caltech_month_without_its_evses_is_placed_on_the_station(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [r.split(",") for r in Path(SESSIONS).read_text().splitlines()]
    blank = tmp_path / "sessions.csv"
    # the header keeps its station_id column; every row's cell is empty
    lines = [",".join([r[0], r[1] if k == 0 else "", *r[2:]]) for k, r in enumerate(rows)]
    blank.write_text("\n".join(lines) + "\n")
    assert main(["simulate", "--config", STATION, "--sessions", str(blank), *SATURDAY, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["overall"]["sessions"] == 13  # 54 EVSEs: nobody is turned away on a Saturday
    assert report["turned_away"] == []
    assert max(report["overall"]["max_utilisation"].values()) <= 1.0


def test_the_demand_charge_is_reported_per_month(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The tiny station (240 V EVSEs) on a 10 kW grid at 10 per kW of each month's peak. In March one
    # car must draw the whole 7.2 kW for an hour (7.2 kWh in 08:00-09:00): 72.00. On 1 April a new
    # billing period starts: a car wanting 3.6 kWh over 4 h is spread to about 0.9 kW.
    station = tmp_path / "tiny.yaml"
    station.write_text(
        TINY_STATION.replace("grid_limit_kw: 7.2", "grid_limit_kw: 10\n  demand_charge_per_kw: 10")
    )
    sessions = tmp_path / "s.csv"
    sessions.write_text(
        "session_id,evse_id,arrival,departure,estimated_departure,requested_energy_kwh\n"
        "p1,A,2019-03-31T08:00,2019-03-31T09:00,2019-03-31T09:00,7.2\n"
        "p2,A,2019-04-01T08:00,2019-04-01T12:00,2019-04-01T12:00,3.6\n"
    )
    args = ["simulate", "--config", str(station), "--sessions", str(sessions)]
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    march, april = report["demand_charges"]
    assert (march["month"], march["peak_kw"], march["charge"]) == ("2019-03", pytest.approx(7.2), 72.0)
    assert april["month"] == "2019-04"
    assert 0.9 - 1e-6 <= april["peak_kw"] < 2.0  # 3.6 kWh over 4 h is 0.9 kW, plus rounding's hand-back
    assert april["charge"] == pytest.approx(10 * april["peak_kw"], abs=0.01)
    assert main(args) == 0
    line = next(li for li in capsys.readouterr().out.splitlines() if li.startswith("demand charge"))
    assert "2019-03 7.2 kW = 72.00" in line


def test_each_session_is_reported_and_the_ones_left_short_are_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the engine tests' station: 7.2 kW for two 240 V EVSEs. s1 and s2 need 6 kWh each in the same
    # 2 h (14.4 kWh of room): served. s3 needs 10 kWh in the next hour: 7.2 kWh at most
    from tests.simulation.test_engine import SESSIONS as TINY_SESSIONS

    station, sessions = tmp_path / "tiny.yaml", tmp_path / "s.csv"
    station.write_text(TINY_STATION)
    sessions.write_text(TINY_SESSIONS)
    args = ["simulate", "--config", str(station), "--sessions", str(sessions)]
    assert main([*args, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["sessions"]
    assert [(r["session_id"], r["line"], r["evse_id"]) for r in rows] == [
        ("s1", 2, "A"),
        ("s2", 3, "B"),
        ("s3", 4, "A"),
    ]
    s1, s2, s3 = rows
    assert (s1["arrival"], s1["departure"]) == ("2019-03-04T08:00:00+00:00", "2019-03-04T10:00:00+00:00")
    assert s1["requested_kwh"] == s2["requested_kwh"] == 6.0
    assert s1["served_pct"] == s2["served_pct"] == 100.0
    assert 7.0 <= s3["delivered_kwh"] <= 7.2 + 1e-3
    assert s3["served_pct"] == pytest.approx(100 * s3["delivered_kwh"] / 10.0, abs=0.01)
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    at = lines.index("1 session got less than 99 % of its request:")
    assert lines[at + 1].split()[:5] == ["line", "4", "s3", "A", "2019-03-04T10:00"]
    assert lines[at + 1].endswith(f"{s3['delivered_kwh']:.2f} of 10.00 kWh ({s3['served_pct']:.1f} %)")
