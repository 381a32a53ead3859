"""Loading station files: the example, and every kind of error with its file:line:column."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fairwatt.config import ConfigError, load_station, parse_station
from fairwatt.errors import FairwattError
from optimizer.types import Connection, RateUnit

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "station.yaml"

# A small valid file; tests break one line of it at a time (line numbers matter below).
VALID = """\
station:
  id: tiny
  time_zone: Europe/Amsterdam
  grid_limit_kw: 22
  limits:
    id: main
    limit_a: 32
    evses: [A]
    children:
      - id: sub
        limit_kw: 11
        evses: [B]
  evses:
    - id: A
      connection: L1
      voltage_v: 230
      max_current_a: 32
    - id: B
      connection: 3P
      voltage_v: 230
      max_current_a: 16
      min_current_a: 6
"""


def load_error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_station(text, "station.yaml")
    return caught.value


def test_valid_small_station() -> None:
    config = parse_station(VALID, "station.yaml")
    assert config.evse_ids == ("A", "B")
    assert config.evse("B").connection is Connection.THREE_PHASE
    assert config.evse("B").min_current_a == 6.0
    root = config.limits.feeder_node()
    assert root.limit_a == 32.0
    assert root.children[0].limit_kw == 11.0
    assert root.all_evse_ids() == ("A", "B")


def test_example_station_is_the_caltech_acn() -> None:
    config = load_station(EXAMPLE)
    assert len(config.evses) == 54
    assert config.time_zone.key == "America/Los_Angeles"
    root = config.limits.feeder_node()
    assert root.transformer_ratio == pytest.approx(4.0)
    assert root.limit_a == pytest.approx(150_000 / 3 / 120)  # 416.67 A
    assert root.primary_limit_a == pytest.approx(150_000 / 3 / (480 / math.sqrt(3)))  # 180.4 A
    pods = {child.node_id: child for child in root.children}
    assert pods["cc-pod"].limit_a == 80.0
    assert len(pods["av-pod"].evse_ids) == 8
    by_connection = {c: sum(e.connection is c for e in config.evses) for c in Connection}
    assert by_connection[Connection.L1_L2] == 26
    assert by_connection[Connection.L2_L3] == 14
    assert by_connection[Connection.L3_L1] == 14
    evse = config.evse("CA-148")  # from the merged `<<: *evse` defaults
    assert (evse.voltage_v, evse.max_current_a, evse.rate_unit) == (208.0, 32.0, RateUnit.AMPERE)
    assert config.policy.period_s == 300
    assert config.demand_charge_per_kw == pytest.approx(15.51)


def test_cap_override_rescales_the_root_transformer() -> None:
    config = load_station(EXAMPLE).with_grid_limit(60.0)
    root = config.limits.feeder_node()
    assert config.grid_limit_kw == 60.0
    assert root.limit_a == pytest.approx(60_000 / 3 / 120)


def test_unknown_key_names_line_column_and_suggestion() -> None:
    error = load_error(VALID.replace("      max_current_a: 16", "      max_curent_a: 16"))
    assert str(error).startswith("station.yaml:21:7: station.evses[1].max_curent_a: unknown key")
    assert "did you mean 'max_current_a'?" in str(error)
    assert isinstance(error, FairwattError)


def test_wrong_type_is_a_plain_message() -> None:
    error = load_error(VALID.replace("max_current_a: 32", "max_current_a: abc"))
    assert (
        str(error) == "station.yaml:17:22: station.evses[0].max_current_a: expected a number [A], got 'abc'"
    )


def test_units_may_be_written_but_must_match() -> None:
    config = parse_station(VALID.replace("max_current_a: 32", 'max_current_a: "32 A"'), "s.yaml")
    assert config.evse("A").max_current_a == 32.0
    error = load_error(VALID.replace("max_current_a: 32", "max_current_a: 7 kW"))
    assert (error.line, error.column) == (17, 22)
    assert "wrong unit 'kW'" in error.detail


def test_bad_connection_suggests_the_closest() -> None:
    error = load_error(VALID.replace("connection: L1", "connection: L1-L4"))
    assert (error.line, error.column, error.field) == (15, 19, "station.evses[0].connection")
    assert "unknown value 'L1-L4'" in error.detail
    assert "did you mean" in error.detail


def test_evse_in_two_places() -> None:
    error = load_error(VALID.replace("        evses: [B]", "        evses: [B, A]"))
    assert (error.line, error.column) == (12, 20)
    assert "already under node 'main'" in error.detail


def test_unknown_evse_in_the_tree() -> None:
    error = load_error(VALID.replace("        evses: [B]", "        evses: [B, C]"))
    assert (error.line, error.column) == (12, 20)
    assert "unknown EVSE 'C'" in error.detail


def test_evse_not_in_the_tree() -> None:
    error = load_error(VALID.replace("        evses: [B]\n", "        evses: []\n"))
    assert "limit node 'sub' has no EVSEs below it" in error.detail
    assert error.line == 10
    error = load_error(VALID.replace("    evses: [A]\n", ""))
    assert "EVSE 'A' is not under any node" in error.detail
    assert (error.line, error.column) == (13, 11)  # where A is declared


def test_tree_rejects_repeated_node_ids_and_transformer_with_limit_a() -> None:
    error = load_error(VALID.replace("      - id: sub", "      - id: main"))
    assert "node id 'main' is used twice" in error.detail
    transformer = "    transformer: {rating_kva: 50, primary_voltage_v: 400, secondary_voltage_v: 230}\n"
    error = load_error(VALID.replace("    limit_a: 32\n", "    limit_a: 32\n" + transformer))
    assert "follows from its rating" in error.detail
    assert error.line == 7


def test_yaml_syntax_error_has_a_position() -> None:
    error = load_error(VALID.replace("  grid_limit_kw: 22", "  grid_limit_kw: [22"))
    assert error.file == "station.yaml"
    assert error.line is not None
    assert error.column is not None
    assert "invalid YAML" in error.detail


def test_missing_key_empty_file_and_unreadable_file(tmp_path: Path) -> None:
    error = load_error(VALID.replace("  time_zone: Europe/Amsterdam\n", ""))
    assert "missing required key 'time_zone'" in error.detail
    assert (error.line, error.column) == (2, 3)
    assert load_error("").detail == "the file is empty"
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_station(tmp_path / "missing.yaml")


def test_unknown_time_zone() -> None:
    error = load_error(VALID.replace("Europe/Amsterdam", "Europe/Amsterdm"))
    assert (error.line, error.column) == (3, 14)
    assert "unknown time zone" in error.detail


def test_peak_event_needs_exactly_one_limit() -> None:
    events = '  peak_events:\n    - {start: "16:00", end: "18:00"}\n'
    error = load_error(VALID + events)
    assert "exactly one of 'limit_kw' or 'fraction'" in error.detail
    assert error.line == 24
    error = load_error(VALID + '  peak_events:\n    - {start: "16:00", end: "18:00", fraction: 1.5}\n')
    assert "at most 1" in error.detail


def test_policy_fields() -> None:
    text = VALID + (
        "  policy:\n    period_s: 900\n    default_stay_h: 8\n"
        "    resolve_every_periods: 3\n    objective: [cost, energy]\n"
    )
    config = parse_station(text, "s.yaml")
    assert config.policy.period_s == 900
    assert config.policy.default_stay.total_seconds() == 8 * 3600
    assert config.policy.objective == ("cost", "energy")
    assert config.resolve_every_periods == 3
    error = load_error(VALID + "  policy:\n    fairness: maxmin\n")
    assert "did you mean 'max-min'?" in error.detail


def test_trusting_the_forecast_is_off_unless_asked() -> None:
    assert parse_station(VALID, "s.yaml").policy.trust_forecast is False
    for written, meant in (("true", True), ("yes", True), ("false", False)):
        config = parse_station(VALID + f"  policy:\n    trust_forecast: {written}\n", "s.yaml")
        assert config.policy.trust_forecast is meant
    error = load_error(VALID + "  policy:\n    trust_forecast: maybe\n")
    assert error.line == 24
    assert "trust_forecast" in error.detail


def test_forecast_is_off_unless_asked_and_checked_at_its_line() -> None:
    assert parse_station(VALID, "s.yaml").forecast_weight == 0.0
    config = parse_station(VALID + "  forecast: {weight: 0.3, days: 21}\n", "s.yaml")
    assert (config.forecast_weight, config.forecast_days) == (0.3, 21)
    config = parse_station(VALID + "  forecast: {}\n", "s.yaml")
    assert (config.forecast_weight, config.forecast_days) == (0.5, 14)
    error = load_error(VALID + "  forecast:\n    weight: 1.5\n")
    assert error.line == 24
    assert "below 1" in error.detail
    error = load_error(VALID + "  forecast:\n    dayz: 3\n")
    assert error.line == 24
    assert "did you mean 'days'?" in error.detail
