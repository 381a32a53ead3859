"""Small builders for hand-checked tariffs and sessions in the tariffs tests."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from tariffs.cdr import CdrDimension, ChargingPeriod, Session
from tariffs.model import DimensionType, PriceComponent, Restrictions, Tariff, TariffElement

D = Decimal


def at(text: str) -> datetime:
    """A UTC instant from ``YYYY-MM-DDTHH:MM[:SS]``."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def component(
    dimension: DimensionType, price: str, step_size: int = 1, vat: str | None = None
) -> PriceComponent:
    return PriceComponent(dimension, D(price), step_size, None if vat is None else D(vat))


def element(*components: PriceComponent, restrictions: Restrictions | None = None) -> TariffElement:
    return TariffElement(tuple(components), restrictions)


def tariff(*elements: TariffElement, **fields: object) -> Tariff:
    return Tariff(tariff_id="T1", currency="EUR", elements=tuple(elements), **fields)  # type: ignore[arg-type]


def period(start: str, **volumes: str) -> ChargingPeriod:
    """A charging period; keyword names are CDR dimension types in lower case (``energy="5"``)."""
    return ChargingPeriod(at(start), {CdrDimension(name.upper()): D(v) for name, v in volumes.items()})


def session(start: str, end: str | None, *periods: ChargingPeriod) -> Session:
    return Session(at(start), tuple(periods), None if end is None else at(end))
