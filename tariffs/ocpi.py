"""OCPI 2.2.1 mapping: ``Tariff`` JSON objects to and from the model, sessions in, CDR totals out.

Input is already-decoded JSON (dicts, lists, numbers); no files here. Numbers may be ``int``,
``float`` (converted through their shortest repr, so 0.25 stays 0.25) or ``Decimal`` (decode
with ``json.loads(text, parse_float=Decimal)`` to keep them exact). Every error names the path
of the offending field, e.g. ``elements[1].price_components[0].step_size``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from tariffs.cdr import CdrDimension, CdrTotals, ChargingPeriod, CostPart, Session
from tariffs.errors import TariffError, TariffParseError
from tariffs.model import (
    DayOfWeek,
    DimensionType,
    DisplayText,
    Price,
    PriceComponent,
    ReservationRestriction,
    Restrictions,
    Tariff,
    TariffElement,
    TariffType,
)
from tariffs.money import round_money, round_quantity

_E = TypeVar("_E", bound=enum.Enum)
JsonObject = Mapping[str, Any]


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _object(value: object, path: str) -> JsonObject:
    if not isinstance(value, Mapping):
        raise TariffParseError(path, f"expected an object, got {type(value).__name__}")
    return value


def _list(value: object, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise TariffParseError(path, f"expected a list, got {type(value).__name__}")
    return value


def _required(obj: JsonObject, key: str, path: str) -> Any:
    if obj.get(key) is None:
        raise TariffParseError(_join(path, key), "is required")
    return obj[key]


def _string(value: object, path: str, *, max_length: int | None = None) -> str:
    if not isinstance(value, str) or not value:
        raise TariffParseError(path, f"expected a non-empty string, got {value!r}")
    if max_length is not None and len(value) > max_length:
        raise TariffParseError(path, f"longer than {max_length} characters: {value!r}")
    return value


def _decimal(value: object, path: str, *, minimum: Decimal | None = Decimal(0)) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise TariffParseError(path, f"expected a number, got {value!r}")
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation as exc:
        raise TariffParseError(path, f"not a number: {value!r}") from exc
    if not number.is_finite():
        raise TariffParseError(path, f"not a finite number: {value!r}")
    if minimum is not None and number < minimum:
        raise TariffParseError(path, f"must be at least {minimum}, got {number}")
    return number


def _integer(value: object, path: str) -> int:
    number = _decimal(value, path)
    if number != number.to_integral_value():
        raise TariffParseError(path, f"expected a whole number, got {value!r}")
    return int(number)


def _enum(kind: type[_E], value: object, path: str) -> _E:
    try:
        return kind(value)
    except ValueError as exc:
        allowed = ", ".join(member.value for member in kind)
        raise TariffParseError(path, f"unknown value {value!r} (expected one of {allowed})") from exc


def parse_datetime(value: object, path: str) -> datetime:
    """An OCPI DateTime (RFC 3339, UTC; no offset means UTC) as a tz-aware UTC datetime."""
    text = _string(value, path)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise TariffParseError(path, f"not an RFC 3339 timestamp: {text!r}") from exc
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _time_of_day(value: object, path: str) -> time:
    text = _string(value, path)
    try:
        if len(text) != 5:
            raise ValueError(text)
        return time.fromisoformat(text)
    except ValueError as exc:
        raise TariffParseError(path, f"expected a time of day HH:MM, got {text!r}") from exc


def _date(value: object, path: str) -> date:
    text = _string(value, path)
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise TariffParseError(path, f"expected a date YYYY-MM-DD, got {text!r}") from exc


def _price(value: object, path: str) -> Price:
    obj = _object(value, path)
    incl = obj.get("incl_vat")
    return Price(
        excl_vat=_decimal(_required(obj, "excl_vat", path), _join(path, "excl_vat")),
        incl_vat=None if incl is None else _decimal(incl, _join(path, "incl_vat")),
    )


def _optional(obj: JsonObject, key: str, path: str, parse: Any) -> Any:
    value = obj.get(key)
    return None if value is None else parse(value, _join(path, key))


def parse_restrictions(value: object, path: str = "restrictions") -> Restrictions:
    """An OCPI ``TariffRestrictions`` object."""
    obj = _object(value, path)
    days = obj.get("day_of_week") or []
    return Restrictions(
        start_time=_optional(obj, "start_time", path, _time_of_day),
        end_time=_optional(obj, "end_time", path, _time_of_day),
        start_date=_optional(obj, "start_date", path, _date),
        end_date=_optional(obj, "end_date", path, _date),
        min_kwh=_optional(obj, "min_kwh", path, _decimal),
        max_kwh=_optional(obj, "max_kwh", path, _decimal),
        min_current_a=_optional(obj, "min_current", path, _decimal),
        max_current_a=_optional(obj, "max_current", path, _decimal),
        min_power_kw=_optional(obj, "min_power", path, _decimal),
        max_power_kw=_optional(obj, "max_power", path, _decimal),
        min_duration_s=_optional(obj, "min_duration", path, _integer),
        max_duration_s=_optional(obj, "max_duration", path, _integer),
        days_of_week=frozenset(
            _enum(DayOfWeek, day, _join(_join(path, "day_of_week"), i))
            for i, day in enumerate(_list(days, _join(path, "day_of_week")))
        ),
        reservation=_optional(obj, "reservation", path, lambda v, p: _enum(ReservationRestriction, v, p)),
    )


def parse_price_component(value: object, path: str) -> PriceComponent:
    obj = _object(value, path)
    try:
        return PriceComponent(
            dimension=_enum(DimensionType, _required(obj, "type", path), _join(path, "type")),
            price=_decimal(_required(obj, "price", path), _join(path, "price")),
            step_size=_integer(_required(obj, "step_size", path), _join(path, "step_size")),
            vat_percent=_optional(obj, "vat", path, _decimal),
        )
    except TariffParseError:
        raise
    except TariffError as exc:
        raise TariffParseError(path, str(exc)) from exc


def parse_element(value: object, path: str) -> TariffElement:
    obj = _object(value, path)
    components_path = _join(path, "price_components")
    components = _list(_required(obj, "price_components", path), components_path)
    if not components:
        raise TariffParseError(components_path, "needs at least one price component")
    return TariffElement(
        price_components=tuple(
            parse_price_component(component, _join(components_path, i))
            for i, component in enumerate(components)
        ),
        restrictions=_optional(obj, "restrictions", path, parse_restrictions),
    )


def parse_tariff(value: object, path: str = "") -> Tariff:
    """An OCPI 2.2.1 ``Tariff`` object as a ``Tariff``; raises ``TariffParseError`` naming the field."""
    obj = _object(value, path or "tariff")
    elements_path = _join(path, "elements")
    elements = _list(_required(obj, "elements", path), elements_path)
    if not elements:
        raise TariffParseError(elements_path, "a tariff needs at least one element")
    alt_text_path = _join(path, "tariff_alt_text")
    alt_text = tuple(
        DisplayText(
            language=_string(
                _required(_object(text, _join(alt_text_path, i)), "language", _join(alt_text_path, i)),
                _join(_join(alt_text_path, i), "language"),
            ),
            text=_string(
                _required(text, "text", _join(alt_text_path, i)), _join(_join(alt_text_path, i), "text")
            ),
        )
        for i, text in enumerate(_list(obj.get("tariff_alt_text") or [], alt_text_path))
    )
    currency = _string(_required(obj, "currency", path), _join(path, "currency"), max_length=3)
    if len(currency) != 3 or not currency.isalpha():
        raise TariffParseError(_join(path, "currency"), f"expected an ISO 4217 code, got {currency!r}")
    return Tariff(
        country_code=_optional(obj, "country_code", path, lambda v, p: _string(v, p, max_length=2)),
        party_id=_optional(obj, "party_id", path, lambda v, p: _string(v, p, max_length=3)),
        tariff_id=_string(_required(obj, "id", path), _join(path, "id"), max_length=36),
        currency=currency.upper(),
        elements=tuple(parse_element(element, _join(elements_path, i)) for i, element in enumerate(elements)),
        last_updated=_optional(obj, "last_updated", path, parse_datetime),
        tariff_type=_optional(obj, "type", path, lambda v, p: _enum(TariffType, v, p)),
        alt_text=alt_text,
        alt_url=_optional(obj, "tariff_alt_url", path, _string),
        min_price=_optional(obj, "min_price", path, _price),
        max_price=_optional(obj, "max_price", path, _price),
        start_date_time=_optional(obj, "start_date_time", path, parse_datetime),
        end_date_time=_optional(obj, "end_date_time", path, parse_datetime),
    )


def parse_session(value: object, path: str = "") -> Session:
    """A session given as OCPI charging periods: ``start_date_time``, ``end_date_time`` (optional
    for a running session) and ``charging_periods[{start_date_time, dimensions[{type, volume}]}]``.
    An OCPI ``CDR`` object has the same fields and is accepted as well."""
    obj = _object(value, path or "session")
    periods_path = _join(path, "charging_periods")
    periods: list[ChargingPeriod] = []
    for i, raw in enumerate(_list(obj.get("charging_periods") or [], periods_path)):
        period_path = _join(periods_path, i)
        period = _object(raw, period_path)
        dimensions_path = _join(period_path, "dimensions")
        dimensions: dict[CdrDimension, Decimal] = {}
        for j, raw_dimension in enumerate(_list(period.get("dimensions") or [], dimensions_path)):
            dimension_path = _join(dimensions_path, j)
            dimension = _object(raw_dimension, dimension_path)
            kind = _enum(
                CdrDimension, _required(dimension, "type", dimension_path), _join(dimension_path, "type")
            )
            if kind in dimensions:
                raise TariffParseError(dimension_path, f"dimension {kind.value} given twice in one period")
            minimum = None if kind is CdrDimension.ENERGY_EXPORT else Decimal(0)
            volume = _required(dimension, "volume", dimension_path)
            dimensions[kind] = _decimal(volume, _join(dimension_path, "volume"), minimum=minimum)
        periods.append(
            ChargingPeriod(
                start_utc=parse_datetime(
                    _required(period, "start_date_time", period_path), _join(period_path, "start_date_time")
                ),
                dimensions=dimensions,
                tariff_id=_optional(period, "tariff_id", period_path, _string),
            )
        )
    try:
        return Session(
            start_utc=parse_datetime(_required(obj, "start_date_time", path), _join(path, "start_date_time")),
            end_utc=_optional(obj, "end_date_time", path, parse_datetime),
            charging_periods=tuple(periods),
        )
    except TariffParseError:
        raise
    except TariffError as exc:
        raise TariffParseError(path or "session", str(exc)) from exc


def _format_datetime(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _price_to_ocpi(price: Price) -> dict[str, Decimal]:
    out = {"excl_vat": price.excl_vat}
    if price.incl_vat is not None:
        out["incl_vat"] = price.incl_vat
    return out


def _restrictions_to_ocpi(restrictions: Restrictions) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if restrictions.start_time is not None:
        out["start_time"] = restrictions.start_time.strftime("%H:%M")
    if restrictions.end_time is not None:
        out["end_time"] = restrictions.end_time.strftime("%H:%M")
    if restrictions.start_date is not None:
        out["start_date"] = restrictions.start_date.isoformat()
    if restrictions.end_date is not None:
        out["end_date"] = restrictions.end_date.isoformat()
    numbers = {
        "min_kwh": restrictions.min_kwh,
        "max_kwh": restrictions.max_kwh,
        "min_current": restrictions.min_current_a,
        "max_current": restrictions.max_current_a,
        "min_power": restrictions.min_power_kw,
        "max_power": restrictions.max_power_kw,
        "min_duration": restrictions.min_duration_s,
        "max_duration": restrictions.max_duration_s,
    }
    out.update({key: value for key, value in numbers.items() if value is not None})
    if restrictions.days_of_week:
        out["day_of_week"] = [day.value for day in sorted(restrictions.days_of_week, key=lambda d: d.index)]
    if restrictions.reservation is not None:
        out["reservation"] = restrictions.reservation.value
    return out


def tariff_to_ocpi(tariff: Tariff) -> dict[str, Any]:
    """The OCPI 2.2.1 ``Tariff`` object of ``tariff`` (numbers as ``Decimal``)."""
    elements: list[dict[str, Any]] = []
    for element in tariff.elements:
        components: list[dict[str, Any]] = []
        for component in element.price_components:
            encoded: dict[str, Any] = {"type": component.dimension.value, "price": component.price}
            if component.vat_percent is not None:
                encoded["vat"] = component.vat_percent
            encoded["step_size"] = component.step_size
            components.append(encoded)
        encoded_element: dict[str, Any] = {"price_components": components}
        if element.restrictions is not None:
            encoded_element["restrictions"] = _restrictions_to_ocpi(element.restrictions)
        elements.append(encoded_element)
    out: dict[str, Any] = {}
    if tariff.country_code is not None:
        out["country_code"] = tariff.country_code
    if tariff.party_id is not None:
        out["party_id"] = tariff.party_id
    out["id"] = tariff.tariff_id
    out["currency"] = tariff.currency
    if tariff.tariff_type is not None:
        out["type"] = tariff.tariff_type.value
    if tariff.alt_text:
        out["tariff_alt_text"] = [{"language": text.language, "text": text.text} for text in tariff.alt_text]
    if tariff.alt_url is not None:
        out["tariff_alt_url"] = tariff.alt_url
    if tariff.min_price is not None:
        out["min_price"] = _price_to_ocpi(tariff.min_price)
    if tariff.max_price is not None:
        out["max_price"] = _price_to_ocpi(tariff.max_price)
    out["elements"] = elements
    if tariff.start_date_time is not None:
        out["start_date_time"] = _format_datetime(tariff.start_date_time)
    if tariff.end_date_time is not None:
        out["end_date_time"] = _format_datetime(tariff.end_date_time)
    if tariff.last_updated is not None:
        out["last_updated"] = _format_datetime(tariff.last_updated)
    return out


def _cost_to_ocpi(part: CostPart, currency: str) -> dict[str, Decimal]:
    return {
        "excl_vat": round_money(part.excl_vat, currency),
        "incl_vat": round_money(part.incl_vat, currency),
    }


def cdr_totals_to_ocpi(totals: CdrTotals) -> dict[str, Any]:
    """The OCPI 2.2.1 CDR fields of ``totals``: money rounded half-up to the currency's minor
    unit (each field on its own), quantities to 4 decimals; cost parts that are zero and not
    priced are left out, as OCPI makes them optional."""
    currency = totals.currency
    out: dict[str, Any] = {
        "currency": currency,
        "start_date_time": _format_datetime(totals.start_utc),
        "end_date_time": _format_datetime(totals.end_utc),
        "total_cost": _cost_to_ocpi(totals.total_cost, currency),
    }
    priced = {line.dimension for line in totals.lines if not line.reservation}
    parts = {
        "total_fixed_cost": (DimensionType.FLAT, totals.total_fixed_cost),
        "total_energy_cost": (DimensionType.ENERGY, totals.total_energy_cost),
        "total_time_cost": (DimensionType.TIME, totals.total_time_cost),
        "total_parking_cost": (DimensionType.PARKING_TIME, totals.total_parking_cost),
    }
    out["total_energy"] = round_quantity(totals.total_energy_kwh)
    out["total_time"] = round_quantity(totals.total_time_h)
    out["total_parking_time"] = round_quantity(totals.total_parking_time_h)
    for key, (dimension, part) in parts.items():
        if dimension in priced:
            out[key] = _cost_to_ocpi(part, currency)
    if any(line.reservation for line in totals.lines):
        out["total_reservation_cost"] = _cost_to_ocpi(totals.total_reservation_cost, currency)
    if totals.total_reservation_time_h:
        out["total_reservation_time"] = round_quantity(totals.total_reservation_time_h)
    out["charging_periods"] = [
        {
            "start_date_time": _format_datetime(period.start_utc),
            "dimensions": [
                {"type": kind.value, "volume": volume} for kind, volume in period.dimensions.items()
            ],
            **({"tariff_id": period.tariff_id} if period.tariff_id is not None else {}),
        }
        for period in totals.charging_periods
    ]
    if totals.warnings:
        out["warnings"] = list(totals.warnings)
    return out
