"""Two CSMS nodes over one database: an operator's event declared on one is enforced on the other."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from demand_response.events import MANUAL_PROGRAM, DrEvent, EventStatus, Interval, Signal
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
