"""The handler groups each OCPP version's sessions route to."""

from __future__ import annotations

from csms.domain.events import RegistrationStatus
from csms.domain.service import ChargingService
from csms.protocol.authorization import AuthorizationV16, AuthorizationV201
from csms.protocol.maintenance import MaintenanceV16, MaintenanceV201
from csms.protocol.provisioning import BootGate, ProvisioningV16, ProvisioningV201
from csms.protocol.router import Router
from csms.protocol.smart_charging import SmartChargingV201
from csms.protocol.transactions import TransactionsV16, TransactionsV201
from csms.protocol.versions import OcppVersion


def build_router(version: OcppVersion, service: ChargingService) -> Router:
    """A fresh router with every handler group of ``version``."""
    router = Router()
    groups: list[object]
    if version is OcppVersion.V16:
        gate = BootGate(frozenset({RegistrationStatus.REJECTED}))
        groups = [
            ProvisioningV16(service, gate),
            AuthorizationV16(service),
            TransactionsV16(service),
            MaintenanceV16(service),
        ]
    else:
        gate = BootGate(frozenset({RegistrationStatus.PENDING, RegistrationStatus.REJECTED}))
        groups = [
            ProvisioningV201(service, gate),
            AuthorizationV201(service),
            TransactionsV201(service),
            SmartChargingV201(service),
            MaintenanceV201(service),
        ]
    for group in groups:
        router.include(group)
    router.add_guard(gate.check)
    return router
