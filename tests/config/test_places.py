"""Where a station's EVSEs are on the wire: ``charger`` and ``connector`` per EVSE entry."""

from __future__ import annotations

import pytest

from fairwatt.config import ConfigError, EvsePlace, parse_station

STATION = """\
station:
  id: wired
  time_zone: Europe/Amsterdam
  grid_limit_kw: 22
  limits:
    id: main
    limit_a: 20
    evses: [A, B, C, D]
  evses:
    - id: A
      connection: L1
      voltage_v: 230
      max_current_a: 16
    - ids: [B, C]
      charger: CP-TWIN
      connection: L1
      voltage_v: 230
      max_current_a: 16
    - id: D
      connector: 2
      connection: L1
      voltage_v: 230
      max_current_a: 16
"""


def test_evses_default_to_a_charger_of_their_own_on_connector_1() -> None:
    config = parse_station(STATION, "station.yaml")
    assert config.place("A") == EvsePlace("A", "A", 1)
    assert config.place("D") == EvsePlace("D", "D", 2)


def test_a_shared_charger_numbers_its_connectors_in_order() -> None:
    config = parse_station(STATION, "station.yaml")
    assert config.place("B") == EvsePlace("B", "CP-TWIN", 1)
    assert config.place("C") == EvsePlace("C", "CP-TWIN", 2)
    shifted = parse_station(
        STATION.replace("      charger: CP-TWIN\n", "      charger: CP-TWIN\n      connector: 3\n")
    )
    assert [shifted.place(e).connector_id for e in ("B", "C")] == [3, 4]


def test_unknown_evse_has_no_place() -> None:
    with pytest.raises(KeyError):
        parse_station(STATION, "station.yaml").place("Z")


def test_two_evses_on_one_connector_name_the_line() -> None:
    text = STATION.replace("    - id: D\n      connector: 2\n", "    - id: D\n      charger: CP-TWIN\n")
    with pytest.raises(ConfigError) as caught:
        parse_station(text, "station.yaml")
    error = caught.value
    assert (error.line, error.field) == (20, "station.evses[2].charger")
    assert "charger 'CP-TWIN' connector 1 holds two EVSEs (the first declared on line 14)" in error.detail


def test_connector_must_be_a_positive_whole_number() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_station(STATION.replace("connector: 2", "connector: 0"), "station.yaml")
    assert (caught.value.line, caught.value.column) == (20, 18)
    assert caught.value.field == "station.evses[2].connector"
    with pytest.raises(ConfigError, match="expected a whole number"):
        parse_station(STATION.replace("connector: 2", "connector: two"), "station.yaml")
