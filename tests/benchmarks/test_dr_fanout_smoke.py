"""Smoke test of ``python -m benchmarks dr-fanout`` at a tiny size: no timing asserted.

It checks the benchmark measures what it says: every charger gets a new TxProfile after the
event arrives, and that profile carries the cut (20 % of the station's limit, shared by its cars).
"""

from __future__ import annotations

import argparse
import asyncio

import pytest

from benchmarks.dr_fanout import MAX_A, render, run


@pytest.mark.parametrize("transport", ["memory", "websocket"])
def test_dr_fanout_benchmark_times_every_charger(transport: str) -> None:
    args = argparse.Namespace(
        stations=3, evses=2, horizon_periods=6, period_s=300, timeout_s=60.0, transport=transport
    )
    report = asyncio.run(run(args))
    assert report.chargers_connected == 6
    assert report.profiles_received == report.profiles_expected == 6
    assert len(report.latencies_ms) == 6
    assert all(0 < ms <= report.total_ms for ms in report.latencies_ms)
    assert sum(report.capped_limits_a) <= 0.8 * MAX_A * 6 + 1e-6  # the 20 % cut, shared
    assert 0.0 < report.worst_station_share <= 1.0 + 1e-9
    lines = render(report).splitlines()
    assert lines[1].split()[-3:] == ["6", "of", "6"]
