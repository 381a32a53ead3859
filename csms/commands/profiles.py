"""A charging profile as a charger receives it: the wire form of each OCPP version.

Profiles are built in one place, :mod:`optimizer.profiles` (limits rounded down to the EVSE's
step, periods merged and bounded, the failsafe's Relative kind); this module only carries what
it built to the :class:`~csms.commands.CommandBus`, which picks the form of the version the
charger speaks. A form may be missing: a 1.6 ``TxProfile`` needs an integer transaction id, so a
2.0.1 transaction's profile has no 1.6 form and sending it to a 1.6 charger answers
``NOT_SUPPORTED_BY_VERSION``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from csms.errors import CommandError
from csms.protocol.versions import OcppVersion
from optimizer import profiles as builders
from optimizer.types import Evse, Schedule

_INT32_MAX = 2**31 - 1


class ProfilePurpose(Enum):
    STATION_MAX = "station_max"
    """ChargePointMaxProfile (1.6) / ChargingStationMaxProfile (2.0.1)."""
    TX_DEFAULT = "tx_default"
    TX = "tx"

    def ocpp_name(self, v16: bool) -> str:
        if self is ProfilePurpose.STATION_MAX:
            return "ChargePointMaxProfile" if v16 else "ChargingStationMaxProfile"
        return "TxDefaultProfile" if self is ProfilePurpose.TX_DEFAULT else "TxProfile"


@dataclass(frozen=True, slots=True)
class ChargingProfile:
    """A profile in 1.6 ``csChargingProfiles`` and/or 2.0.1 ``chargingProfile`` form (camelCase dicts).

    Build it with :meth:`tx`, :meth:`failsafe` or :meth:`station_max` (all delegate to
    :mod:`optimizer.profiles`), or wrap dicts those builders returned.
    """

    v16: Mapping[str, Any] | None = None
    v201: Mapping[str, Any] | None = None
    checked: bool = False
    """Built here by :mod:`optimizer.profiles`, whose tests validate its output against both
    versions' schemas (``optimizer.profile_schema``): the session sends it without validating
    it again. Wrapped dicts keep ``False`` and are validated."""
    build: Callable[[OcppVersion], dict[str, Any] | None] | None = None
    """Builds a version's form when it is asked for (:meth:`tx`): a charger speaks one version,
    so a profile sent to it needs one form (a demand-response event sends thousands at once)."""

    def __post_init__(self) -> None:
        if self.v16 is None and self.v201 is None and self.build is None:
            raise CommandError("a charging profile needs a 1.6 or a 2.0.1 form")

    def for_version(self, version: OcppVersion) -> dict[str, Any] | None:
        """A fresh copy of the form for ``version`` (``None``: the profile has no such form)."""
        form = self.v16 if version is OcppVersion.V16 else self.v201
        if form is not None:
            return _copy_json(form)
        return None if self.build is None else self.build(version)

    @classmethod
    def tx(
        cls,
        schedule: Schedule,
        evse: Evse,
        *,
        transaction_id: str,
        profile_id: int,
        max_periods: int = builders.DEFAULT_MAX_PERIODS,
    ) -> ChargingProfile:
        """The ``TxProfile`` following ``evse``'s row of ``schedule`` for a running transaction.

        The 1.6 form exists when ``transaction_id`` is a 1.6 (integer) id, the 2.0.1 form when it
        fits 2.0.1's 36 characters.
        """
        v16_id = _v16_transaction_id(transaction_id)
        fits_v201 = 0 < len(transaction_id) <= builders.V201_TRANSACTION_ID_MAX_LENGTH
        if v16_id is None and not fits_v201:
            raise CommandError(f"transaction id {transaction_id!r} fits neither OCPP version")

        def build(version: OcppVersion) -> dict[str, Any] | None:
            if version is OcppVersion.V16:
                if v16_id is None:
                    return None
                return builders.tx_profile_v16(
                    schedule, evse, transaction_id=v16_id, profile_id=profile_id, max_periods=max_periods
                )
            if not fits_v201:
                return None
            return builders.tx_profile_v201(
                schedule, evse, transaction_id=transaction_id, profile_id=profile_id, max_periods=max_periods
            )

        return cls(checked=True, build=build)

    @classmethod
    def failsafe(cls, evse: Evse, *, limit_a: float, profile_id: int) -> ChargingProfile:
        """The failsafe ``TxDefaultProfile``: ``limit_a`` [A] for every transaction, with no end."""
        return cls(
            builders.failsafe_profile_v16(evse, limit_a=limit_a, profile_id=profile_id),
            builders.failsafe_profile_v201(evse, limit_a=limit_a, profile_id=profile_id),
            checked=True,
        )

    @classmethod
    def station_max(
        cls, schedule: Schedule, station: Evse, *, profile_id: int, stack_level: int = 0
    ) -> ChargingProfile:
        """A charger-wide maximum following ``station``'s row of ``schedule`` (send it to EVSE 0)."""
        return cls(
            builders.schedule_profile_v16(
                schedule,
                station,
                purpose="ChargePointMaxProfile",
                profile_id=profile_id,
                stack_level=stack_level,
            ),
            builders.schedule_profile_v201(
                schedule,
                station,
                purpose="ChargingStationMaxProfile",
                profile_id=profile_id,
                stack_level=stack_level,
            ),
            checked=True,
        )


def _copy_json(form: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of a JSON-shaped dict: several times faster than ``copy.deepcopy`` for one."""
    return {k: _copy_value(v) for k, v in form.items()}


def _copy_value(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    if kind is dict:
        return {k: _copy_value(v) for k, v in value.items()}
    if kind is list:
        return [_copy_value(v) for v in value]
    return copy.deepcopy(value)


def _v16_transaction_id(transaction_id: str) -> int | None:
    if not transaction_id.isascii() or not transaction_id.isdigit():
        return None
    value = int(transaction_id)
    return value if value <= _INT32_MAX else None
