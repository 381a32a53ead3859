"""What a session shows while it runs: energy, power, elapsed time and its cost so far.

Pure functions over a :class:`~sessions.session_store.SessionRecord` and the tariff versions of
its charger: the running session is priced by the tariff engine as one charging period with the
energy delivered so far, under the version in force when it started (a later price change does
not reprice it), in the station's time zone. Money is ``Decimal``, rounded to the currency.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sessions.session_store import SessionRecord
from tariffs.cdr import CdrDimension, ChargingPeriod, Session
from tariffs.engine import live_estimate
from tariffs.model import TariffVersions
from tariffs.money import round_money


@dataclass(frozen=True, slots=True)
class Cost:
    amount: Decimal
    currency: str


def zone_of(name: str) -> ZoneInfo:
    """The station's time zone (UTC when the name is unknown)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def estimate_cost(record: SessionRecord, versions: TariffVersions, now_utc: datetime) -> Cost:
    """The cost of ``record`` if it stopped at ``now_utc`` (incl. VAT); raises ``TariffError``
    when no version was in force at the start or the session cannot be priced."""
    assert record.started_at is not None
    energy_kwh = Decimal(str(round(record.energy_wh / 1000.0, 4)))
    tariff = versions.in_force_at(record.started_at)
    session = Session(
        start_utc=record.started_at,
        charging_periods=(ChargingPeriod(record.started_at, {CdrDimension.ENERGY: energy_kwh}),),
        end_utc=record.ended_at,
    )
    totals = live_estimate(tariff, session, max(now_utc, record.started_at), zone_of(record.time_zone))
    return Cost(round_money(totals.total_cost.incl_vat, totals.currency), totals.currency)


def snapshot(record: SessionRecord, cost: Cost | None, now_utc: datetime) -> dict[str, Any]:
    """The session as the API and live events show it (energy kWh, power kW, cost incl. VAT)."""
    elapsed_s = None
    if record.started_at is not None:
        elapsed_s = max(0, int(((record.ended_at or now_utc) - record.started_at).total_seconds()))
    return {
        "state": record.state.value,
        "energy_kwh": round(record.energy_wh / 1000.0, 4),
        "power_kw": round((record.power_w or 0.0) / 1000.0, 3),
        "elapsed_s": elapsed_s,
        "cost_so_far": None if cost is None else {"amount": str(cost.amount), "currency": cost.currency},
    }
