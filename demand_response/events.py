"""A demand-response event as we keep it, whether a VTN distributed it or an operator declared it.

:func:`from_openadr` reads one event of an ``oadrDistributeEvent`` as ``openleadr`` parses it;
:meth:`DrEvent.to_json` / :func:`from_json` are its stored form. Times are UTC.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from demand_response.config import OptType
from demand_response.errors import EventError

MANUAL_PROGRAM = "manual"
"""The program name of operators' own peak events (``fairwatt dr declare``)."""
OPEN_ENDED = timedelta(days=36525)
"""The length of an event of duration 0 (and of its last interval of duration 0): OpenADR 2.0b
conformance rule 47 gives it no defined end, it stays active until it is cancelled."""
POWER_TYPES = frozenset({"setpoint", "delta", "x-loadControlSetpoint"})
"""Signal types whose values are a power: read in kW (``Signal.unit``)."""
PRICE_TYPES = frozenset({"price", "priceRelative"})
"""Signal types whose values are a price: read per kWh (``Signal.unit`` ``currencyPerKWh``, and the
currency after a colon when the VTN names one)."""
PER_KWH = "currencyPerKWh"
_SI_EXPONENT = {
    "p": -12,
    "n": -9,
    "micro": -6,
    "m": -3,
    "c": -2,
    "d": -1,
    "none": 0,
    "k": 3,
    "M": 6,
    "G": 9,
    "T": 12,
}


class EventStatus(enum.Enum):
    NONE = "none"
    FAR = "far"
    NEAR = "near"
    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Targets:
    """Whom an event (or a signal) is for; nothing set means everyone who received it."""

    ven_ids: tuple[str, ...] = ()
    group_ids: tuple[str, ...] = ()
    resource_ids: tuple[str, ...] = ()
    party_ids: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.ven_ids or self.group_ids or self.resource_ids or self.party_ids)


@dataclass(frozen=True, slots=True)
class Interval:
    """One interval of a signal: ``value`` from ``start`` for ``duration``."""

    start: datetime
    duration: timedelta
    value: float

    @property
    def end(self) -> datetime:
        return self.start + self.duration


@dataclass(frozen=True, slots=True)
class Signal:
    """``name`` (SIMPLE, LOAD_DISPATCH, LOAD_CONTROL, ELECTRICITY_PRICE, ...) of ``signal_type``.

    ``unit`` is that of the values of a power signal (:data:`POWER_TYPES`): kW, or the item base
    the VTN named when it is not a real power (such a signal cannot be applied).
    """

    name: str
    signal_type: str
    intervals: tuple[Interval, ...]
    targets: Targets = field(default_factory=Targets)
    unit: str = "kW"


@dataclass(frozen=True, slots=True)
class DrEvent:
    """One event (one version of it: a higher ``modification_number`` replaces it).

    ``start_after`` is the randomisation window (``tolerance.tolerate.startafter``): the VEN
    starts at a random offset inside it. ``ramp_up``/``recovery`` extend the event before and
    after its active period. ``stations`` (manual events) names the stations directly.
    """

    program: str
    event_id: str
    modification_number: int
    start: datetime
    duration: timedelta
    signals: tuple[Signal, ...]
    status: EventStatus = EventStatus.FAR
    priority: int = 0
    test_event: bool = False
    targets: Targets = field(default_factory=Targets)
    start_after: timedelta = timedelta(0)
    ramp_up: timedelta = timedelta(0)
    recovery: timedelta = timedelta(0)
    market_context: str = ""
    response_required: bool = True
    stations: tuple[str, ...] = ()
    opt: OptType | None = None
    created_by: str = "vtn"
    cancelled_at: datetime | None = None
    """When a cancellation reached an event we were enforcing (its randomised end runs from it)."""

    @property
    def end(self) -> datetime:
        return self.start + self.duration

    @property
    def key(self) -> tuple[str, str]:
        return (self.program, self.event_id)

    def cancelled(self, at: datetime | None = None) -> DrEvent:
        """This event cancelled; ``at``: when the cancellation reached it while it was enforced."""
        if self.status is EventStatus.CANCELLED:
            return self
        return replace(self, status=EventStatus.CANCELLED, cancelled_at=at)

    def to_json(self) -> dict[str, Any]:
        return {
            "program": self.program,
            "event_id": self.event_id,
            "modification_number": self.modification_number,
            "start": self.start.isoformat(),
            "duration_s": self.duration.total_seconds(),
            "signals": [
                {
                    "name": s.name,
                    "type": s.signal_type,
                    "intervals": [
                        [i.start.isoformat(), i.duration.total_seconds(), i.value] for i in s.intervals
                    ],
                    "targets": _targets_json(s.targets),
                    "unit": s.unit,
                }
                for s in self.signals
            ],
            "status": self.status.value,
            "priority": self.priority,
            "test_event": self.test_event,
            "targets": _targets_json(self.targets),
            "start_after_s": self.start_after.total_seconds(),
            "ramp_up_s": self.ramp_up.total_seconds(),
            "recovery_s": self.recovery.total_seconds(),
            "market_context": self.market_context,
            "response_required": self.response_required,
            "stations": list(self.stations),
            "opt": None if self.opt is None else self.opt.value,
            "created_by": self.created_by,
            "cancelled_at": None if self.cancelled_at is None else self.cancelled_at.isoformat(),
        }


