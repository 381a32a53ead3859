"""The pricing engine (pure): a tariff and a session's charging periods in, OCPI CDR totals out.

The OCPI 2.2.1 rules it follows, and the choices it makes where OCPI is silent:

* Per dimension, per period, the first tariff element (in order) whose restrictions all hold
  *and* that has a price component of that dimension prices it. Dimensions are looked up
  independently, so ENERGY may come from a later element than TIME. No element: free.
* FLAT is charged once per session: the first period with an applicable FLAT component.
* ``step_size`` applies to the session total of a dimension, with the step of the last
  price component used for it; the rounded-up extra is billed on the last priced period of
  that dimension. ENERGY is always rounded; TIME and PARKING_TIME are rounded once between
  them (OCPI CDRs: "in the cases that TIME and PARKING_TIME Tariff Elements are both used,
  step_size is only taken into account for the total parking duration"): the PARKING_TIME
  total when parking was priced in the session, otherwise the TIME total, wherever in the
  session the parking came. A step_size of 0 means no rounding.
* A period's TIME/PARKING_TIME/RESERVATION_TIME volumes are used as measured. A period with
  none of them lasts until the next period starts (or the session ends) and is charging time,
  unless it shows that no energy flowed (ENERGY 0, or without ENERGY a power or current of 0):
  then it is parking time (OCPI: PARKING_TIME is "time not charging", and total_parking_time
  the time "where no energy was transferred"). In a live estimate the open last period is
  charging time.
* min_price/max_price bound the total, excl. and incl. VAT independently; a bound without an
  incl. VAT amount moves incl. VAT in proportion. A component without VAT has incl == excl.
* A period's current and power bounds are its MIN_/MAX_ values; a period that reports only one
  of CURRENT/MIN_CURRENT/MAX_CURRENT (or of the power ones) is taken at that value for both
  bounds. A period reporting none of them matches no element restricted on them.
* Restrictions are evaluated at each period's start (``tariffs.restrictions``): a CSMS opens a
  new period whenever the price changes, so each period has one price. ``min_duration``/
  ``max_duration`` count from the start of the charging session: from the session start, or,
  when the session opens with reservation periods, from the first period after them (OCPI: a
  reservation ends when the driver starts charging; the duration is the Charging Session's).
* Reservation periods (a RESERVATION_TIME dimension) are priced only by elements with a
  ``reservation`` restriction (TIME on the reservation time, FLAT as a reservation fee) and
  add up to ``total_reservation_cost``. A reservation expired when no charging session followed
  it (no period other than reservation periods); an expired reservation prefers
  RESERVATION_EXPIRES.
* ``total_time`` runs from the earlier of the session start and the first period start to the
  session end; a period outside the session adds the warning ``periods_outside_start_end_date_time``,
  a tariff not in force at the session start ``tariff_not_in_force_at_session_start``.
* Amounts stay exact; rounding per currency happens at the edge (``tariffs.money``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal

from tariffs.cdr import CdrDimension, CdrTotals, ChargingPeriod, CostPart, PricedLine, Session, seconds
from tariffs.errors import TariffError
from tariffs.model import DimensionType, Price, PriceComponent, ReservationRestriction, Tariff, TariffVersions
from tariffs.prices import energy_price_per_kwh_at, energy_prices, prices_at
from tariffs.restrictions import PeriodContext, find_component

__all__ = [
    "energy_price_per_kwh_at",
    "energy_prices",
    "live_estimate",
    "price_session",
    "price_session_in_force",
    "prices_at",
]

logger = logging.getLogger(__name__)

_HUNDRED = Decimal(100)
_SECONDS_PER_HOUR = Decimal(3600)
_WH_PER_KWH = Decimal(1000)
# Measured volumes come as decimal hours/kWh (e.g. 0.3666666667 h); before rounding up to a
# step they are normalised to a millisecond / milliwatt-hour so representation noise does not
# cost the driver a whole extra step.
_STEP_RESOLUTION = Decimal("0.001")

# Where a period's lowest/highest current and power come from, best source first: a period that
# reports one value only (CURRENT, or MAX_CURRENT alone) is taken at that value for both bounds.
_MIN_CURRENT_FROM = (CdrDimension.MIN_CURRENT, CdrDimension.CURRENT, CdrDimension.MAX_CURRENT)
_MAX_CURRENT_FROM = (CdrDimension.MAX_CURRENT, CdrDimension.CURRENT, CdrDimension.MIN_CURRENT)
_MIN_POWER_FROM = (CdrDimension.MIN_POWER, CdrDimension.POWER, CdrDimension.MAX_POWER)
_MAX_POWER_FROM = (CdrDimension.MAX_POWER, CdrDimension.POWER, CdrDimension.MIN_POWER)

WARNING_PERIODS_OUTSIDE_SESSION = "periods_outside_start_end_date_time"
WARNING_TARIFF_NOT_IN_FORCE = "tariff_not_in_force_at_session_start"


@dataclass(frozen=True)
class _Span:
    """A charging period with what the engine derived from it."""

    index: int
    period: ChargingPeriod
    context: PeriodContext
    quantities: Mapping[DimensionType, Decimal]


def _first_volume(period: ChargingPeriod, *dimensions: CdrDimension) -> Decimal | None:
    for dimension in dimensions:
        volume = period.volume(dimension)
        if volume is not None:
            return volume
    return None


def _is_reservation(period: ChargingPeriod) -> bool:
    return period.volume(CdrDimension.RESERVATION_TIME) is not None


def _is_expired_reservation(session: Session) -> bool:
    """OCPI RESERVATION_EXPIRES: the driver did not start a charging session after reserving."""
    return not any(not _is_reservation(period) for period in session.charging_periods)


def _charging_session_start(session: Session) -> datetime:
    """Where ``min_duration``/``max_duration`` count from: the session start, or after the
    reservation periods that open it (a reservation ends when the driver starts charging)."""
    periods = session.charging_periods
    if not periods or not _is_reservation(periods[0]):
        return session.start_utc
    after = next((period for period in periods if not _is_reservation(period)), None)
    return session.start_utc if after is None else max(after.start_utc, session.start_utc)


def _no_energy_flowed(period: ChargingPeriod) -> bool:
    """Whether the period shows the EV was not charging: ENERGY 0, or (without ENERGY) a
    power or current of 0. Without any of them nothing is known and the period is charging."""
    energy = period.volume(CdrDimension.ENERGY)
    if energy is not None:
        return energy == 0
    power = _first_volume(period, CdrDimension.MAX_POWER, CdrDimension.POWER)
    if power is not None:
        return power == 0
    current = _first_volume(period, CdrDimension.MAX_CURRENT, CdrDimension.CURRENT)
    return current is not None and current == 0


def _spans(session: Session, end_utc: datetime, time_zone: tzinfo, *, open_last: bool) -> Iterator[_Span]:
    periods = session.charging_periods
    reservation_kind = (
        ReservationRestriction.RESERVATION_EXPIRES
        if _is_expired_reservation(session)
        else ReservationRestriction.RESERVATION
    )
    charging_start_utc = _charging_session_start(session)
    energy_before_kwh = Decimal(0)
    for index, period in enumerate(periods):
        is_last = index + 1 == len(periods)
        period_end = end_utc if is_last else periods[index + 1].start_utc
        length_h = max(seconds(period_end - period.start_utc), Decimal(0)) / _SECONDS_PER_HOUR
        reservation_h = period.volume(CdrDimension.RESERVATION_TIME)
        time_h = period.volume(CdrDimension.TIME)
        parking_h = period.volume(CdrDimension.PARKING_TIME)
        if time_h is None and parking_h is None and reservation_h is None:
            if _no_energy_flowed(period) and not (open_last and is_last):
                parking_h = length_h
            else:
                time_h = length_h
        energy_kwh = period.volume(CdrDimension.ENERGY) or Decimal(0)
        since_utc = session.start_utc if reservation_h is not None else charging_start_utc
        context = PeriodContext(
            local_start=period.start_utc.astimezone(time_zone),
            duration_s=max(seconds(period.start_utc - since_utc), Decimal(0)),
            energy_before_kwh=energy_before_kwh,
            min_current_a=_first_volume(period, *_MIN_CURRENT_FROM),
            max_current_a=_first_volume(period, *_MAX_CURRENT_FROM),
            min_power_kw=_first_volume(period, *_MIN_POWER_FROM),
            max_power_kw=_first_volume(period, *_MAX_POWER_FROM),
            reservation=reservation_kind if reservation_h is not None else None,
        )
        if reservation_h is not None:
            quantities = {DimensionType.TIME: reservation_h}
        else:
            quantities = {DimensionType.ENERGY: energy_kwh}
            if time_h is not None:
                quantities[DimensionType.TIME] = time_h
            if parking_h is not None:
                quantities[DimensionType.PARKING_TIME] = parking_h
        yield _Span(index, period, context, quantities)
        energy_before_kwh += energy_kwh


def _line(
    span_index: int,
    start_utc: datetime,
    dimension: DimensionType,
    component: PriceComponent,
    measured: Decimal,
    *,
    reservation: bool,
) -> PricedLine:
    return PricedLine(
        span_index, start_utc, dimension, component, measured, measured, Decimal(0), Decimal(0), reservation
    )


def _round_up_to_step(measured: Decimal, step_size: int, units_per_measure: Decimal) -> Decimal:
    """``measured`` rounded up to a whole number of ``step_size`` units (e.g. Wh for kWh)."""
    if step_size <= 0 or measured <= 0:
        return measured
    units = (measured * units_per_measure).quantize(_STEP_RESOLUTION, rounding=ROUND_HALF_EVEN)
    if units % step_size == 0:
        return measured
    steps = math.ceil(units / step_size)
    return Decimal(steps * step_size) / units_per_measure


def _apply_step_size(lines: list[PricedLine], indices: list[int], units_per_measure: Decimal) -> None:
    """Round the total of ``lines[indices]`` with the last one's step; the extra goes to the last."""
    if not indices:
        return
    last = indices[-1]
    measured = sum((lines[i].measured for i in indices), Decimal(0))
    billed = _round_up_to_step(measured, lines[last].component.step_size, units_per_measure)
    if billed != measured:
        lines[last] = replace(lines[last], billed=lines[last].billed + billed - measured)


