"""Audit of the operator's CLI: bad paths, zones and files end in one message and a non-zero
status (never a traceback or a crash), checked before the work; ``--json`` keeps stdout JSON."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from fairwatt.cli import main
from tests.operator.conftest import (  # the real server on a free port, and the CLI pointed at it
    EXAMPLE,
    Cli,
    RunningOperatorApi,
    cli,
    database_dsn,
    fail_on_error_logs,
    operator,
)

__all__ = ["cli", "database_dsn", "fail_on_error_logs", "operator"]

ROOT = Path(__file__).resolve().parents[2]
DEPOT = str(ROOT / "examples" / "depot" / "station.yaml")
DEPOT_SESSIONS = str(ROOT / "examples" / "depot" / "sessions.csv")
EVENING = "2026-03-02T20:00"  # twelve vans plugged in


def plan(*extra: str) -> list[str]:
    return ["plan", "--config", DEPOT, "--sessions", DEPOT_SESSIONS, "--at", EVENING, *extra]


def run_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    """``fairwatt`` in its own process: a crash there (a signal) cannot take pytest down."""
    return subprocess.run(
        [sys.executable, "-m", "fairwatt.cli", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def forbid(monkeypatch: pytest.MonkeyPatch, target: str, message: str) -> None:
    """Replace ``target`` with a function failing the test with ``message``: the command must stop
    before it is called."""

    def never(*_: object, **__: object) -> None:
        raise AssertionError(message)

    monkeypatch.setattr(target, never)


# -- output files: checked first ----------------------------------------------------------------


def test_plan_export_lp_into_a_missing_directory_is_an_error_not_a_crash(tmp_path: Path) -> None:
    # HiGHS died with SIGSEGV (status -11) writing a model where the folder does not exist
    target = tmp_path / "missing" / "model.lp"
    done = run_cli(*plan("--export-lp", str(target)))
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == (
        f"fairwatt: error: --export-lp {target}: the directory {target.parent} does not exist"
    )
    assert done.stdout == ""


def test_plan_profiles_into_a_missing_directory_fails_before_solving(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    forbid(monkeypatch, "fairwatt.commands.plan.solve", "solved before the output path was checked")
    target = tmp_path / "missing" / "profiles.json"
    assert main(plan("--profiles", str(target))) == 1
    err = capsys.readouterr().err
    assert f"--profiles {target}: the directory {target.parent} does not exist" in err
    assert main(plan("--profiles", str(tmp_path))) == 1
    assert f"--profiles {tmp_path}: is a directory" in capsys.readouterr().err


@pytest.mark.parametrize("cap", ["-5", "0"])
def test_plan_rejects_a_cap_that_is_not_positive(capsys: pytest.CaptureFixture[str], cap: str) -> None:
    assert main(plan(f"--cap-kw={cap}")) == 1
    assert capsys.readouterr().err.strip() == f"fairwatt: error: --cap-kw must be greater than 0, got {cap}"


def test_simulate_plot_into_a_missing_directory_fails_before_simulating(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # it used to run the whole simulation (minutes for a month) and only then fail to save the plot
    forbid(monkeypatch, "fairwatt.simulation.engine.simulate", "simulated before the plot path was checked")
    target = tmp_path / "missing" / "day.png"
    argv = ["simulate", "--config", DEPOT, "--sessions", DEPOT_SESSIONS, "--days", "1", "--plot", str(target)]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert (
        captured.err.strip()
        == f"fairwatt: error: --plot {target}: the directory {target.parent} does not exist"
    )
    assert captured.out == ""


def test_stations_schedule_plot_into_a_missing_directory_fails_before_asking_the_server(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # the file was written after the request: a traceback (FileNotFoundError from savefig)
    target = tmp_path / "missing" / "schedule.png"
    argv = ["stations", "schedule", "depot-berlin", "--plot", str(target), "--server", closed_port_url()]
    assert main([*argv, "--api-key-file", str(EXAMPLE)]) == 1
    assert f"--plot {target}: the directory {target.parent} does not exist" in capsys.readouterr().err


def test_demo_plot_into_a_missing_directory_fails_before_starting(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # after the 90 s story the OSError of the plot read "cannot start on 127.0.0.1:9000"
    forbid(monkeypatch, "fairwatt.commands.demo.load_network", "started before the plot path was checked")
    target = tmp_path / "missing" / "demo.png"
    assert main(["demo", "--plot", str(target)]) == 1
    assert f"--plot {target}: the directory {target.parent} does not exist" in capsys.readouterr().err


# -- time zones and files the commands read -------------------------------------------------------


def test_validate_a_zone_folder_exits_1_with_the_place_and_no_traceback(tmp_path: Path) -> None:
    network = tmp_path / "network.yaml"
    network.write_text(
        EXAMPLE.read_text(encoding="utf-8").replace("Europe/Berlin", "Europe"), encoding="utf-8"
    )
    done = run_cli("validate", "-f", str(network))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"{network}:39:16: stations[0].time_zone: unknown time zone 'Europe'" in done.stdout
    done = run_cli("validate", "-f", str(network), "--json")
    assert done.returncode == 1
    errors = json.loads(done.stdout)["errors"]
    assert [(e["line"], e["field"]) for e in errors] == [
        (39, "stations[0].time_zone"),
        (90, "stations[1].time_zone"),
    ]


def test_serve_with_a_merge_of_a_scalar_stops_with_the_place(tmp_path: Path) -> None:
    network = tmp_path / "network.yaml"
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        "      - id: depot-2\n", "      - <<: 5\n        id: depot-2\n"
    )
    network.write_text(text, encoding="utf-8")
    done = run_cli("serve", "-f", str(network), "--port", "0")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "'<<' merges a mapping or a list of mappings" in done.stderr
    assert f"{network}:76:13: stations[0].chargers[1]: " in done.stderr


@pytest.mark.parametrize("zone", ["Europe", "Mars/Olympus"])
def test_tariffs_price_and_dr_declare_reject_an_unknown_zone(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, zone: str
) -> None:
    tariff = tmp_path / "tariff.json"
    tariff.write_text("{}", encoding="utf-8")
    assert (
        main(["tariffs", "price", "--tariff", str(tariff), "--session", str(tariff), "--time-zone", zone])
        == 1
    )
    assert f"unknown time zone {zone!r}" in capsys.readouterr().err
    declare = ["dr", "declare", "--stations", "s1", "--cut", "20%", "--start", "17:00", "--duration", "2h"]
    assert main([*declare, "--time-zone", zone, "--server", closed_port_url()]) == 1
    assert f"--time-zone {zone}: not a known IANA time zone" in capsys.readouterr().err


def test_tariff_files_that_are_not_utf8_are_an_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    tariff = tmp_path / "tariff.json"
    tariff.write_bytes(b'{"id": "t\xe9"}')
    assert main(["tariffs", "price", "--tariff", str(tariff), "--session", str(tariff)]) == 1
    assert f"{tariff}: not UTF-8 text" in capsys.readouterr().err
    assert main(["tariffs", "set", "--file", str(tariff), "--server", closed_port_url()]) == 1
    assert f"{tariff}: not UTF-8 text" in capsys.readouterr().err


# -- against the running server ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_schedule_json_with_a_plot_keeps_stdout_json_and_tables_say_the_zone(
    operator: RunningOperatorApi, cli: Cli, tmp_path: Path
) -> None:
    code, _, err = await cli("apply", "-f", str(EXAMPLE))
    assert code == 0, err
    plot = tmp_path / "schedule.png"
    code, out, err = await cli("stations", "schedule", "depot-berlin", "--json", "--plot", str(plot))
    assert code == 0, err
    assert json.loads(out)["station_id"] == "depot-berlin"  # "plot written to" used to follow the JSON
    assert f"plot written to {plot}" in err
    assert plot.stat().st_size > 1000

    # a table's timestamps keep their zone (the offset was cut off: UTC read as local time)
    code, out, err = await cli("tariffs", "show")
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split() == ["TARIFF_ID", "VERSION", "CREATED_AT", "CREATED_BY"]
    listed = (await cli.json("tariffs", "show"))["tariffs"]
    assert len(rows) == len(listed) == 2
    for row in rows:
        assert row.split()[4] == "UTC", row
