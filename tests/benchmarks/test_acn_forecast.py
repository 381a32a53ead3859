"""fairwatt with sessions expected from earlier days, through ACN-Sim: safe, and never sent a profile.

Not a timing or an energy-target test (the cap sweep measures those): the forecast's expected
sessions sit on virtual EVSEs, so the simulator must see pilots only for its real stations,
every limit must hold on the currents drawn, and the LP must not fall back.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("acnportal")

from benchmarks.acn_adapter import GROUP_OF, FairwattAlgorithm, period_datetime
from benchmarks.acn_run import VIOLATION_TOLERANCE, make_simulator
from benchmarks.caltech_site import MAX_PILOT_A, TIME_ZONE, read_sessions
from optimizer.forecast import PastSession, forecast

CAP_KW = 20.0
DAY = 4  # Tuesday 2019-03-05; the weekdays before it (1 and 4 March) are the history
MORNING = range(7 * 12, 10 * 12)


@pytest.mark.parametrize("scenarios", [True, False], ids=["each-day-a-scenario", "mean-of-days"])
def test_expected_sessions_steer_the_plan_but_get_no_pilot_and_break_no_limit(scenarios: bool) -> None:
    every = read_sessions(days=DAY + 1)
    history = [
        PastSession(
            r.station_id, period_datetime(r.arrival), period_datetime(r.departure), r.requested_kwh, 31.7
        )
        for r in every
        if r.arrival < DAY * 288
    ]
    rows = [r for r in every if r.arrival - DAY * 288 in MORNING][:10]
    assert len(rows) >= 6
    # at the first arrival the forecast expects sessions later that day
    first = period_datetime(rows[0].arrival)
    assert forecast(history, first, TIME_ZONE, GROUP_OF, weight=0.5, scenarios=scenarios).sessions
    scheduler = FairwattAlgorithm(CAP_KW, forecast_weight=0.5, history=history, scenarios=scenarios)
    sim = make_simulator(scheduler, rows, CAP_KW)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        sim.run()
    assert scheduler.stats.statuses.get("fallback", 0) == 0
    assert set(sim.network.station_ids) == set(GROUP_OF)  # no virtual EVSE reached the simulator
    use = (
        np.abs(sim.network.constraint_current(sim.charging_rates))
        / np.asarray(sim.network.magnitudes)[:, None]
    )
    assert float(use.max()) <= 1.0 + VIOLATION_TOLERANCE
    assert float(np.max(sim.pilot_signals)) <= MAX_PILOT_A
    assert sum(ev.energy_delivered for ev in sim.ev_history.values()) > 0
