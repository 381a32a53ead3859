"""Prices at an instant, for drivers ("price now" in nearby search) and the solver (time-of-use).

The same element lookup as the engine (``tariffs.restrictions.find_component``), for a session
that starts at the instant unless told otherwise. Power and current are unknown unless given;
elements restricted on them are then skipped, as the engine skips them for periods without
those dimensions.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from decimal import Decimal

from tariffs.cdr import seconds
from tariffs.errors import TariffError
from tariffs.model import DimensionType, PriceComponent, Tariff
from tariffs.restrictions import PeriodContext, find_component

_HUNDRED = Decimal(100)


def _context_at(
    when_utc: datetime,
    time_zone: tzinfo,
    session_start_utc: datetime | None,
    energy_before_kwh: Decimal,
    power_kw: Decimal | None,
    current_a: Decimal | None,
) -> PeriodContext:
    if when_utc.utcoffset() is None:
        raise TariffError(f"instants must be tz-aware UTC, got {when_utc}")
    duration_s = (
        Decimal(0) if session_start_utc is None else max(seconds(when_utc - session_start_utc), Decimal(0))
    )
    return PeriodContext(
        local_start=when_utc.astimezone(time_zone),
        duration_s=duration_s,
        energy_before_kwh=energy_before_kwh,
        min_current_a=current_a,
        max_current_a=current_a,
        min_power_kw=power_kw,
        max_power_kw=power_kw,
    )


def prices_at(
    tariff: Tariff,
    when_utc: datetime,
    time_zone: tzinfo,
    *,
    session_start_utc: datetime | None = None,
    energy_before_kwh: Decimal = Decimal(0),
    power_kw: Decimal | None = None,
    current_a: Decimal | None = None,
) -> dict[DimensionType, PriceComponent]:
    """The component that prices each dimension at ``when_utc`` (for the driver's "price now").

    A session that would start at ``when_utc`` unless ``session_start_utc`` says otherwise;
    power and current unknown unless given (elements restricted on them are then skipped).
    """
    context = _context_at(when_utc, time_zone, session_start_utc, energy_before_kwh, power_kw, current_a)
    found = {dimension: find_component(tariff.elements, context, dimension) for dimension in DimensionType}
    return {dimension: component for dimension, component in found.items() if component is not None}


def energy_price_per_kwh_at(
    tariff: Tariff,
    when_utc: datetime,
    time_zone: tzinfo,
    *,
    include_vat: bool = False,
    session_start_utc: datetime | None = None,
    energy_before_kwh: Decimal = Decimal(0),
    power_kw: Decimal | None = None,
    current_a: Decimal | None = None,
) -> Decimal:
    """The ENERGY price per kWh at ``when_utc`` (excl. VAT unless ``include_vat``); 0 when free."""
    context = _context_at(when_utc, time_zone, session_start_utc, energy_before_kwh, power_kw, current_a)
    component = find_component(tariff.elements, context, DimensionType.ENERGY)
    if component is None:
        return Decimal(0)
    if include_vat and component.vat_percent is not None:
        return component.price * (1 + component.vat_percent / _HUNDRED)
    return component.price


def energy_prices(
    tariff: Tariff,
    start_utc: datetime,
    period_s: int,
    periods: int,
    time_zone: tzinfo,
    *,
    include_vat: bool = False,
    power_kw: Decimal | None = None,
    current_a: Decimal | None = None,
) -> list[Decimal]:
    """Time-of-use ENERGY prices per kWh for ``periods`` periods of ``period_s`` from ``start_utc``.

    Each period gets the price at its start, for a session that started at ``start_utc`` (so
    duration restrictions progress over the horizon); energy thresholds are not modelled here.
    """
    if period_s <= 0 or periods < 0:
        raise TariffError(
            f"need a positive period length and a non-negative count, got {period_s} s x {periods}"
        )
    return [
        energy_price_per_kwh_at(
            tariff,
            start_utc + timedelta(seconds=period_s * k),
            time_zone,
            include_vat=include_vat,
            session_start_utc=start_utc,
            power_kw=power_kw,
            current_a=current_a,
        )
        for k in range(periods)
    ]
