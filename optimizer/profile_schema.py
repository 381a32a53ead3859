"""Validation of built charging profiles against the JSON schemas the ``ocpp`` package ships.

Kept apart from :mod:`optimizer.profiles` so that the solver core never imports jsonschema;
jsonschema is imported when a validator is first needed.

A profile is wrapped in the full request payload (``SetChargingProfile`` for 1.6,
``SetChargingProfileRequest`` for 2.0.1) and validated like the ``ocpp`` package validates
outgoing calls: numbers of both the schema and the payload are parsed as ``Decimal`` so that
1.6's ``multipleOf: 0.1`` judges ``0.3`` by its decimal value, not by its binary float.
The schemas do not check everything the specifications require, so a few rules both
versions state in prose are checked as well (see :func:`_check_spec_rules`).
"""

from __future__ import annotations

import functools
import itertools
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from typing import Any, Final

from optimizer.errors import ProfileError

_V16_SCHEMA: Final = ("v16", "schemas", "SetChargingProfile.json")
_V201_SCHEMA: Final = ("v201", "schemas", "SetChargingProfileRequest.json")
_RFC3339_UTC: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z")


@dataclass(frozen=True, slots=True)
class _Version:
    name: str
    schema_path: tuple[str, ...]
    target_key: str  # where the profile goes: connector (1.6) or EVSE (2.0.1), 0 = whole station
    profile_key: str
    max_purpose: str
    schedules_are_list: bool


_V16: Final = _Version(
    "1.6", _V16_SCHEMA, "connectorId", "csChargingProfiles", "ChargePointMaxProfile", schedules_are_list=False
)
_V201: Final = _Version(
    "2.0.1", _V201_SCHEMA, "evseId", "chargingProfile", "ChargingStationMaxProfile", schedules_are_list=True
)


@functools.cache
def _validator(schema_path: tuple[str, ...]) -> Any:
    """A jsonschema validator for one of the ``ocpp`` package's schema files (cached)."""
    from jsonschema import validators  # lazy: keep jsonschema out of the solver core

    resource = resources.files("ocpp").joinpath(*schema_path)
    # The 2.0.1 schemas start with a byte order mark.
    schema = json.loads(resource.read_text(encoding="utf-8-sig"), parse_float=Decimal)
    validator_class = validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def _as_decimal_json(payload: dict[str, Any]) -> Any:
    try:
        return json.loads(json.dumps(payload, allow_nan=False), parse_float=Decimal)
    except (TypeError, ValueError) as exc:
        raise ProfileError(f"profile is not JSON-serialisable: {exc}") from exc


def _validate(version: _Version, payload: dict[str, Any]) -> None:
    from jsonschema.exceptions import best_match  # lazy, as above

    instance = _as_decimal_json(payload)
    error = best_match(_validator(version.schema_path).iter_errors(instance))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "(payload)"
        raise ProfileError(f"OCPP {version.name} SetChargingProfile request schema: {where}: {error.message}")
    _check_spec_rules(version, instance)


def _schedules(version: _Version, profile: dict[str, Any]) -> list[dict[str, Any]]:
    schedules = profile["chargingSchedule"]
    return list(schedules) if version.schedules_are_list else [schedules]


