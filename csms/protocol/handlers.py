"""The handler groups each OCPP version's sessions route to."""

from __future__ import annotations

from typing import TYPE_CHECKING

from csms.domain.events import RegistrationStatus
from csms.domain.service import ChargingService
from csms.protocol.authorization import AuthorizationV16, AuthorizationV201
from csms.protocol.certificates import CertificatesV16, CertificatesV201
from csms.protocol.device_model import DeviceModelV201
from csms.protocol.maintenance import MaintenanceV16, MaintenanceV201
from csms.protocol.provisioning import (
    NOT_SENT_WHILE_PENDING_V16,
    NOT_SENT_WHILE_PENDING_V201,
    BootGate,
    ProvisioningV16,
    ProvisioningV201,
)
from csms.protocol.reservations import ReservationsV201
from csms.protocol.router import Router
from csms.protocol.smart_charging import SmartChargingV201
from csms.protocol.transactions import TransactionsV16, TransactionsV201
from csms.protocol.versions import OcppVersion

if TYPE_CHECKING:
    from csms.pki.runtime import PkiRuntime


def build_router(
    version: OcppVersion,
    service: ChargingService,
    *,
    pki: PkiRuntime | None = None,
    registration: RegistrationStatus | None = None,
) -> Router:
    """A fresh router with every handler group of ``version`` (2.0.1 certificate messages with ``pki``).

    ``registration`` is the status the charger's last BootNotification was answered with, if any.
    """
    router = Router()
    groups: list[object]
    if version is OcppVersion.V16:
        gate = BootGate(
            frozenset({RegistrationStatus.REJECTED}),
            registration,
            not_sent_while_pending=NOT_SENT_WHILE_PENDING_V16,
        )
        groups = [
            ProvisioningV16(service, gate),
            AuthorizationV16(service),
            TransactionsV16(service),
            MaintenanceV16(service),
        ]
        if pki is not None:
            groups.append(CertificatesV16(pki))
    else:
        gate = BootGate(
            frozenset({RegistrationStatus.PENDING, RegistrationStatus.REJECTED}),
            registration,
            not_sent_while_pending=NOT_SENT_WHILE_PENDING_V201,
        )
        groups = [
            ProvisioningV201(service, gate),
            AuthorizationV201(service, pki.plug_and_charge if pki is not None else None),
            TransactionsV201(service),
            SmartChargingV201(service),
            DeviceModelV201(service),
            MaintenanceV201(service),
            ReservationsV201(service),
        ]
        if pki is not None:
            groups.append(CertificatesV201(pki))
    for group in groups:
        router.include(group)
    router.add_guard(gate.check)
    router.add_send_guard(gate.check_send)
    router.add_sent_observer(gate.note_sent)
    return router