def from_json(data: Mapping[str, Any]) -> DrEvent:
    """The event of :meth:`DrEvent.to_json`."""
    return DrEvent(
        program=data["program"],
        event_id=data["event_id"],
        modification_number=int(data["modification_number"]),
        start=datetime.fromisoformat(data["start"]),
        duration=timedelta(seconds=data["duration_s"]),
        signals=tuple(
            Signal(
                s["name"],
                s["type"],
                tuple(
                    Interval(datetime.fromisoformat(a), timedelta(seconds=d), float(v))
                    for a, d, v in s["intervals"]
                ),
                _targets(s.get("targets") or {}),
                s.get("unit", "kW"),
            )
            for s in data["signals"]
        ),
        status=EventStatus(data["status"]),
        priority=int(data["priority"]),
        test_event=bool(data["test_event"]),
        targets=_targets(data.get("targets") or {}),
        start_after=timedelta(seconds=data["start_after_s"]),
        ramp_up=timedelta(seconds=data["ramp_up_s"]),
        recovery=timedelta(seconds=data["recovery_s"]),
        market_context=data["market_context"],
        response_required=bool(data["response_required"]),
        stations=tuple(data["stations"]),
        opt=None if data.get("opt") is None else OptType(data["opt"]),
        created_by=data.get("created_by", "vtn"),
        cancelled_at=_time_or_none(data.get("cancelled_at")),
    )