def _with_cost(line: PricedLine) -> PricedLine:
    excl = line.component.price * line.billed
    vat = line.component.vat_percent
    incl = excl if vat is None else excl * (1 + vat / _HUNDRED)
    return replace(line, cost_excl_vat=excl, cost_incl_vat=incl)


def _priced_lines(
    tariff: Tariff, spans: Sequence[_Span], fallback: PeriodContext, start_utc: datetime
) -> list[PricedLine]:
    elements = tariff.elements
    lines: list[PricedLine] = []
    flat_charged = {False: False, True: False}  # one FLAT for the session, one for a reservation
    for span in spans:
        reservation = span.context.reservation is not None
        if not flat_charged[reservation]:
            flat = find_component(elements, span.context, DimensionType.FLAT)
            if flat is not None:
                lines.append(
                    _line(
                        span.index,
                        span.period.start_utc,
                        DimensionType.FLAT,
                        flat,
                        Decimal(1),
                        reservation=reservation,
                    )
                )
                flat_charged[reservation] = True
        for dimension, quantity in span.quantities.items():
            if quantity == 0:
                continue
            component = find_component(elements, span.context, dimension)
            if component is not None:
                lines.append(
                    _line(
                        span.index,
                        span.period.start_utc,
                        dimension,
                        component,
                        quantity,
                        reservation=reservation,
                    )
                )
    if not spans:  # a session without periods still owes a flat fee
        flat = find_component(elements, fallback, DimensionType.FLAT)
        if flat is not None:
            lines.append(_line(-1, start_utc, DimensionType.FLAT, flat, Decimal(1), reservation=False))
    energy = [
        i for i, line in enumerate(lines) if line.dimension is DimensionType.ENERGY and not line.reservation
    ]
    _apply_step_size(lines, energy, _WH_PER_KWH)
    charging = [
        i for i, line in enumerate(lines) if line.dimension is DimensionType.TIME and not line.reservation
    ]
    parking = [
        i
        for i, line in enumerate(lines)
        if line.dimension is DimensionType.PARKING_TIME and not line.reservation
    ]
    _apply_step_size(lines, parking or charging, _SECONDS_PER_HOUR)
    reserved = [
        i for i, line in enumerate(lines) if line.dimension is DimensionType.TIME and line.reservation
    ]
    _apply_step_size(lines, reserved, _SECONDS_PER_HOUR)
    return [_with_cost(line) for line in lines]


