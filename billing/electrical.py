"""Power and current of a charging session over time, for OCPI power/current restrictions (pure).

OCPI 2.2.1 prices an element restricted by ``min_power``/``max_power``/``min_current``/
``max_current`` when the charging period's ``MIN_POWER``/``MAX_POWER`` (kW) or ``MIN_CURRENT``/
``MAX_CURRENT`` (A, summed over the phases) satisfy it, and a CSMS opens a new period when the
price changes. Billing builds those dimensions from the charger's ``Power.Active.Import`` and
``Current.Import`` samples (``meter_samples``):

* A sample holds until the next one (sample and hold: OCPP samples are readings at an instant,
  the charger reports again when it samples again); before the first sample of the session, the
  first sample's value holds (chargers sample at ``Transaction.Begin``).
* A charging period's MIN/MAX are the lowest and highest values held during it.
* Where the held value crosses a threshold of the tariff (a restriction's bound), a period ends
  and a new one starts, so every period lies wholly on one side of every threshold and is priced
  by the element that applies to it.
* Without samples of a quantity, periods carry no dimension for it and elements restricted by it
  never apply (the engine skips them: OCPI's rule for an unknown value).
* Idle (parking) periods carry no power or current: nothing flows.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from tariffs.cdr import CdrDimension
from tariffs.model import Tariff

POWER_MEASURAND = "Power.Active.Import"
CURRENT_MEASURAND = "Current.Import"
_PHASES = frozenset({"L1", "L2", "L3", "L1-N", "L2-N", "L3-N"})
_W_PER_KW = Decimal(1000)
_RESOLUTION = Decimal("0.001")


@dataclass(frozen=True, slots=True)
class Held:
    """A sampled quantity as a step function of time (each value holds until the next sample)."""

    instants: tuple[datetime, ...]
    values: tuple[Decimal, ...]

    @classmethod
    def of(cls, samples: Iterable[tuple[datetime, Decimal]]) -> Held | None:
        """From ``(instant, value)`` samples in any order (a repeated instant keeps the last)."""
        points = dict(sorted(samples, key=lambda sample: sample[0]))
        if not points:
            return None
        instants = tuple(sorted(points))
        return cls(instants, tuple(points[at] for at in instants))

    def at(self, instant: datetime) -> Decimal:
        """The value held at ``instant`` (the first sample's before it)."""
        i = bisect.bisect_right(self.instants, instant)
        return self.values[max(i - 1, 0)]

    def range(self, begin: datetime, end: datetime) -> tuple[Decimal, Decimal]:
        """The lowest and highest values held during ``[begin, end)``."""
        first = bisect.bisect_right(self.instants, begin)
        last = bisect.bisect_left(self.instants, end)
        held = [self.at(begin), *self.values[first:last]]
        return min(held), max(held)

    def crossings(self, thresholds: Iterable[Decimal], begin: datetime, end: datetime) -> set[datetime]:
        """Sample instants in ``(begin, end)`` where the held value moves across a threshold."""
        levels = sorted(set(thresholds))
        if not levels:
            return set()
        found: set[datetime] = set()
        for (_, v0), (t1, v1) in itertools.pairwise(zip(self.instants, self.values, strict=True)):
            if begin < t1 < end and bisect.bisect_right(levels, v0) != bisect.bisect_right(levels, v1):
                found.add(t1)
        return found


@dataclass(frozen=True, slots=True)
class Electrical:
    """A session's power (kW) and current (A, all phases) samples; either may be missing."""

    power_kw: Held | None = None
    current_a: Held | None = None

    def splits(self, tariff: Tariff, begin: datetime, end: datetime) -> set[datetime]:
        """Where a power or current threshold of ``tariff`` is crossed within ``(begin, end)``."""
        power: set[Decimal] = set()
        current: set[Decimal] = set()
        for element in tariff.elements:
            r = element.restrictions
            if r is None:
                continue
            power.update(v for v in (r.min_power_kw, r.max_power_kw) if v is not None)
            current.update(v for v in (r.min_current_a, r.max_current_a) if v is not None)
        found: set[datetime] = set()
        if self.power_kw is not None:
            found |= self.power_kw.crossings(power, begin, end)
        if self.current_a is not None:
            found |= self.current_a.crossings(current, begin, end)
        return found

    def dimensions(self, begin: datetime, end: datetime) -> dict[CdrDimension, Decimal]:
        """The ``MIN_/MAX_POWER`` and ``MIN_/MAX_CURRENT`` of a charging period ``[begin, end)``."""
        found: dict[CdrDimension, Decimal] = {}
        if self.power_kw is not None:
            low, high = self.power_kw.range(begin, end)
            found[CdrDimension.MIN_POWER], found[CdrDimension.MAX_POWER] = low, high
        if self.current_a is not None:
            low, high = self.current_a.range(begin, end)
            found[CdrDimension.MIN_CURRENT], found[CdrDimension.MAX_CURRENT] = low, high
        return found


NO_SAMPLES = Electrical()


def _quantity(value: float) -> Decimal:
    return max(Decimal(repr(float(value))), Decimal(0)).quantize(_RESOLUTION)


def _summed(rows: Sequence[tuple[datetime, str, Decimal]]) -> list[tuple[datetime, Decimal]]:
    """One value per instant: the all-phase value (phase ``''``) if sent, else the phases' sum."""
    total: dict[datetime, Decimal] = {}
    phases: dict[datetime, Decimal] = {}
    for at, phase, value in rows:
        if phase == "":
            total[at] = value
        elif phase in _PHASES:
            phases[at] = phases.get(at, Decimal(0)) + value
    return [(at, total.get(at, phases.get(at, Decimal(0)))) for at in total.keys() | phases.keys()]


def electrical_of(samples: Iterable[tuple[datetime, str, str, float, str]]) -> Electrical:
    """From ``(sampled_at, measurand, phase, value, unit)`` rows of one transaction.

    Power in ``W`` or ``kW`` (to kW); current in ``A``. Other measurands and units are ignored.
    """
    power: list[tuple[datetime, str, Decimal]] = []
    current: list[tuple[datetime, str, Decimal]] = []
    for at, measurand, phase, value, unit in samples:
        unit_lower = unit.lower()
        if measurand == POWER_MEASURAND and unit_lower in ("w", "kw"):
            kw = _quantity(value) / _W_PER_KW if unit_lower == "w" else _quantity(value)
            power.append((at, phase, kw))
        elif measurand == CURRENT_MEASURAND and unit_lower == "a":
            current.append((at, phase, _quantity(value)))
    return Electrical(Held.of(_summed(power)), Held.of(_summed(current)))
