"""Receipts and credit notes (pure): line items from CDR totals, the JSON body and its HTML page.

Amounts are rounded per line to the currency's minor unit (``tariffs.money``). The payable total
is the CDR ``total_cost`` rounded the same way; when the tariff's minimum or maximum price
applied, or per-line rounding does not add up to it, an adjustment line makes the lines add up
to the total exactly (a receipt's lines always sum to its total). Times are shown in the
station's local time; everything stored stays UTC.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any

from tariffs.cdr import CdrTotals
from tariffs.model import DimensionType
from tariffs.money import round_money, round_quantity
from tariffs.promotions import DiscountedTotal, DiscountKind

_SECONDS_PER_HOUR = Decimal(3600)
_DESCRIPTIONS = {
    DimensionType.FLAT: ("Session fee", "session"),
    DimensionType.ENERGY: ("Energy", "kWh"),
    DimensionType.TIME: ("Charging time", "h"),
    DimensionType.PARKING_TIME: ("Idle time", "h"),
}


@dataclass(frozen=True, slots=True)
class LineItem:
    """One line of a receipt or credit note (amounts rounded; negative on a credit note)."""

    kind: str
    description: str
    quantity: Decimal
    unit: str
    unit_price: Decimal | None
    vat_percent: Decimal | None
    amount_excl_vat: Decimal
    amount_incl_vat: Decimal

    @property
    def vat_amount(self) -> Decimal:
        return self.amount_incl_vat - self.amount_excl_vat

    def negated(self) -> LineItem:
        return LineItem(
            self.kind,
            self.description,
            -self.quantity,
            self.unit,
            self.unit_price,
            self.vat_percent,
            -self.amount_excl_vat,
            -self.amount_incl_vat,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "description": self.description,
            "quantity": str(self.quantity),
            "unit": self.unit,
            "unit_price": None if self.unit_price is None else str(self.unit_price),
            "vat_percent": None if self.vat_percent is None else str(self.vat_percent),
            "amount_excl_vat": str(self.amount_excl_vat),
            "vat_amount": str(self.vat_amount),
            "amount_incl_vat": str(self.amount_incl_vat),
        }


def line_items(totals: CdrTotals, discounted: DiscountedTotal | None = None) -> list[LineItem]:
    """The priced lines of ``totals`` grouped by dimension, unit price and VAT, plus an adjustment
    line when the tariff's min/max price or rounding makes the lines differ from the total, and a
    ``discount`` line (negative) for the promotion in ``discounted``, if one took anything off."""
    currency = totals.currency
    groups: dict[tuple[DimensionType, Decimal, Decimal | None, bool], list[Decimal]] = {}
    for line in totals.lines:
        key = (line.dimension, line.component.price, line.component.vat_percent, line.reservation)
        acc = groups.setdefault(key, [Decimal(0), Decimal(0), Decimal(0)])
        acc[0] += line.billed
        acc[1] += line.cost_excl_vat
        acc[2] += line.cost_incl_vat
    items: list[LineItem] = []
    for (dimension, price, vat, reservation), (billed, excl, incl) in groups.items():
        description, unit = _DESCRIPTIONS[dimension]
        if reservation:
            description, unit = (
                ("Reservation fee", "session")
                if dimension is DimensionType.FLAT
                else (
                    "Reservation time",
                    "h",
                )
            )
        items.append(
            LineItem(
                dimension.value.lower() if not reservation else f"reservation_{dimension.value.lower()}",
                description,
                round_quantity(billed),
                unit,
                price,
                vat,
                round_money(excl, currency),
                round_money(incl, currency),
            )
        )
    total_excl, total_incl = payable(totals)
    adjust_excl = total_excl - sum((i.amount_excl_vat for i in items), Decimal(0))
    adjust_incl = total_incl - sum((i.amount_incl_vat for i in items), Decimal(0))
    if adjust_excl or adjust_incl:
        if totals.min_price_applied:
            description = "Minimum session price"
        elif totals.max_price_applied:
            description = "Maximum session price"
        else:
            description = "Rounding"
        # With one VAT rate the adjustment is taxed at it (a tax invoice states VAT per rate; a
        # rounding or minimum-price line without a rate would move VAT to no rate at all).
        items.append(
            LineItem(
                "adjustment",
                description,
                Decimal(1),
                "session",
                None,
                _single_vat_rate(totals),
                adjust_excl,
                adjust_incl,
            )
        )
    discount = _discount_line(totals, discounted)
    if discount is not None:
        items.append(discount)
    return items


def _discount_line(totals: CdrTotals, discounted: DiscountedTotal | None) -> LineItem | None:
    """The promotion as its own line: the rounded discounted total minus the rounded full total."""
    if discounted is None or discounted.promotion is None:
        return None
    full_excl, full_incl = payable(totals)
    after_excl, after_incl = payable(totals, discounted)
    if (after_excl, after_incl) == (full_excl, full_incl):
        return None
    promotion = discounted.promotion
    if promotion.kind is DiscountKind.PERCENT:
        what = f"{promotion.amount.normalize():f} %"
    else:
        what = f"{promotion.amount} {promotion.currency or totals.currency}"
    holder = f", code {promotion.code}" if promotion.code else ""
    holder += f", {promotion.tier} members" if promotion.tier else ""
    return LineItem(
        "discount",
        f"Promotion {promotion.promotion_id} ({what}{holder})",
        Decimal(1),
        "session",
        None,
        _single_vat_rate(totals),  # the discount carries the session's VAT mix
        after_excl - full_excl,
        after_incl - full_incl,
    )


def _single_vat_rate(totals: CdrTotals) -> Decimal | None:
    """The session's VAT rate when every priced line has the same one, else ``None``."""
    rates = {line.component.vat_percent for line in totals.lines}
    return rates.pop() if len(rates) == 1 else None


