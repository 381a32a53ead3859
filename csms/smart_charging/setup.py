"""What the smart-charging loop is told about each station: typed config objects, no file reading.

The CLI's YAML loader (``fairwatt/config``) fills these; tests build them directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, tzinfo

from csms.errors import SettingsError
from csms.smart_charging.drivers import SessionPolicy
from optimizer.forecast import DeclaredSchedule
from optimizer.network import Network
from optimizer.types import Evse, Policy, Site


@dataclass(frozen=True, slots=True)
class EvseBinding:
    """Where an EVSE of the solver lives on the wire.

    ``ocpp_evse_id`` is the 1.6 ``connectorId`` or the 2.0.1 ``evseId`` (both >= 1) on charger
    ``charger_id``; ``evse.evse_id`` is the solver's name for it, unique in the station.
    """

    evse: Evse
    charger_id: str
    ocpp_evse_id: int = 1

    @property
    def evse_id(self) -> str:
        return self.evse.evse_id


@dataclass(frozen=True, slots=True)
class ForecastSettings:
    """Plan around sessions that earlier days saw arrive later in the day (``smart_charging.forecasting``).

    ``weight``: what a kWh of an expected session is worth against a plugged-in car's (0 < weight
    < 1: they only break ties; the ACN benchmark measured 0.5 best of 0.2/0.5/0.9). ``days``:
    how many of the latest earlier days of the same kind (weekday or weekend) count.
    ``expected``: the arrivals the operator declares, for a kind of day with no earlier day yet
    (a station's first weekday, its first weekend; :class:`optimizer.forecast.DeclaredSchedule`).
    """

    weight: float = 0.5
    days: int = 14
    expected: DeclaredSchedule | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.weight < 1.0:
            raise SettingsError(f"forecast weight must be between 0 and 1 (exclusive), got {self.weight:g}")
        if self.days < 1:
            raise SettingsError(f"forecast days must be at least 1, got {self.days}")


@dataclass(frozen=True, slots=True)
class StationSetup:
    """One station: its site limits, its EVSEs and how it schedules.

    ``time_zone`` says where the station's days begin (the forecast compares local days, the
    default departure is a local time); ``forecast`` (``None``: off) plans around sessions
    expected within the horizon; ``session_policy`` weighs drivers' tiers and says when a session
    without a departure leaves.
    """

    station_id: str
    site: Site
    evses: tuple[EvseBinding, ...]
    policy: Policy = field(default_factory=Policy)
    time_zone: tzinfo = UTC
    forecast: ForecastSettings | None = None
    session_policy: SessionPolicy = field(default_factory=SessionPolicy)

    def __post_init__(self) -> None:
        if not self.evses:
            raise SettingsError(f"station {self.station_id}: no EVSEs")
        places = {(b.charger_id, b.ocpp_evse_id) for b in self.evses}
        if len(places) != len(self.evses):
            raise SettingsError(f"station {self.station_id}: two EVSEs on the same charger connector")
        if any(b.ocpp_evse_id < 1 for b in self.evses):
            raise SettingsError(f"station {self.station_id}: OCPP EVSE ids start at 1")
        Network.build(self.site, [b.evse for b in self.evses])  # raises NetworkError on a mismatch

    @property
    def solver_evses(self) -> tuple[Evse, ...]:
        return tuple(b.evse for b in self.evses)

    def binding(self, evse_id: str) -> EvseBinding:
        for b in self.evses:
            if b.evse_id == evse_id:
                return b
        raise KeyError(evse_id)


@dataclass(frozen=True, slots=True)
class SmartChargingSettings:
    """How the loop behaves (times in seconds, currents in A).

    ``quiet_s``/``max_delay_s`` coalesce bursts of triggers (see :class:`optimizer.triggers.Coalescer`).
    ``compare_periods``: an EVSE gets a new profile when the limits of the new schedule's first
    ``compare_periods`` periods differ from what it holds, or when what it holds runs out within
    that window. ``retry_backoff_s``: wait before the one re-send of a failed profile.
    ``apply_grace_s``: after a profile change, a charger may draw up to the higher of its old
    and new limit for this long before it counts as over-drawing.
    """

    quiet_s: float = 1.0
    max_delay_s: float = 5.0
    compare_periods: int = 3
    retry_backoff_s: float = 5.0
    apply_grace_s: float = 15.0
    drawing_tolerance_a: float = 1.0
    tx_profile_id_base: int = 1000
    failsafe_profile_id_base: int = 100
    max_profile_periods: int = 48
    profile_timeout_s: float | None = None
    pause_gc_while_urgent: bool = True
    """While quick answers to an urgent trigger (a cap) are under way, the garbage collector waits:
    measured on one event to 10,000 chargers, its pauses were 0.9-1.3 s of a 3.1-3.5 s fan-out.
    The burst lasts seconds; collection resumes the moment the last quick answer is out."""

    def __post_init__(self) -> None:
        if self.quiet_s < 0 or self.max_delay_s < self.quiet_s:
            raise SettingsError("smart charging: need 0 <= quiet_s <= max_delay_s")
        if self.compare_periods < 1 or self.retry_backoff_s < 0 or self.apply_grace_s < 0:
            raise SettingsError("smart charging: compare_periods >= 1 and non-negative times")
