"""What makes a station re-solve, and how bursts of it are coalesced.

Pure: the caller (the central system's smart-charging loop, or the simulator) feeds
triggers with their times and asks when the next solve is due; no clocks, no tasks.
A burst (ten cars arriving at 08:00, a meter-value storm) becomes one solve: a solve
runs once the station has been quiet for ``quiet_s``, but never later than ``max_delay_s``
after the first trigger it covers. A cap or price change is urgent and skips the wait.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta


class TriggerKind(enum.Enum):
    SESSION_STARTED = "session-started"
    SESSION_ENDED = "session-ended"
    NEED_CHANGED = "need-changed"  # new energy need or departure (driver, NotifyEVChargingNeeds)
    UNDER_DRAWING = "under-drawing"  # a car draws less than allocated: free its share
    OVER_DRAWING = "over-drawing"  # a charger draws more than allowed
    CAP_CHANGED = "cap-changed"  # utility event, manual peak event, limit change
    PRICE_CHANGED = "price-changed"
    PROFILE_REJECTED = "profile-rejected"
    PERIODIC = "periodic"


URGENT = frozenset({TriggerKind.CAP_CHANGED, TriggerKind.OVER_DRAWING})


@dataclass(frozen=True, slots=True)
class Trigger:
    kind: TriggerKind
    at: datetime
    station_id: str
    detail: str = ""


@dataclass(slots=True)
class Coalescer:
    """Collects one station's triggers and says when to solve."""

    quiet_s: float = 1.0
    max_delay_s: float = 5.0
    pending: list[Trigger] = field(default_factory=list)

    def add(self, trigger: Trigger) -> None:
        self.pending.append(trigger)

    def due_at(self) -> datetime | None:
        """When the pending triggers should be solved for (``None``: nothing pending)."""
        if not self.pending:
            return None
        if any(t.kind in URGENT for t in self.pending):
            return min(t.at for t in self.pending if t.kind in URGENT)
        first = min(t.at for t in self.pending)
        last = max(t.at for t in self.pending)
        return min(last + timedelta(seconds=self.quiet_s), first + timedelta(seconds=self.max_delay_s))

    def take(self, now: datetime) -> tuple[Trigger, ...]:
        """The triggers a solve at ``now`` covers (empty when none is due yet)."""
        due = self.due_at()
        if due is None or now < due:
            return ()
        taken = tuple(self.pending)
        self.pending.clear()
        return taken


def under_drawing(
    allocated_a: float, measured_a: float, *, tolerance_a: float = 1.0, share: float = 0.8
) -> bool:
    """True when a car draws clearly less than allocated: below ``share`` of it, by over ``tolerance_a``."""
    return allocated_a - measured_a > tolerance_a and measured_a < share * allocated_a


def over_drawing(allowed_a: float, measured_a: float, *, tolerance_a: float = 1.0) -> bool:
    return measured_a - allowed_a > tolerance_a
