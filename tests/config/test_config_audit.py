"""Audit of the YAML layer: inputs that used to end in a traceback or be accepted silently now
read as ``file:line:column: field: message``."""

from __future__ import annotations

from pathlib import Path

import pytest

from fairwatt.config import ConfigError, parse_station
from fairwatt.config.network import NetworkConfigError, load_network, parse_network
from tests.config.networks import HEAD

STATION = """\
station:
  id: tiny
  time_zone: Europe/Amsterdam
  grid_limit_kw: 22
  limits: {id: main, limit_a: 32, evses: [A, B]}
  prices:
    currency: EUR
    default_per_kwh: 0.30
  evses:
    - &a {id: A, connection: 3P, voltage_v: 230, max_current_a: 32}
    - {<<: *a, id: B, max_current_a: 16}
"""

# HEAD is lines 1-12 (the tariff's currency on 5, s1's time zone on 10); these are lines 13-16.
NETWORK = (
    HEAD
    + """\
    limits: {id: root, limit_a: 63, evses: [c1, c2]}
    chargers:
      - &c1 {id: c1, connection: 3P, voltage_v: 230, max_current_a: 32}
      - {<<: *c1, id: c2, max_current_a: 16}
"""
)


def station_error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_station(text, "station.yaml")
    return caught.value


def network_errors(text: str) -> list[ConfigError]:
    with pytest.raises(NetworkConfigError) as caught:
        parse_network({"net.yaml": text})
    return caught.value.errors


def test_the_bases_are_valid_and_merge_keys_apply_with_own_keys_winning() -> None:
    config = parse_station(STATION, "station.yaml")
    assert [(e.evse_id, e.max_current_a) for e in config.evses] == [("A", 32.0), ("B", 16.0)]
    assert config.prices.currency == "EUR"
    network = parse_network({"net.yaml": NETWORK})
    evses = network.station("s1").station.evses
    assert [(e.evse_id, e.voltage_v, e.max_current_a) for e in evses] == [
        ("c1", 230.0, 32.0),
        ("c2", 230.0, 16.0),
    ]


@pytest.mark.parametrize("zone", ["Europe", "America", "../zoneinfo", "Europe/Berlin "])
def test_a_time_zone_folder_or_padded_name_is_an_error_not_a_traceback(zone: str) -> None:
    # 'Europe' is a folder of the tz database: ZoneInfo raised IsADirectoryError out of the loader
    error = station_error(STATION.replace("Europe/Amsterdam", f"'{zone}'"))
    assert (error.line, error.column, error.field) == (3, 14, "station.time_zone")
    assert f"unknown time zone {zone!r}" in error.detail
    [net_error] = network_errors(NETWORK.replace("Europe/Berlin", f"'{zone}'"))
    assert (net_error.line, net_error.field) == (10, "stations[0].time_zone")
    assert "unknown time zone" in net_error.detail


def test_a_time_zone_folder_in_a_file_on_disk_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "net.yaml"
    path.write_text(NETWORK.replace("Europe/Berlin", "Europe"), encoding="utf-8")
    with pytest.raises(NetworkConfigError) as caught:
        load_network(path)
    assert str(caught.value) == (
        f"{path}:10:16: stations[0].time_zone: unknown time zone 'Europe'; "
        "use an IANA name such as Europe/Berlin"
    )


@pytest.mark.parametrize(
    ("merge", "got"),
    [("5", "'5'"), ("[*a, 7]", "'7'"), ("[1, 2]", "'1'")],
)
def test_a_merge_key_of_a_scalar_is_an_error_not_a_traceback(merge: str, got: str) -> None:
    error = station_error(STATION.replace("{<<: *a,", f"{{<<: {merge},"))
    assert (error.line, error.field) == (11, "station.evses[1]")
    assert "'<<' merges a mapping or a list of mappings" in error.detail
    assert error.detail.endswith(f"not {got}")


def test_a_merge_key_of_a_scalar_in_a_network_file_is_collected() -> None:
    [error] = network_errors(NETWORK.replace("{<<: *c1,", "{<<: 5,"))
    assert (error.line, error.field) == (16, "stations[0].chargers[1]")
    assert "'<<' merges a mapping" in error.detail


def test_a_merge_key_of_a_scalar_in_a_tariff_is_collected() -> None:
    text = NETWORK.replace("  - id: std\n", "  - <<: oops\n    id: std\n")
    [error] = network_errors(text)
    assert (error.line, error.field) == (4, "tariffs[0]")
    assert "'<<' merges" in error.detail


def test_a_key_given_twice_beside_a_merge_is_still_a_duplicate() -> None:
    error = station_error(STATION.replace("max_current_a: 16}", "max_current_a: 16, max_current_a: 20}"))
    assert (error.line, error.field, error.detail) == (11, "station.evses[1].max_current_a", "duplicate key")


@pytest.mark.parametrize("currency", ["EURO", "XXZ", "€", "ABC"])
def test_prices_in_a_currency_that_does_not_exist_are_an_error(currency: str) -> None:
    error = station_error(STATION.replace("currency: EUR", f"currency: '{currency}'"))
    assert (error.line, error.field) == (7, "station.prices.currency")
    assert error.detail.startswith(f"unknown currency {currency!r}; expected an ISO 4217 code")


def test_a_currency_in_lower_case_is_read_as_its_code() -> None:
    assert parse_station(STATION.replace("currency: EUR", "currency: chf"), "s.yaml").prices.currency == "CHF"


def test_a_tariff_in_a_currency_that_does_not_exist_is_an_error() -> None:
    [error] = network_errors(NETWORK.replace("currency: EUR", "currency: XXZ"))
    assert (error.line, error.column, error.field) == (5, 15, "tariffs[0].currency")
    assert "unknown currency 'XXZ'" in error.detail
    # the tariff is still known by its id, so the station naming it is not an error too
    assert (
        parse_network({"n.yaml": NETWORK.replace("currency: EUR", "currency: JPY")}).tariffs[0].tariff_id
        == "std"
    )


def test_an_unclosed_quote_is_reported_where_it_opens() -> None:
    # to the end of the file: PyYAML names the last line; the fix is on the line the quote opens
    error = station_error(STATION.replace("id: tiny", 'id: "tiny'))
    assert (error.line, error.column) == (2, 7)
    assert "quoted string is never closed" in error.detail
    # closed by a later line's quote: the error shows far below, the hint points at the opening
    error = station_error(STATION.replace("id: tiny", "id: 'tiny").replace("id: main", "id: 'main'"))
    assert (error.line, error.column) == (2, 7)
    assert "on line 5" in error.detail
    assert "is its closing quote missing?" in error.detail


def test_a_tab_and_a_control_character_name_their_place() -> None:
    error = station_error(STATION.replace("  grid_limit_kw: 22", "\tgrid_limit_kw: 22"))
    assert error.line == 4
    assert "a tab is not allowed" in error.detail
    error = station_error(STATION.replace("id: tiny", "id: ti\x00ny"))
    assert (error.line, error.column) == (2, 9)
    assert "U+0000" in error.detail
