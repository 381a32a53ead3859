"""``/metrics`` in the Prometheus text format, one :class:`CollectorRegistry` per app (never the global one).

What is measured and where it comes from:

* ``fairwatt_connected_chargers``: sockets held by this node (read at scrape time);
* ``fairwatt_ocpp_messages_total{action,direction}``: every OCPP message, from the message log's
  observer (``rate()`` of it is messages per second by action);
* ``fairwatt_command_latency_seconds{action,outcome}``: every command-bus call, from its observer;
* ``fairwatt_rejected_profiles_total``: SetChargingProfile answers that were not accepted;
* ``fairwatt_solver_seconds`` and ``fairwatt_solves_total{status}``: every smart-charging solve;
* ``fairwatt_sessions{state}``: charging sessions by state (one grouped query at scrape time,
  when the sessions' table exists);
* ``fairwatt_dr_events_active``: fed by the demand-response package through
  :meth:`Metrics.track_dr_events` (a function read at scrape time) or ``dr_events_active.set()``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from csms.commands import CommandResult
from csms.commands.results import CommandOutcome
from csms.protocol.session import LoggedMessage
from csms.server import CSMS
from csms.smart_charging import SMART_CHARGING
from optimizer.types import Schedule

logger = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
SESSION_STATES = ("INITIATED", "ACTIVE", "STOPPING", "COMPLETED", "FAILED")
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SOLVER_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)


class Metrics:
    """The app's metrics; ``app[METRICS]``. Observers are cheap and never block."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connected_chargers = Gauge(
            "fairwatt_connected_chargers", "Chargers connected to this node", registry=r
        )
        self.messages = Counter(
            "fairwatt_ocpp_messages",
            "OCPP messages by action and direction",
            ["action", "direction"],
            registry=r,
        )
        self.command_latency = Histogram(
            "fairwatt_command_latency_seconds",
            "Time from sending a command to the charger's answer",
            ["action", "outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.rejected_profiles = Counter(
            "fairwatt_rejected_profiles", "Charging profiles a charger did not accept", registry=r
        )
        self.solver_time = Histogram(
            "fairwatt_solver_seconds", "Smart-charging solve time", buckets=_SOLVER_BUCKETS, registry=r
        )
        self.solves = Counter(
            "fairwatt_solves", "Smart-charging solves by solver status", ["status"], registry=r
        )
        self.sessions = Gauge("fairwatt_sessions", "Charging sessions by state", ["state"], registry=r)
        self.dr_events_active = Gauge(
            "fairwatt_dr_events_active", "Demand-response events in force", registry=r
        )

    def observe_message(self, message: LoggedMessage) -> None:
        self.messages.labels(message.action or "unknown", message.direction.value).inc()

    def observe_command(self, result: CommandResult, elapsed_s: float) -> None:
        action = result.action or "none"
        self.command_latency.labels(action, result.outcome.value).observe(elapsed_s)
        if action == "SetChargingProfile" and result.outcome is not CommandOutcome.ACCEPTED:
            self.rejected_profiles.inc()

    def observe_solve(self, station_id: str, schedule: Schedule) -> None:
        self.solver_time.observe(schedule.solve_time_s)
        self.solves.labels(schedule.status.value).inc()

    def track_dr_events(self, count: Callable[[], float]) -> None:
        """Read the number of active demand-response events from ``count()`` at every scrape."""
        self.dr_events_active.set_function(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)


METRICS = web.AppKey("metrics", Metrics)


def install_metrics(app: web.Application) -> Metrics:
    """Serve ``/metrics`` and hook the observers into the app's CSMS (and smart-charging loop, if any)."""
    metrics = Metrics()
    app[METRICS] = metrics
    runtime = app[CSMS]
    runtime.message_log.add_observer(metrics.observe_message)
    runtime.commands.add_observer(metrics.observe_command)
    loop = app.get(SMART_CHARGING)
    if loop is not None:
        loop.on_solved(metrics.observe_solve)
    app.router.add_get(METRICS_PATH, _serve_metrics)
    return metrics


async def _serve_metrics(request: web.Request) -> web.StreamResponse:
    metrics = request.app[METRICS]
    runtime = request.app[CSMS]
    metrics.connected_chargers.set(len(runtime.connected))
    pool = runtime.database.pool
    if await pool.fetchval("SELECT to_regclass('charging_sessions') IS NOT NULL"):
        rows = await pool.fetch("SELECT state, count(*) AS n FROM charging_sessions GROUP BY state")
        counts = {row["state"]: row["n"] for row in rows}
        for state in SESSION_STATES:
            metrics.sessions.labels(state).set(counts.get(state, 0))
    return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})