def _part(
    lines: Sequence[PricedLine], dimension: DimensionType | None, *, reservation: bool = False
) -> CostPart:
    chosen = [
        line
        for line in lines
        if line.reservation is reservation and (dimension is None or line.dimension is dimension)
    ]
    return CostPart(
        sum((line.cost_excl_vat for line in chosen), Decimal(0)),
        sum((line.cost_incl_vat for line in chosen), Decimal(0)),
    )


def _bounded(total: CostPart, bound: Price, *, lower: bool) -> tuple[CostPart, bool]:
    """``total`` raised to (``lower``) or capped at ``bound``, excl. and incl. VAT independently."""

    def beyond(value: Decimal, limit: Decimal) -> bool:
        return value < limit if lower else value > limit

    excl, incl = total.excl_vat, total.incl_vat
    applied = False
    if beyond(excl, bound.excl_vat):
        applied = True
        excl = bound.excl_vat
        if bound.incl_vat is None:
            incl = total.incl_vat * excl / total.excl_vat if total.excl_vat else excl
    if bound.incl_vat is not None and beyond(incl, bound.incl_vat):
        applied = True
        incl = bound.incl_vat
    return CostPart(excl, incl), applied


def _sum_volume(session: Session, dimension: CdrDimension) -> Decimal:
    return sum((period.volume(dimension) or Decimal(0) for period in session.charging_periods), Decimal(0))


