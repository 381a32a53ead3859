"""``operator_api(settings)``: the ``register(api, runtime)`` function ``sessions.app.install`` takes."""

from __future__ import annotations

from fairwatt.operator import api_chargers, api_network, api_sessions
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
        for module in (api_network, api_chargers, api_sessions):
            module.register(api, context)

    return register