def _check_spec_rules(version: _Version, payload: dict[str, Any]) -> None:
    """Rules the specifications state but the schemas do not encode.

    * ``transactionId`` only, and always, on a ``TxProfile``: 2.0.1 requires it; 1.6 only
      allows it there, and we require it too so a profile can never land on the next
      transaction of the connector;
    * a ``TxProfile`` goes to a connector / EVSE (id > 0, 2.0.1 K01.FR.16), a station maximum
      profile to 0 (1.6 ``ChargePointMaxProfile`` is set on connectorId 0, 2.0.1
      ``ChargingStationMaxProfile`` on evseId 0);
    * Absolute and Recurring profiles have a ``startSchedule``, Relative ones none (2.0.1
      K01.FR.40/41; 1.6 anchors Relative schedules to the transaction start), and a station
      maximum profile is never Relative (2.0.1 K01.FR.38);
    * Recurring profiles have a ``recurrencyKind``;
    * the first period starts at 0, start periods strictly increase (2.0.1 K01.FR.31/35);
    * ``phaseToUse`` 1..3 only with ``numberPhases`` 1 (2.0.1 K01.FR.19);
    * limits are not negative and have at most one digit fraction (both versions' prose;
      only 1.6's schema says ``multipleOf``);
    * datetimes are RFC 3339 in UTC with ``Z`` (the schemas' ``format`` is not enforced here).
    """
    profile = payload[version.profile_key]
    target = payload[version.target_key]
    purpose = profile["chargingProfilePurpose"]
    kind = profile["chargingProfileKind"]
    if (purpose == "TxProfile") != ("transactionId" in profile):
        raise ProfileError(f"OCPP {version.name}: transactionId belongs on a TxProfile, and only there")
    if purpose == "TxProfile" and target <= 0:
        raise ProfileError(f"OCPP {version.name}: a TxProfile needs {version.target_key} > 0, not {target}")
    if purpose == version.max_purpose and (target != 0 or kind == "Relative"):
        raise ProfileError(
            f"OCPP {version.name}: a {purpose} goes to {version.target_key} 0 and is not Relative"
        )
    if kind == "Recurring" and "recurrencyKind" not in profile:
        raise ProfileError(f"OCPP {version.name}: a Recurring profile needs a recurrencyKind")
    for key in ("validFrom", "validTo"):
        if key in profile:
            _check_timestamp(version, key, profile[key])
    for schedule in _schedules(version, profile):
        if (kind == "Relative") == ("startSchedule" in schedule):
            raise ProfileError(
                f"OCPP {version.name}: a {kind} profile must "
                f"{'not have' if kind == 'Relative' else 'have'} a startSchedule"
            )
        if "startSchedule" in schedule:
            _check_timestamp(version, "startSchedule", schedule["startSchedule"])
        _check_periods(version, schedule["chargingSchedulePeriod"])
        if "minChargingRate" in schedule:
            _check_decimal(version, "minChargingRate", schedule["minChargingRate"])


def _check_timestamp(version: _Version, key: str, value: str) -> None:
    if _RFC3339_UTC.fullmatch(value) is None:
        raise ProfileError(f"OCPP {version.name}: {key} {value!r} is not an RFC 3339 UTC timestamp")


def _check_decimal(version: _Version, key: str, value: Decimal | int) -> None:
    decimal = Decimal(value)
    if decimal < 0 or decimal != decimal.quantize(Decimal("0.1")):
        raise ProfileError(f"OCPP {version.name}: {key} {value} must be >= 0 with at most one decimal")


def _check_periods(version: _Version, periods: list[dict[str, Any]]) -> None:
    if not periods:
        raise ProfileError(f"OCPP {version.name}: a charging schedule needs at least one period")
    starts = [period["startPeriod"] for period in periods]
    if starts[0] != 0:
        raise ProfileError(f"OCPP {version.name}: the first period must start at 0, not {starts[0]}")
    if any(later <= earlier for earlier, later in itertools.pairwise(starts)):
        raise ProfileError(f"OCPP {version.name}: start periods must strictly increase: {starts}")
    for period in periods:
        _check_decimal(version, "limit", period["limit"])
        if "phaseToUse" in period and (
            period.get("numberPhases") != 1 or period["phaseToUse"] not in (1, 2, 3)
        ):
            raise ProfileError(f"OCPP {version.name}: phaseToUse 1..3 is only allowed with numberPhases 1")


def validate_v16(profile: dict[str, Any], connector_id: int = 1) -> None:
    """Raise :class:`ProfileError` unless ``profile`` is a valid 1.6 ``csChargingProfiles``.

    It is wrapped as ``{"connectorId": connector_id, "csChargingProfiles": profile}``.
    """
    _validate(_V16, {"connectorId": connector_id, "csChargingProfiles": profile})


def validate_v201(profile: dict[str, Any], evse_id: int = 1) -> None:
    """Raise :class:`ProfileError` unless ``profile`` is a valid 2.0.1 ``ChargingProfileType``.

    It is wrapped as ``{"evseId": evse_id, "chargingProfile": profile}``.
    """
    _validate(_V201, {"evseId": evse_id, "chargingProfile": profile})
