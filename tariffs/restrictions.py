"""Whether a tariff element is active for a charging period (OCPI ``TariffRestrictions`` semantics).

Each restriction is evaluated at the start of the period: a CSMS starts a new charging period
whenever something that changes the price changes (OCPI CDRs), so a period has one price.
A restriction on a quantity the period does not report (e.g. ``max_power`` on a parking period
without power dimensions) does not hold: the element is skipped, and the next one is looked up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal

from tariffs.model import (
    DayOfWeek,
    DimensionType,
    PriceComponent,
    ReservationRestriction,
    Restrictions,
    TariffElement,
)

_MIDNIGHT = time(0, 0)


@dataclass(frozen=True)
class PeriodContext:
    """What restrictions look at, for one instant of a session.

    ``local_start`` is the period start in the location's time zone; ``duration_s`` is the time
    since the charging session started (the engine counts it from the end of a reservation that
    opens the session); ``energy_before_kwh`` what was consumed before the period. The
    current and power bounds are the period's lowest and highest values (None: unknown).
    ``reservation`` is the kind of reservation the period belongs to (None: not a reservation).
    """

    local_start: datetime
    duration_s: Decimal = Decimal(0)
    energy_before_kwh: Decimal = Decimal(0)
    min_current_a: Decimal | None = None
    max_current_a: Decimal | None = None
    min_power_kw: Decimal | None = None
    max_power_kw: Decimal | None = None
    reservation: ReservationRestriction | None = None


def in_time_window(start: time | None, end: time | None, at: time) -> bool:
    """``start <= at < end`` with wrap past midnight when ``end < start``; 00:00 ends the day."""
    if start is None and end is None:
        return True
    if start is None:
        return end is None or end == _MIDNIGHT or at < end
    if end is None or end == _MIDNIGHT:
        return at >= start
    if start <= end:
        return start <= at < end
    return at >= start or at < end


def _at_least(value: Decimal | None, bound: Decimal | None) -> bool:
    return bound is None or (value is not None and value >= bound)


def _below(value: Decimal | None, bound: Decimal | None) -> bool:
    return bound is None or (value is not None and value < bound)


def is_active(restrictions: Restrictions | None, context: PeriodContext) -> bool:
    """Whether an element with ``restrictions`` applies in ``context`` (all restrictions hold).

    Elements with a ``reservation`` restriction only price reservation periods, and elements
    without one never do. A ``RESERVATION`` element also prices an expired reservation (OCPI:
    a ``RESERVATION_EXPIRES`` element only takes precedence where one exists; see the engine).
    """
    if restrictions is None:
        return context.reservation is None
    if restrictions.reservation is None:
        if context.reservation is not None:
            return False
    elif context.reservation is None or (
        restrictions.reservation is ReservationRestriction.RESERVATION_EXPIRES
        and context.reservation is not ReservationRestriction.RESERVATION_EXPIRES
    ):
        return False
    local = context.local_start
    local_date = local.date()
    duration_s = context.duration_s
    return (
        in_time_window(restrictions.start_time, restrictions.end_time, local.time())
        and (restrictions.start_date is None or local_date >= restrictions.start_date)
        and (restrictions.end_date is None or local_date < restrictions.end_date)
        and (not restrictions.days_of_week or DayOfWeek.of(local_date) in restrictions.days_of_week)
        and _at_least(context.energy_before_kwh, restrictions.min_kwh)
        and _below(context.energy_before_kwh, restrictions.max_kwh)
        and _at_least(context.min_current_a, restrictions.min_current_a)
        and _below(context.max_current_a, restrictions.max_current_a)
        and _at_least(context.min_power_kw, restrictions.min_power_kw)
        and _below(context.max_power_kw, restrictions.max_power_kw)
        and (restrictions.min_duration_s is None or duration_s >= restrictions.min_duration_s)
        and (restrictions.max_duration_s is None or duration_s < restrictions.max_duration_s)
    )


def find_component(
    elements: Sequence[TariffElement], context: PeriodContext, dimension: DimensionType
) -> PriceComponent | None:
    """The component pricing ``dimension`` in ``context``: the first active element that has one
    (OCPI looks each dimension up on its own); None: the dimension is free."""
    ordered: Sequence[TariffElement] = elements
    if context.reservation is ReservationRestriction.RESERVATION_EXPIRES:
        # OCPI: an expired reservation is priced by a RESERVATION_EXPIRES element if there is one.
        def expires_first(element: TariffElement) -> int:
            restrictions = element.restrictions
            expires = (
                restrictions is not None
                and restrictions.reservation is ReservationRestriction.RESERVATION_EXPIRES
            )
            return 0 if expires else 1

        ordered = sorted(elements, key=expires_first)
    for element in ordered:
        component = element.component(dimension)
        if component is not None and is_active(element.restrictions, context):
            return component
    return None
