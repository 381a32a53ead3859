"""``operator_api(settings)``: the ``register(api, runtime)`` function ``sessions.app.install`` takes;
``install_observability(app)``: ``/metrics``, fed also by demand response when it is installed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from aiohttp import web

from csms.metrics import Metrics, install_metrics
from demand_response.app import DEMAND_RESPONSE, DemandResponseRuntime
from demand_response.events import EventStatus
from fairwatt.operator import api_chargers, api_device_model, api_network, api_sessions
from fairwatt.operator.common import OperatorContext, OperatorSettings
from fairwatt.operator.keys import OperatorAuth
from fairwatt.operator.local_lists import LocalListSync
from sessions.app import ApiModule, SessionsRuntime
from sessions.openapi import Api

FAIRWATT_MIGRATIONS = "fairwatt.migrations"


def operator_api(settings: OperatorSettings | None = None) -> ApiModule:
    """The operator API's register function.

    It also registers the package's migrations (network, audit log, key revocations) and sends
    chargers that boot the local list the applied network gives them (:mod:`.local_lists`).
    """
    chosen = settings or OperatorSettings()

    def register(api: Api, runtime: SessionsRuntime) -> None:
        runtime.csms.database.add_migrations(FAIRWATT_MIGRATIONS)
        csms = runtime.csms
        sync = LocalListSync(csms.database, csms.commands, csms.live_state, csms.tasks)
        csms.service.subscribe(sync.on_event)
        context = OperatorContext(runtime, OperatorAuth(runtime.issuer, runtime.csms.database), chosen)
        for module in (api_network, api_chargers, api_device_model, api_sessions):
            module.register(api, context)

    return register


def active_demand_response_events(runtime: DemandResponseRuntime, now: datetime) -> int:
    """Events in force at ``now`` (started, not ended, not cancelled)."""
    return sum(
        1
        for event in runtime.enforcer.events()
        if event.status is not EventStatus.CANCELLED and event.start <= now < event.end
    )


def install_observability(app: web.Application, *, clock: Callable[[], datetime] | None = None) -> Metrics:
    """Serve ``/metrics`` (:func:`csms.metrics.install_metrics`) with the demand-response gauge fed.

    Call it after the smart-charging loop and demand response are installed in ``app``.
    """
    metrics = install_metrics(app)
    demand_response = app.get(DEMAND_RESPONSE)
    if demand_response is not None:
        now = clock or (lambda: datetime.now(UTC))
        metrics.track_dr_events(lambda: active_demand_response_events(demand_response, now()))
    return metrics
