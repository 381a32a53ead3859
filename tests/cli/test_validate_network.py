"""``fairwatt validate``: each class of error reported with its file, line and column, all in one run."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time
from pathlib import Path

import jsonschema
import pytest
import yaml

from csms.smart_charging.drivers import SessionPolicy
from fairwatt.cli import main
from fairwatt.commands.stations import station_setup
from fairwatt.commands.validate import schema_text
from fairwatt.config.network import NetworkConfigError, load_network, parse_network
from tests.config.networks import HEAD

EXAMPLE = Path(__file__).parents[2] / "examples" / "network.yaml"

BASE = (
    HEAD
    + """\
    limits:
      id: root
      limit_a: 63
      children:
        - {id: left, limit_a: 40, evses: [c1]}
        - {id: right, limit_a: 40, evses: [c2]}
    chargers:
      - {id: c1, connection: 3P, voltage_v: 230, max_current_a: 32, password: "env:C1_PASSWORD"}
      - {id: c2, connection: 3P, voltage_v: 230, max_current_a: 32}
  - id: s2
    time_zone: Europe/Berlin
    grid_limit_kw: 22
    limits: {id: main, limit_a: 32, evses: [c3]}
    chargers:
      - {id: c3, connection: 3P, voltage_v: 230, max_current_a: 32, tariff: std}