def _price(
    tariff: Tariff, session: Session, end_utc: datetime, time_zone: tzinfo, *, open_last: bool = False
) -> CdrTotals:
    periods = session.charging_periods
    if periods and end_utc < periods[-1].start_utc:
        raise TariffError(f"the session ends ({end_utc.isoformat()}) before its last charging period starts")
    warnings: list[str] = []
    if any(period.start_utc < session.start_utc or period.start_utc > end_utc for period in periods):
        warnings.append(WARNING_PERIODS_OUTSIDE_SESSION)
    if not tariff.in_force_at(session.start_utc):
        warnings.append(WARNING_TARIFF_NOT_IN_FORCE)
    for warning in warnings:
        logger.info("pricing tariff %s: %s", tariff.tariff_id, warning)
    spans = list(_spans(session, end_utc, time_zone, open_last=open_last))
    fallback = PeriodContext(local_start=session.start_utc.astimezone(time_zone))
    lines = _priced_lines(tariff, spans, fallback, session.start_utc)
    parts = {
        dimension: _part(lines, dimension)
        for dimension in (
            DimensionType.FLAT,
            DimensionType.ENERGY,
            DimensionType.TIME,
            DimensionType.PARKING_TIME,
        )
    }
    reservation = _part(lines, None, reservation=True)
    total = sum(parts.values(), reservation)
    min_applied = max_applied = False
    if tariff.min_price is not None:
        total, min_applied = _bounded(total, tariff.min_price, lower=True)
    if tariff.max_price is not None:
        total, max_applied = _bounded(total, tariff.max_price, lower=False)
    first_utc = min([session.start_utc, *(period.start_utc for period in periods)])
    return CdrTotals(
        currency=tariff.currency,
        total_cost=total,
        total_fixed_cost=parts[DimensionType.FLAT],
        total_energy_cost=parts[DimensionType.ENERGY],
        total_time_cost=parts[DimensionType.TIME],
        total_parking_cost=parts[DimensionType.PARKING_TIME],
        total_reservation_cost=reservation,
        total_energy_kwh=_sum_volume(session, CdrDimension.ENERGY),
        total_time_h=max(seconds(end_utc - first_utc), Decimal(0)) / _SECONDS_PER_HOUR,
        total_parking_time_h=sum(
            (
                span.quantities.get(DimensionType.PARKING_TIME, Decimal(0))
                for span in spans
                if span.context.reservation is None
            ),
            Decimal(0),
        ),
        total_reservation_time_h=_sum_volume(session, CdrDimension.RESERVATION_TIME),
        start_utc=session.start_utc,
        end_utc=end_utc,
        charging_periods=periods,
        lines=tuple(lines),
        min_price_applied=min_applied,
        max_price_applied=max_applied,
        warnings=tuple(warnings),
    )


def price_session(tariff: Tariff, session: Session, time_zone: tzinfo) -> CdrTotals:
    """The CDR totals of a finished ``session`` under ``tariff``; restrictions in ``time_zone``.

    Pick the tariff with ``TariffVersions.in_force_at(session.start_utc)`` when versions exist.
    """
    if session.end_utc is None:
        raise TariffError("the session has not ended; use live_estimate for a running session")
    return _price(tariff, session, session.end_utc, time_zone)


def price_session_in_force(versions: TariffVersions, session: Session, time_zone: tzinfo) -> CdrTotals:
    """``price_session`` with the version in force when the session started (later edits do not
    reprice sessions already under way); raises ``TariffNotInForceError`` when none was."""
    return price_session(versions.in_force_at(session.start_utc), session, time_zone)


def live_estimate(tariff: Tariff, session: Session, now_utc: datetime, time_zone: tzinfo) -> CdrTotals:
    """What a running ``session`` would cost if it stopped at ``now_utc`` (step_size, min price included).

    The open last period lasts until ``now_utc``; when it reports no TIME/PARKING_TIME volume
    yet, that time counts as charging time.
    """
    if now_utc.utcoffset() is None:
        raise TariffError("now_utc must be tz-aware")
    end_utc = session.end_utc if session.end_utc is not None else now_utc
    return _price(tariff, session, end_utc, time_zone, open_last=session.end_utc is None)
