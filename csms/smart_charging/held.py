"""What a charger holds: the Tx profiles it accepted, as limits in absolute time (pure: no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from optimizer import profiles as builders
from optimizer.types import Evse, RateUnit, Schedule


def per_ampere(evse: Evse) -> float:
    """Wire units per ampere: 1 for profiles in A, W per A for profiles in W."""
    return 1.0 if evse.rate_unit is RateUnit.AMPERE else evse.kw_per_a * 1000.0


@dataclass(frozen=True, slots=True)
class HeldProfile:
    """A Tx profile a charger accepted: wire limits (in the EVSE's unit) from ``start``."""

    transaction_id: str
    start: datetime
    periods: tuple[tuple[int, float], ...]  # (offset [s], limit in the EVSE's rate unit)
    duration_s: int

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=self.duration_s)

    def wire_limit_at(self, moment: datetime) -> float | None:
        """The limit in force at ``moment`` (``None`` before the start or after the end)."""
        offset_s = (moment - self.start).total_seconds()
        if offset_s < 0 or offset_s >= self.duration_s:
            return None
        limit = self.periods[0][1]
        for start_s, value in self.periods:
            if start_s > offset_s:
                break
            limit = value
        return limit

    @classmethod
    def of(cls, schedule: Schedule, evse: Evse, transaction_id: str, max_periods: int) -> HeldProfile:
        """What a charger holds once it accepted the Tx profile built from ``schedule`` for ``evse``."""
        merged = builders.merged_periods(schedule.row(evse.evse_id), period_s=schedule.period_s, evse=evse)
        kept, duration_s = builders.bounded_periods(
            merged, duration_s=schedule.periods * schedule.period_s, max_periods=max_periods
        )
        return cls(transaction_id, schedule.start.replace(microsecond=0), tuple(kept), duration_s)