"""
)


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """The 1-based line of the ``nth`` occurrence of ``needle``."""
    found = [k + 1 for k, line in enumerate(text.splitlines()) if needle in line]
    return found[nth - 1]


def errors_of(text: str) -> list[tuple[int | None, str]]:
    with pytest.raises(NetworkConfigError) as caught:
        parse_network({"net.yaml": text})
    assert all(e.file == "net.yaml" and e.column is not None for e in caught.value.errors)
    return [(e.line, str(e)) for e in caught.value.errors]


def test_the_base_and_the_example_are_valid() -> None:
    network = parse_network({"net.yaml": BASE})
    assert [c.charger_id for c in network.chargers] == ["c1", "c2", "c3"]
    assert network.chargers[0].password is not None
    assert str(network.chargers[0].password) == "env:C1_PASSWORD"
    example = load_network(EXAMPLE)
    assert example.cpo_id == "acme"
    assert len(example.stations) == 2
    depot = example.station("depot-berlin")
    assert depot.station.place("depot-1-2").connector_id == 2
    assert depot.charging.tier_priority("fleet") == 2.0
    assert (example.reservation_hold_s, example.reservation_holds_s) == (900, {"office-munich": 600})
    assert [c.station_id for c in example.station_configs] == ["depot-berlin", "office-munich"]


def test_the_loop_plans_with_the_tiers_and_default_departure_of_the_network_file() -> None:
    example = load_network(EXAMPLE)
    now = datetime(2026, 5, 4, 6, 0, tzinfo=UTC)
    depot, office = (station_setup(config, now) for config in example.station_configs)
    assert depot.session_policy == SessionPolicy((("fleet", 2.0), ("public", 1.0)), time(17, 30))
    assert depot.session_policy.priority("fleet") == 2.0
    assert depot.session_policy.departure_after(now, depot.time_zone) == datetime(
        2026, 5, 4, 15, 30, tzinfo=UTC
    )
    assert office.session_policy == SessionPolicy()  # no policy: weights 1, the default stay
    midnight = BASE.replace(
        "grid_limit_kw: 50\n", "grid_limit_kw: 50\n    policy: {default_departure: '24:00'}\n", 1
    )
    s1, _ = parse_network({"net.yaml": midnight}).station_configs
    assert station_setup(s1, now).session_policy.default_departure == time(0, 0)


def test_unknown_key_with_did_you_mean() -> None:
    text = BASE.replace("grid_limit_kw: 22", "grid_limt_kw: 22")
    [(line, message)] = errors_of(text)
    assert line == line_of(text, "grid_limt_kw")
    assert "did you mean 'grid_limit_kw'?" in message


def test_wrong_unit() -> None:
    text = BASE.replace("max_current_a: 32, tariff: std", "max_current_a: 32 kW, tariff: std")
    [(line, message)] = errors_of(text)
    assert line == line_of(text, "32 kW")
    assert "wrong unit 'kW'" in message
    assert "expected in A" in message


def test_limit_tree_that_does_not_add_up() -> None:
    text = BASE.replace("{id: right, limit_a: 40", "{id: right, limit_a: 80")
    [(line, message)] = errors_of(text)
    assert line == line_of(text, "id: right")
    assert "'right' allows 80 A, more than its parent 'root' (63 A)" in message


def test_charger_on_two_stations() -> None:
    text = BASE.replace("- {id: c3,", "- {id: c1,").replace("evses: [c3]", "evses: [c1]")
    [(line, message)] = errors_of(text)
    assert line == line_of(text, "- {id: c1,", nth=2)
    assert "charger 'c1' is on two stations ('s1'" in message


def test_duplicate_station_and_tariff_ids() -> None:
    text = BASE.replace("- id: s2", "- id: s1").replace(
        "stations:\n",
        "  - id: std\n    currency: EUR\n"
        "    elements: [{price_components: [{type: FLAT, price: 1, step_size: 1}]}]\n"
        "stations:\n",
    )
    errors = errors_of(text)
    assert [line for line, _ in errors] == [
        line_of(text, "- id: std", nth=2),
        line_of(text, "- id: s1", nth=2),
    ]
    assert "tariff 'std' is declared twice" in errors[0][1]
    assert "station 's1' is declared twice" in errors[1][1]


def test_unknown_tariff_referenced() -> None:
    text = BASE.replace("tariff: std}", "tariff: stf}")
    [(line, message)] = errors_of(text)
    assert line == line_of(text, "tariff: stf")
    assert "unknown tariff 'stf' (did you mean 'std'?)" in message


def test_inline_secret_is_an_error() -> None:
    text = BASE.replace('password: "env:C1_PASSWORD"', "password: hunter2")
    [(line, message)] = errors_of(text)
    assert line == line_of(text, "hunter2")
    assert "never written inline" in message


def test_a_bad_tariff_field_is_reported_at_its_line() -> None:
    text = BASE.replace("currency: EUR", "currency: EURO")
    [(line, message)] = errors_of(text)
    assert line == line_of(text, "currency: EURO")
    assert "tariffs[0].currency" in message


def test_every_error_is_reported_in_one_run() -> None:
    text = (
        BASE.replace("grid_limit_kw: 22", "grid_limt_kw: 22")
        .replace("tariff: std}", "tariff: stf}")
        .replace('password: "env:C1_PASSWORD"', "password: hunter2")
        .replace("currency: EUR", "currency: EURO")
    )
    lines = [line for line, _ in errors_of(text)]
    expected = ["currency: EURO", "hunter2", "grid_limt_kw", "tariff: stf"]
    assert lines == [line_of(text, needle) for needle in expected]


def test_a_folder_of_files_is_one_network(tmp_path: Path) -> None:
    (tmp_path / "a-tariffs.yaml").write_text(BASE.split("stations:\n")[0], encoding="utf-8")
    (tmp_path / "b-stations.yaml").write_text("stations:\n" + BASE.split("stations:\n")[1], encoding="utf-8")
    network = load_network(tmp_path)
    assert [t.tariff_id for t in network.tariffs] == ["std"]
    assert len(network.stations) == 2
    (tmp_path / "c-more.yaml").write_text("operator: other\n", encoding="utf-8")
    with pytest.raises(NetworkConfigError) as caught:
        load_network(tmp_path)
    assert caught.value.errors[0].file.endswith("c-more.yaml")
    assert caught.value.errors[0].line == 1


def test_the_command_prints_every_error_and_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "net.yaml"
    text = BASE.replace("grid_limit_kw: 22", "grid_limt_kw: 22").replace("tariff: std}", "tariff: stf}")
    broken.write_text(text, encoding="utf-8")
    assert main(["validate", "-f", str(broken)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{broken}:{line_of(text, 'grid_limt_kw')}:")
    assert out[1].startswith(f"{broken}:{line_of(text, 'tariff: stf')}:")
    assert main(["validate", "-f", str(broken), "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert [e["line"] for e in document["errors"]] == [
        line_of(text, "grid_limt_kw"),
        line_of(text, "tariff: stf"),
    ]
    assert main(["validate", "-f", str(EXAMPLE)]) == 0
    assert "valid: 2 station(s), 3 charger(s)" in capsys.readouterr().out


def test_the_json_schema_accepts_the_example_and_rejects_broken_files() -> None:
    schema = json.loads(schema_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert list(validator.iter_errors(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")))) == []
    assert list(validator.iter_errors(yaml.safe_load(BASE))) == []
    for broken in (
        BASE.replace("grid_limit_kw: 22", "grid_limt_kw: 22"),
        BASE.replace('password: "env:C1_PASSWORD"', "password: hunter2"),
        BASE.replace("max_current_a: 32, tariff", "max_current_a: 32 kW, tariff"),
        BASE.replace("version: 1", "version: 2"),
    ):
        assert list(validator.iter_errors(yaml.safe_load(broken))), broken


def test_a_charger_holds_one_local_list() -> None:
    lists = (
        "local_lists:\n"
        "  - {id: a, chargers: [c1], entries: [{id_token: T1}]}\n"
        "  - {id: b, stations: s1, entries: [{id_token: T2}]}\n"
        "  - {id: c, chargers: [c11], entries: [{id_token: T3}]}\n"
    )
    text = BASE + lists
    errors = errors_of(text)
    assert [line for line, _ in errors] == [line_of(text, "{id: b,"), line_of(text, "{id: c,")]
    assert "charger 'c1' is already on local list 'a'" in errors[0][1]
    assert "unknown charger 'c11' (did you mean 'c1'?)" in errors[1][1]


def test_demand_response_programs_are_checked_by_their_package() -> None:
    program = (
        "demand_response:\n"
        "  programs:\n"
        "    - {name: peak, vtn_url: 'http://vtn.example/OpenADR2/Simple/2.0b', ven_name: v1,\n"
        "       stations: [s22]}\n"
    )
    text = BASE + program
    [(line, message)] = errors_of(text)
    assert line == line_of(text, "stations: [s22]")
    assert "program 'peak' controls unknown station 's22' (did you mean 's2'?)" in message
    network = parse_network({"net.yaml": BASE + program.replace("[s22]", "[s2]")})
    assert [p.name for p in network.demand_response] == ["peak"]
    assert network.demand_response[0].stations == ("s2",)
    broken = BASE + program.replace("ven_name: v1", "ven_nam: v1")
    [(line, message)] = errors_of(broken)
    assert line == line_of(broken, "ven_nam")


def test_the_schema_is_printed_for_editors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "fairwatt network"


def test_a_station_forecast_is_read_checked_and_in_the_schema() -> None:
    text = BASE.replace(
        "    tariff: std\n    limits:", "    tariff: std\n    forecast: {weight: 0.4}\n    limits:", 1
    )
    network = parse_network({"net.yaml": text})
    station = next(s.station for s in network.stations if s.station_id == "s1")
    assert (station.forecast_weight, station.forecast_days) == (0.4, 14)
    jsonschema.validate(yaml.safe_load(text), json.loads(schema_text()))
    broken = text.replace("weight: 0.4", "weight: 0")
    (line, message), *_ = errors_of(broken)
    assert line == line_of(broken, "forecast:")
    assert "greater than 0" in message
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(yaml.safe_load(broken), json.loads(schema_text()))


def test_a_stations_declared_arrivals_reach_the_loop_and_the_schema() -> None:
    forecast = (
        "    forecast:\n"
        "      expected:\n"
        "        covers: all\n"
        '        arrivals: [{evses: 2, arrive: "17:00", until: "18:00", leave: "06:00", energy_kwh: 40,\n'
        "                    days: weekdays}]\n"
    )
    text = BASE.replace("    tariff: std\n    limits:", "    tariff: std\n" + forecast + "    limits:", 1)
    network = parse_network({"net.yaml": text})
    s1 = network.station("s1")
    expected = s1.station.forecast_expected
    assert expected is not None
    assert [car.evse_id for car in expected.arrivals[0].cars] == ["c1", "c2"]
    setup = station_setup(s1.station, datetime(2026, 3, 2, tzinfo=UTC))
    assert setup.forecast is not None
    assert setup.forecast.expected == expected  # what the live loop's station history forecasts with
    assert s1.canonical()["forecast"]["expected"] == {
        "covers": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        "arrivals": [
            {
                "evses": ["c1", "c2"],
                "arrive": "17:00",
                "until": "18:00",
                "leave": "06:00",
                "energy_kwh": 40.0,
                "days": ["mon", "tue", "wed", "thu", "fri"],
            }
        ],
    }
    jsonschema.validate(yaml.safe_load(text), json.loads(schema_text()))
    broken = text.replace("evses: 2,", "evses: 3,")
    [(line, message)] = errors_of(broken)
    assert line == line_of(broken, "evses: 3,")
    assert "3 cars on 2 EVSEs" in message
    for bad in (text.replace("evses: 2,", "evses: many,"), text.replace('leave: "06:00"', 'leave: "6h"')):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(yaml.safe_load(bad), json.loads(schema_text()))
