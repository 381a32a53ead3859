"""`fairwatt plan`: one instant of the example station, its profiles and its LP."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import highspy
import numpy as np
import pytest

from fairwatt.cli import main
from fairwatt.config import load_station
from optimizer.network import Network
from optimizer.profile_schema import validate_v16, validate_v201

ROOT = Path(__file__).resolve().parents[2]
STATION = str(ROOT / "examples" / "station.yaml")
SESSIONS = str(ROOT / "examples" / "acn-caltech-2019-03" / "sessions.csv")
TUESDAY_10 = "2019-03-05T10:00"  # 19 cars plugged in


def plan(*extra: str) -> list[str]:
    return ["plan", "--config", STATION, "--sessions", SESSIONS, *extra]


def test_plan_json_stays_within_the_cap(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(plan("--at", TUESDAY_10, "--cap-kw", "30", "--json")) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "optimal"
    assert summary["sessions"] == 19
    assert 0 < summary["station_kw_now"] <= 30.0
    assert summary["at"] == "2019-03-05T10:00:00-08:00"
    currents = {row["evse"]: row["current_now_a"] for row in summary["evses"]}
    assert all(0.0 <= a <= 32.0 for a in currents.values())


def test_profiles_are_valid_ocpp_and_failsafes_fit_together(tmp_path: Path) -> None:
    out = tmp_path / "profiles.json"
    assert main(plan("--at", TUESDAY_10, "--cap-kw", "30", "--profiles", str(out))) == 0
    profiles = json.loads(out.read_text())
    assert len(profiles["tx"]) == 19
    for entry in profiles["tx"].values():
        validate_v16(entry["ocpp1.6"])
        validate_v201(entry["ocpp2.0.1"])
    config = load_station(STATION).with_grid_limit(30.0)
    assert set(profiles["failsafe"]) == set(config.evse_ids)
    limits = {}
    for evse_id, entry in profiles["failsafe"].items():
        validate_v16(entry["ocpp1.6"])
        validate_v201(entry["ocpp2.0.1"])
        limits[evse_id] = entry["ocpp1.6"]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"]
    network = Network.build(config.site(datetime(2019, 3, 5, 18, tzinfo=UTC), 1), config.evses)
    x = np.array([limits[e] for e in network.evse_ids])
    assert network.utilisation(x, 30.0).max() <= 1.0  # every EVSE at its failsafe at once


@pytest.mark.parametrize("suffix", [".lp", ".mps"])
def test_export_lp_writes_a_model_an_other_solver_reads(tmp_path: Path, suffix: str) -> None:
    target = tmp_path / f"model{suffix}"
    assert main(plan("--at", TUESDAY_10, "--export-lp", str(target))) == 0
    reader = highspy.Highs()  # type: ignore[no-untyped-call]
    reader.setOptionValue("output_flag", False)
    assert reader.readModel(str(target)) != highspy.HighsStatus.kError
    assert reader.getNumCol() > 0
    reader.run()
    assert reader.getModelStatus() == highspy.HighsModelStatus.kOptimal


def test_no_session_at_that_time_is_a_plain_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(plan("--at", "2019-02-01T10:00")) == 1
    assert "no session is plugged in" in capsys.readouterr().err


def test_bad_lp_file_name_is_a_plain_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(plan("--at", TUESDAY_10, "--export-lp", str(tmp_path / "model.txt"))) == 1
    assert "must end in .lp or .mps" in capsys.readouterr().err


def test_sessions_without_evses_are_placed_and_a_full_station_leaves_the_rest_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 60 cars plugged in at 10:00 on a 54-EVSE station: 54 get an EVSE, 6 are left out
    rows = ["arrival,departure,estimated_departure,requested_energy_kwh"]
    rows += [f"2019-03-05T09:{k % 60:02d},2019-03-05T17:00,2019-03-05T17:00,10" for k in range(60)]
    sessions = tmp_path / "arrivals.csv"
    sessions.write_text("\n".join(rows) + "\n")
    command = ["plan", "--config", STATION, "--sessions", str(sessions), "--at", TUESDAY_10, "--json"]
    assert main([*command, "--cap-kw", "30"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["sessions"] == 54
    assert len({row["evse"] for row in summary["evses"]}) == 54
    assert 0 < summary["station_kw_now"] <= 30.0
    assert "6 sessions found every EVSE taken and are left out" in captured.err
