"""What a station assumes of its drivers' sessions beyond the solver's policy (pure: no I/O).

:class:`SessionPolicy` comes from the network file's ``policy.priority_tiers`` and
``policy.default_departure``: the weight a driver's membership tier gets in the solver's
priority-weighted max-min fairness, and the local time of day a session whose departure nobody
gave (neither the driver in the app nor the car) is planned to leave at, instead of the solver's
``Policy.default_stay`` after its arrival.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo

from csms.errors import SettingsError

DEFAULT_PRIORITY = 1.0
"""The weight of a session whose driver has no tier, or a tier the station does not name."""


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """A station's tier weights (``tier -> weight``, each > 0) and default departure.

    ``default_departure`` is a wall-clock time in the station's time zone (naive); ``None``
    leaves a session without a departure to the solver's ``default_stay``.
    """

    priority_tiers: tuple[tuple[str, float], ...] = ()
    default_departure: time | None = None

    def __post_init__(self) -> None:
        for tier, weight in self.priority_tiers:
            if not weight > 0:
                raise SettingsError(f"priority tier {tier!r}: the weight must be positive, got {weight:g}")
        if self.default_departure is not None and self.default_departure.tzinfo is not None:
            raise SettingsError("default departure: a local time of day, without a time zone")

    def priority(self, tier: str | None) -> float:
        """The priority weight of a driver of membership ``tier`` (1.0 without a tier or a weight for it)."""
        if tier is None:
            return DEFAULT_PRIORITY
        return dict(self.priority_tiers).get(tier, DEFAULT_PRIORITY)

    def departure_after(self, arrival: datetime, zone: tzinfo) -> datetime | None:
        """When a session that arrived at ``arrival`` and gave no departure leaves (UTC): the next
        ``default_departure`` in ``zone`` after it; ``None`` without a default departure."""
        if self.default_departure is None:
            return None
        return next_local_time(arrival, self.default_departure, zone)


def next_local_time(after: datetime, wall_clock: time, zone: tzinfo) -> datetime:
    """The first instant after ``after`` at which the clocks of ``zone`` read ``wall_clock`` (UTC).

    Counted on local calendar days, so a day on which the clocks change is as long as it is
    (23 or 25 hours). On the night they spring forward over ``wall_clock`` (it does not happen
    that night) the answer is as many minutes after midnight as on other days (02:30 is 03:30
    summer time); on the night they fall back (it happens twice) it is the first of the two.
    """
    day = after.astimezone(zone).date()
    moment = datetime.combine(day, wall_clock, tzinfo=zone).astimezone(UTC)
    if moment <= after:
        moment = datetime.combine(day + timedelta(days=1), wall_clock, tzinfo=zone).astimezone(UTC)
    return moment