def payable(totals: CdrTotals, discounted: DiscountedTotal | None = None) -> tuple[Decimal, Decimal]:
    """The session's total excl. and incl. VAT (after the promotion, if given), rounded to the
    currency's minor unit."""
    total = totals.total_cost if discounted is None else discounted.after
    return round_money(total.excl_vat, totals.currency), round_money(total.incl_vat, totals.currency)


@dataclass(frozen=True, slots=True)
class Station:
    """Where the session took place, as the receipt shows it."""

    charger_id: str
    evse_id: int
    station_id: str | None = None
    name: str | None = None
    address: str | None = None


def _local(instant: datetime, zone: tzinfo) -> str:
    return instant.astimezone(zone).isoformat(timespec="seconds")


def document_body(
    *,
    document_id: str,
    kind: str,
    session_id: str,
    revision: int,
    currency: str,
    items: Sequence[LineItem],
    station: Station,
    started_at: datetime,
    ended_at: datetime,
    zone: tzinfo,
    time_zone: str,
    energy_wh: Decimal,
    idle_s: Decimal,
    issued_at: datetime,
    tariff_id: str | None,
    reason: str | None = None,
    replaces: str | None = None,
    promotion: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON of a receipt (``kind='receipt'``) or credit note, as stored and served."""
    excl = sum((i.amount_excl_vat for i in items), Decimal(0))
    incl = sum((i.amount_incl_vat for i in items), Decimal(0))
    duration_s = Decimal((ended_at - started_at).total_seconds())
    body: dict[str, Any] = {
        "document_id": document_id,
        "kind": kind,
        "session_id": session_id,
        "revision": revision,
        "issued_at": _local(issued_at, zone),
        "currency": currency,
        "station": {
            "station_id": station.station_id,
            "name": station.name,
            "address": station.address,
            "charger_id": station.charger_id,
            "evse_id": station.evse_id,
        },
        "time_zone": time_zone,
        "started_at": _local(started_at, zone),
        "ended_at": _local(ended_at, zone),
        "duration_s": int(duration_s),
        "idle_s": int(idle_s.to_integral_value()),
        "energy_kwh": str(round_quantity(energy_wh / 1000, 3)),
        "tariff_id": tariff_id,
        "lines": [item.to_json() for item in items],
        "total_excl_vat": str(excl),
        "total_vat": str(incl - excl),
        "total_incl_vat": str(incl),
        "vat_breakdown": vat_breakdown(items),
    }
    if reason is not None:
        body["reason"] = reason
    if replaces is not None:
        body["replaces"] = replaces
    if promotion is not None:
        body["promotion"] = dict(promotion)
    return body


def vat_breakdown(items: Sequence[LineItem]) -> list[dict[str, str | None]]:
    """Net and VAT per VAT rate (what a tax invoice shows)."""
    rates: dict[Decimal | None, list[Decimal]] = {}
    for item in items:
        acc = rates.setdefault(item.vat_percent, [Decimal(0), Decimal(0)])
        acc[0] += item.amount_excl_vat
        acc[1] += item.vat_amount
    return [
        {"vat_percent": None if rate is None else str(rate), "net": str(net), "vat": str(vat)}
        for rate, (net, vat) in rates.items()
    ]


def _hms(total_s: int) -> str:
    hours, rest = divmod(abs(total_s), 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def render_html(body: Mapping[str, Any]) -> str:
    """The document as a small self-contained HTML page (every value escaped)."""

    def e(value: object) -> str:
        return html.escape("" if value is None else str(value))

    title = "Receipt" if body["kind"] == "receipt" else "Credit note"
    station = body["station"]
    currency = e(body["currency"])
    rows = "\n".join(
        f"<tr><td>{e(line['description'])}</td><td>{e(line['quantity'])} {e(line['unit'])}</td>"
        f"<td>{e(line['unit_price'] or '')}</td><td>{e(line['vat_percent'] or '-')}</td>"
        f"<td>{e(line['amount_excl_vat'])}</td><td>{e(line['vat_amount'])}</td>"
        f"<td>{e(line['amount_incl_vat'])}</td></tr>"
        for line in body["lines"]
    )
    extra = f"<p>Reason: {e(body['reason'])}</p>" if body.get("reason") else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title} {e(body["document_id"])}</title></head>
<body>
<h1>{title} {e(body["document_id"])}</h1>
<p>Session {e(body["session_id"])} (revision {e(body["revision"])}), issued {e(body["issued_at"])}</p>
<p>Station: {e(station["name"] or station["station_id"] or "")} {e(station["address"] or "")}
charger {e(station["charger_id"])}, EVSE {e(station["evse_id"])}</p>
<p>Start: {e(body["started_at"])}<br>End: {e(body["ended_at"])} ({e(body["time_zone"])})</p>
<p>Energy: {e(body["energy_kwh"])} kWh; duration {_hms(int(body["duration_s"]))};
idle time {_hms(int(body["idle_s"]))}</p>{extra}
<table>
<tr><th>Item</th><th>Quantity</th><th>Unit price</th><th>VAT %</th><th>Net ({currency})</th>
<th>VAT ({currency})</th><th>Total ({currency})</th></tr>
{rows}
</table>
<p>Total excl. VAT: {e(body["total_excl_vat"])} {currency}<br>VAT: {e(body["total_vat"])} {currency}<br>
<strong>Total: {e(body["total_incl_vat"])} {currency}</strong></p>
</body></html>
"""