def _time_or_none(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _targets_json(targets: Targets) -> dict[str, list[str]]:
    return {
        "ven_id": list(targets.ven_ids),
        "group_id": list(targets.group_ids),
        "resource_id": list(targets.resource_ids),
        "party_id": list(targets.party_ids),
    }


def _targets(by_type: Mapping[str, Any]) -> Targets:
    def ids(key: str) -> tuple[str, ...]:
        value = by_type.get(key) or ()
        return tuple(str(v) for v in ([value] if isinstance(value, str) else value))

    return Targets(ids("ven_id"), ids("group_id"), ids("resource_id"), ids("party_id"))


def _targets_of(raw: Any) -> Targets:
    """Targets from openleadr's ``targets`` (a list of one-key dicts) or ``targets_by_type``."""
    if not raw:
        return Targets()
    if isinstance(raw, Mapping):
        return _targets(raw)
    grouped: dict[str, list[str]] = {}
    for target in raw:
        for key, value in dict(target).items():
            grouped.setdefault(key, []).extend([value] if isinstance(value, str) else list(value))
    return _targets(grouped)


def _utc(value: Any, what: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise EventError(f"{what}: expected a timezone-aware time, got {value!r}")
    return value.astimezone(UTC)


def _duration(value: Any) -> timedelta:
    if value is None:
        return timedelta(0)
    if isinstance(value, timedelta):
        return value
    if isinstance(value, Mapping) and "duration" in value:  # {'duration': timedelta}
        return _duration(value["duration"])
    raise EventError(f"expected a duration, got {value!r}")


def _item_base(measurement: Any) -> tuple[str, str, str] | None:
    """A signal's item base as (name, unit, SI scale code); ``None`` when the VTN names none."""
    if not measurement:
        return None
    return (
        str(measurement.get("name") or ""),
        str(measurement.get("unit") or ""),
        str(measurement.get("scale") or "none"),
    )


def _named(name: str, unit: str, scale: str) -> str:
    """An item base we do not apply, as it reads: e.g. ``energyReal:kWh``."""
    return f"{name}:{'' if scale == 'none' else scale}{unit}"


def _unit_of(measurement: Any) -> tuple[float, str]:
    """kW per value of a power signal with this item base, and the unit ("kW" when it is a power).

    No item base: the values are kW (our choice). ``powerReal`` is W times its SI scale code.
    """
    base = _item_base(measurement)
    if base is None:
        return 1.0, "kW"
    name, unit, scale = base
    if name == "powerReal" and unit == "W" and scale in _SI_EXPONENT:
        return 10.0 ** (_SI_EXPONENT[scale] - 3), "kW"
    return 1.0, _named(*base)


def _price_unit_of(measurement: Any) -> tuple[float, str]:
    """Scale per value of a price signal with this item base, and its unit.

    No item base: per kWh in the station's currency (our choice). ``currencyPerKWh`` is per kWh
    times its SI scale code; a price per kW (demand) or per therm is no energy price here: its unit
    says what it is and the signal is not applied (``mapping.supported``).
    """
    base = _item_base(measurement)
    if base is None:
        return 1.0, PER_KWH
    name, unit, scale = base
    if name == PER_KWH and scale in _SI_EXPONENT:
        return 10.0 ** _SI_EXPONENT[scale], f"{PER_KWH}:{unit}" if unit else PER_KWH
    return 1.0, _named(*base)


def from_openadr(program: str, raw: Mapping[str, Any]) -> DrEvent:
    """One event of a parsed ``oadrDistributeEvent`` (openleadr's dict form) for ``program``.

    Intervals without their own ``dtstart`` follow each other from the active period's start.
    An overall duration of 0 is no defined end (:data:`OPEN_ENDED`), and so is a last interval of
    duration 0 in such an event. Power values are converted to kW from the signal's item base.
    Raises :class:`EventError` for an event we cannot read (it is logged and opted out of).
    """
    try:
        descriptor = raw["event_descriptor"]
        period = raw["active_period"]
        start = _utc(period["dtstart"], "active period")
        duration = _duration(period.get("duration"))
        open_ended = duration == timedelta(0)
        if open_ended:
            duration = OPEN_ENDED
        tolerate = (period.get("tolerance") or {}).get("tolerate") or {}
        signals = []
        for signal in raw.get("event_signals") or ():
            kind = str(signal.get("signal_type") or "")
            measurement = signal.get("measurement")
            if kind in POWER_TYPES:
                kw_per_value, unit = _unit_of(measurement)
            elif kind in PRICE_TYPES:
                kw_per_value, unit = _price_unit_of(measurement)
            else:
                kw_per_value, unit = 1.0, "kW"
            at = start
            intervals = []
            ordered = sorted(signal.get("intervals") or (), key=lambda i: i.get("uid") or 0)
            for k, interval in enumerate(ordered):
                length = _duration(interval.get("duration"))
                begin = _utc(interval["dtstart"], "interval") if interval.get("dtstart") else at
                if open_ended and length == timedelta(0) and k == len(ordered) - 1:
                    length = start + duration - begin
                value = float(interval.get("signal_payload")) * kw_per_value
                intervals.append(Interval(begin, length, value))
                at = begin + length
            signals.append(
                Signal(
                    str(signal["signal_name"]),
                    kind,
                    tuple(intervals),
                    _targets_of(signal.get("targets_by_type") or signal.get("targets")),
                    unit,
                )
            )
        test = descriptor.get("test_event", False)
        return DrEvent(
            program=program,
            event_id=str(descriptor["event_id"]),
            modification_number=int(descriptor.get("modification_number") or 0),
            start=start,
            duration=duration,
            signals=tuple(signals),
            status=EventStatus(str(descriptor.get("event_status") or "far")),
            priority=int(descriptor.get("priority") or 0),
            test_event=test if isinstance(test, bool) else str(test).lower() not in {"false", "0", ""},
            targets=_targets_of(raw.get("targets_by_type") or raw.get("targets")),
            start_after=_duration(tolerate.get("startafter")),
            ramp_up=_duration(period.get("ramp_up") or period.get("ramp_up_period")),
            recovery=_duration(period.get("recovery") or period.get("recovery_period")),
            market_context=str(descriptor.get("market_context") or ""),
            response_required=raw.get("response_required", "always") == "always",
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise EventError(f"unreadable event: {exc!r}") from None
