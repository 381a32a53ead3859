"""Programs from YAML: typed values, and file:line:col errors for what the operator must fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from demand_response.config import OptType, ReportLimits, load_programs
from demand_response.errors import ProgramConfigError

GOOD = """\
demand_response:
  programs:
    - name: grid-peak
      vtn_url: https://vtn.example.com/OpenADR2/Simple/2.0b/
      ven_name: fairwatt-depot
      certificates: {cert: ven.pem, key: ven.key, ca: ca.pem, vtn_fingerprint: "AB:CD"}
      stations: [north]
      resources: {feeder-7: [south, east]}
      groups: [fleet]
      responses: {default: optOut, SIMPLE: optIn}
      simple_levels: {1: 10%, 2: 30 %, 3: 100%}
      opt_out: {min_kw_per_session: 1.4}
      reports: {min_interval: 5s, max_interval: 15min}
      randomize: false
    - name: prices
      vtn_url: http://127.0.0.1:8080/OpenADR2/Simple/2.0b
      ven_name: fairwatt-prices
      stations: [west]
"""


def write(tmp_path: Path, text: str) -> Path:
    for name in ("ven.pem", "ven.key", "ca.pem"):
        (tmp_path / name).write_text("x")
    path = tmp_path / "network.yaml"
    path.write_text(text)
    return path


def test_a_full_program_is_read_into_typed_values(tmp_path: Path) -> None:
    first, second = load_programs(write(tmp_path, GOOD))
    assert first.name == "grid-peak"
    assert first.vtn_url == "https://vtn.example.com/OpenADR2/Simple/2.0b"
    assert first.resources == (("north", ("north",)), ("feeder-7", ("south", "east")))
    assert first.stations == ("north", "south", "east")
    assert first.stations_of("feeder-7") == ("south", "east")
    assert first.certificates is not None
    assert first.certificates.cert_file == tmp_path / "ven.pem"
    assert first.certificates.vtn_fingerprint == "AB:CD"
    assert first.response_to("SIMPLE") is OptType.OPT_IN
    assert first.response_to("LOAD_DISPATCH") is OptType.OPT_OUT
    assert first.level_cut(1) == pytest.approx(0.1)
    assert first.level_cut(2) == pytest.approx(0.3)
    assert first.level_cut(0) == 0.0
    assert first.min_kw_per_session == 1.4
    assert first.reports == ReportLimits(5.0, 900.0)
    assert first.reports.clamp(1.0) == 5.0
    assert first.randomize is False
    assert second.certificates is None
    assert second.default_response is OptType.OPT_IN
    assert second.level_cut(1) == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        (
            "ven_name: fairwatt-prices",
            "ven_nam: fairwatt-prices",
            ":17:7: demand_response[1].ven_nam",
            "unknown key",
        ),
        (
            "SIMPLE: optIn",
            "SIMPLE: maybe",
            ":10:44: demand_response.programs[0].responses.SIMPLE",
            "optIn or optOut",
        ),
        ("1: 10%", "4: 10%", ":11:26: demand_response.programs[0].simple_levels.4", "levels are 1, 2 and 3"),
        (
            "max_interval: 15min",
            "max_interval: soon",
            ":13:49: demand_response.programs[0].reports.max_interval",
            "expected a duration",
        ),
        (
            "ca: ca.pem",
            "ca: missing.pem",
            ":6:55: demand_response.programs[0].certificates.ca",
            "no such file",
        ),
        ("stations: [west]", "stations: [north]", ":15:7: demand_response.programs[1]", "already in program"),
        (
            "vtn_url: http://127",
            "vtn_url: ftp://127",
            ":16:16: demand_response.programs[1].vtn_url",
            "http://",
        ),
    ],
)
def test_mistakes_name_file_line_column_and_field(
    tmp_path: Path, old: str, new: str, where: str, message: str
) -> None:
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ProgramConfigError) as caught:
        load_programs(path)
    text = str(caught.value)
    assert text.startswith(str(path) + where.split(" ")[0]), text
    assert message in text


def test_a_program_without_stations_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "- name: a\n  vtn_url: http://x\n  ven_name: v\n")
    with pytest.raises(ProgramConfigError, match=r":1:3: \[0\]: a program needs 'stations'"):
        load_programs(path)


def test_broken_yaml_reports_its_position(tmp_path: Path) -> None:
    path = write(tmp_path, "demand_response:\n  - name: [\n")
    with pytest.raises(ProgramConfigError, match=r"network.yaml:3:1: invalid YAML"):
        load_programs(path)
