"""``fairwatt tariffs price``: prints OCPI CDR totals; one clear message and exit 1 on bad input."""

from __future__ import annotations

import json
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from fairwatt.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "ocpi"
SATURDAY = FIXTURES / "spec_tariff_4_complex_saturday.json"
AMSTERDAM = FIXTURES / "codeberg_issue_228__cdr.json"


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any], str]:
    status = main(["tariffs", "price", *args])
    captured = capsys.readouterr()
    output: dict[str, Any] = json.loads(captured.out, parse_float=Decimal) if status == 0 else {}
    return status, output, captured.err


def test_prices_a_case_file_and_prints_rounded_cdr_totals(capsys: pytest.CaptureFixture[str]) -> None:
    status, output, _ = _run(capsys, "--tariff", str(SATURDAY), "--session", str(SATURDAY))
    assert status == 0
    assert output["total_cost"] == {
        "excl_vat": Decimal("12.38"),
        "incl_vat": Decimal("13.98"),
    }  # 12.375/13.975
    assert output["total_parking_cost"] == {"excl_vat": Decimal("7.5"), "incl_vat": Decimal("8.25")}
    assert output["total_time"] == Decimal("3.0833")
    assert output["currency"] == "EUR"
    assert len(output["charging_periods"]) == 2


def test_bare_tariff_and_session_files_and_the_time_zone_option(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    case = json.loads(AMSTERDAM.read_text(encoding="utf-8"))
    tariff_file, session_file = tmp_path / "tariff.json", tmp_path / "session.json"
    tariff_file.write_text(json.dumps(case["tariff"]), encoding="utf-8")
    session_file.write_text(json.dumps(case["session"]), encoding="utf-8")
    status, in_amsterdam, _ = _run(
        capsys,
        "--tariff",
        str(tariff_file),
        "--session",
        str(session_file),
        "--time-zone",
        "Europe/Amsterdam",
    )
    assert status == 0
    assert in_amsterdam["total_cost"]["excl_vat"] == Decimal("1.84")  # 7.293 x 0.22 + 0.969 x 0.24
    assert in_amsterdam["warnings"] == ["periods_outside_start_end_date_time"]
    status, in_utc, _ = _run(capsys, "--tariff", str(tariff_file), "--session", str(session_file))
    assert status == 0
    assert in_utc["total_cost"]["excl_vat"] == Decimal("1.88")  # UTC by default: 7.293 x 0.23 + 0.969 x 0.21


def test_bad_json_is_one_message_with_the_position(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    broken = tmp_path / "tariff.json"
    broken.write_text('{"id": "1",\n "currency": }', encoding="utf-8")
    status, _, err = _run(capsys, "--tariff", str(broken), "--session", str(SATURDAY))
    assert status == 1
    assert err.startswith(f"fairwatt: error: {broken}:2:14: not valid JSON")
    assert "Traceback" not in err


def test_bad_field_names_the_file_and_path(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    case = json.loads(SATURDAY.read_text(encoding="utf-8"))
    case["tariff"]["elements"][1]["price_components"][0]["step_size"] = "900"
    bad = tmp_path / "case.json"
    bad.write_text(json.dumps(case), encoding="utf-8")
    status, _, err = _run(capsys, "--tariff", str(bad), "--session", str(SATURDAY))
    assert status == 1
    assert err.strip() == (
        f"fairwatt: error: {bad}: "
        "tariff.elements[1].price_components[0].step_size: expected a number, got '900'"
    )


def test_missing_file_and_unknown_zone(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, _, err = _run(capsys, "--tariff", str(tmp_path / "nope.json"), "--session", str(SATURDAY))
    assert (status, "cannot read" in err) == (1, True)
    copy = tmp_path / "case.json"
    shutil.copy(SATURDAY, copy)
    status, _, err = _run(
        capsys, "--tariff", str(copy), "--session", str(copy), "--time-zone", "Mars/Olympus"
    )
    assert status == 1
    assert "unknown time zone 'Mars/Olympus'" in err
