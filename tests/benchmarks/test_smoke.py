"""Smoke test: fairwatt behind acnportal's interface through ACN-Sim, a few hours of one day.

Not a timing test: it checks the adapter works, delivers at least what EDF delivers on the
same sessions, and keeps every constraint of the Caltech site on the currents the cars drew.
"""

from __future__ import annotations

import pytest

pytest.importorskip("acnportal")

from benchmarks.acn_run import run
from benchmarks.caltech_site import read_sessions

CAP_KW = 25.0
MORNING = range(7 * 12, 10 * 12)  # arrivals 7-10 am on 2019-03-04 (a Monday), in periods of that day
DAY = 3


def test_fairwatt_beats_edf_without_violations() -> None:
    rows = [r for r in read_sessions(days=DAY + 1) if r.arrival - DAY * 288 in MORNING]
    rows = [r for r in rows if r.departure - r.arrival <= 6 * 12][:12]
    assert len(rows) >= 6
    ours = run("fairwatt", CAP_KW, rows)
    edf = run("edf", CAP_KW, rows)
    assert ours.energy_pct >= edf.energy_pct - 1e-6
    assert ours.violations_drawn == 0
    assert ours.violations_pilot == 0
    assert ours.statuses.get("fallback", 0) == 0
