"""Two CSMS nodes over one database: an operator's event declared on one is enforced on the other."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from demand_response.events import MANUAL_PROGRAM, DrEvent, EventStatus, Interval, Signal
from optimizer.types import CapWindow, PricePeriod
from tests.demand_response.site import GRID_KW, running_site

pytestmark = pytest.mark.asyncio


async def test_a_manual_event_reaches_the_other_node_from_the_store(database_dsn: str) -> None:
    prefix = f"DN{uuid.uuid4().hex[:6]}"
    async with (
        running_site(database_dsn, lambda _: [], prefix=prefix, chargers=False) as first,
        running_site(database_dsn, lambda _: [], prefix=prefix, chargers=False) as second,
    ):
        start = datetime.now(UTC) + timedelta(minutes=5)
        event = DrEvent(
            program=MANUAL_PROGRAM,
            event_id=f"m-{uuid.uuid4().hex[:8]}",
            modification_number=0,
            start=start,
            duration=timedelta(hours=1),
            signals=(
                Signal(
                    "LOAD_CONTROL", "x-loadControlPercentOffset", (Interval(start, timedelta(hours=1), -30),)
                ),
            ),
            stations=(first.station_id,),
        )
        await first.dr.enforcer.declare(event, cpo_id=None)
        assert [c.limit_kw for c in first.dr_caps()] == [pytest.approx(0.7 * GRID_KW)]
        assert second.dr_caps() == []

        assert await second.dr.enforcer.sync() == 1
        assert [c.limit_kw for c in second.dr_caps()] == [pytest.approx(0.7 * GRID_KW)]
        assert await second.dr.enforcer.sync() == 0  # nothing newer

        await first.dr.enforcer.cancel(MANUAL_PROGRAM, event.event_id)
        assert await second.dr.enforcer.sync() == 1
        taken = second.dr.enforcer.event(MANUAL_PROGRAM, event.event_id)
        assert taken is not None
        assert taken.status is EventStatus.CANCELLED
        assert second.dr_caps() == []


async def test_caps_and_prices_come_back_after_the_station_file_refreshes_them(database_dsn: str) -> None:
    async with running_site(database_dsn, lambda _: [], chargers=False) as site:
        start = datetime.now(UTC) + timedelta(minutes=5)
        hour = timedelta(hours=1)
        event = DrEvent(
            program=MANUAL_PROGRAM,
            event_id=f"m-{uuid.uuid4().hex[:8]}",
            modification_number=0,
            start=start,
            duration=hour,
            signals=(
                Signal("LOAD_CONTROL", "x-loadControlPercentOffset", (Interval(start, hour, -50),)),
                Signal("ELECTRICITY_PRICE", "priceRelative", (Interval(start, hour, 0.25),)),
            ),
            stations=(site.station_id,),
        )
        await site.dr.enforcer.declare(event, cpo_id=None)
        assert [c.limit_kw for c in site.dr_caps()] == [pytest.approx(0.5 * GRID_KW)]
        state = site.loop.state(site.station_id)
        assert state.site.prices == (PricePeriod(start, 0.25), PricePeriod(start + hour, 0.0))

        # What keep_sites_current does once a horizon: the station file's caps and prices, anew.
        own_cap = CapWindow(start - hour, start - hour / 2, limit_kw=10.0, source="peak-events")
        site.loop.set_caps(site.station_id, (own_cap,))
        site.loop.set_prices(site.station_id, (PricePeriod(start - hour, 0.30),))
        assert site.dr_caps() == []

        site.dr.enforcer.rebase(site.station_id)  # or wait for the enforcer's next tick
        assert state.site.caps[0] == own_cap
        assert [c.limit_kw for c in site.dr_caps()] == [pytest.approx(0.5 * GRID_KW)]
        assert site.loop.state(site.station_id).site.prices == (
            PricePeriod(start - hour, 0.30),
            PricePeriod(start, 0.55),
            PricePeriod(start + hour, 0.30),
        )
