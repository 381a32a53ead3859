"""The sweep's target check compares with the published means only over the published caps."""

from __future__ import annotations

from benchmarks.acn_run import OFFLINE, OURS, RunFigures
from benchmarks.report import PUBLISHED_CAPS, targets


def figures(algorithm: str, cap_kw: float, energy_pct: float) -> RunFigures:
    return RunFigures(
        algorithm=algorithm,
        cap_kw=cap_kw,
        sessions=1,
        requested_kwh=100.0,
        delivered_kwh=energy_pct,
        energy_pct=energy_pct,
        energy_cost=0.0,
        peak_kw=0.0,
        max_utilisation_drawn=0.5,
        violations_drawn=0,
        max_utilisation_pilot=0.5,
        violations_pilot=0,
        worst_constraint="",
        wall_s=0.0,
        calls=1,
        solve_ms_p50=None,
        solve_ms_p95=None,
        solve_ms_max=None,
        max_active_sessions=1,
        statuses={},
    )


def test_the_27_caps_are_the_notebooks() -> None:
    assert len(PUBLISHED_CAPS) == 27
    assert PUBLISHED_CAPS[:3] == (10.0, 15.0, 20.0)
    assert PUBLISHED_CAPS[-4:] == (125.0, 130.0, 140.0, 150.0)


def test_a_partial_sweep_is_not_compared_with_the_published_mean() -> None:
    runs = [figures(OURS, 20.0, 99.0), figures(OFFLINE, 20.0, 99.5)]
    checked = targets(runs)
    assert checked["ours_mean_pct"] == 99.0
    assert checked["ours_mean_at_least_published_mpc"] is None
    assert checked["ours_mean_27_caps_pct"] is None
    assert abs(checked["worst_gap_to_offline_points"] - 0.5) < 1e-9
    assert checked["within_0_3_points_of_offline_at_every_cap"] is False


def test_the_full_sweep_is_compared_over_the_27_caps_only() -> None:
    runs = [figures(OURS, c, 95.0) for c in PUBLISHED_CAPS] + [
        figures(OFFLINE, c, 95.2) for c in PUBLISHED_CAPS
    ]
    runs += [figures(OURS, 5.0, 10.0), figures(OFFLINE, 5.0, 10.1)]  # an extra cap is left out of the mean
    checked = targets(runs)
    assert abs(checked["ours_mean_27_caps_pct"] - 95.0) < 1e-9
    assert abs(checked["offline_mean_27_caps_pct"] - 95.2) < 1e-9
    assert checked["ours_mean_at_least_published_mpc"] is False
    assert checked["within_0_3_points_of_offline_at_every_cap"] is True
