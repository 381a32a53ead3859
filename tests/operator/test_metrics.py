"""The metrics' observers, read back from the app's own registry in the Prometheus text format."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from csms.commands import CommandResult
from csms.commands.results import CommandOutcome
from csms.metrics import Metrics
from csms.protocol.session import Direction, LoggedMessage
from optimizer.types import ObjectiveBreakdown, Schedule, SolveStatus


def sample(metrics: Metrics, name: str, labels: dict[str, str] | None = None) -> float | None:
    value = metrics.registry.get_sample_value(name, labels or {})
    return None if value is None else float(value)


def test_each_observer_feeds_its_metric_in_a_private_registry() -> None:
    metrics, other = Metrics(), Metrics()  # two apps in one process do not share figures
    now = datetime.now(UTC)
    for direction in (Direction.RECEIVED, Direction.RECEIVED, Direction.SENT):
        metrics.observe_message(LoggedMessage("CP-1", direction, 2, "Heartbeat", "1", {}, now))
    assert sample(metrics, "fairwatt_ocpp_messages_total", {"action": "Heartbeat", "direction": "in"}) == 2
    assert sample(other, "fairwatt_ocpp_messages_total", {"action": "Heartbeat", "direction": "in"}) is None

    metrics.observe_command(
        CommandResult("CP-1", "SetChargingProfile", CommandOutcome.REJECTED, "Rejected"), 0.03
    )
    metrics.observe_command(
        CommandResult("CP-1", "SetChargingProfile", CommandOutcome.ACCEPTED, "Accepted"), 0.2
    )
    metrics.observe_command(CommandResult("CP-2", None, CommandOutcome.NOT_CONNECTED), 0.0)
    assert sample(metrics, "fairwatt_rejected_profiles_total") == 1
    labels = {"action": "SetChargingProfile", "outcome": "accepted"}
    assert sample(metrics, "fairwatt_command_latency_seconds_count", labels) == 1
    assert sample(metrics, "fairwatt_command_latency_seconds_bucket", {**labels, "le": "0.25"}) == 1
    assert sample(metrics, "fairwatt_command_latency_seconds_bucket", {**labels, "le": "0.1"}) == 0

    schedule = Schedule(
        station_id="depot",
        start=now,
        period_s=300,
        evse_ids=("e1",),
        session_ids=("t1",),
        current_a=np.zeros((1, 4)),
        power_kw=np.zeros((1, 4)),
        status=SolveStatus.OPTIMAL,
        objective=ObjectiveBreakdown(
            energy_kwh=0.0, energy_needed_kwh=0.0, cost=0.0, peak_kw=0.0, min_share_served=1.0
        ),
        solve_time_s=0.04,
    )
    metrics.observe_solve("depot", schedule)
    assert sample(metrics, "fairwatt_solves_total", {"status": SolveStatus.OPTIMAL.value}) == 1
    assert sample(metrics, "fairwatt_solver_seconds_sum") == 0.04

    active = [2]
    metrics.track_dr_events(lambda: active[0])
    assert sample(metrics, "fairwatt_dr_events_active") == 2
    active[0] = 0
    assert b"fairwatt_dr_events_active 0.0" in metrics.render()
