"""Certificate renewal ahead of expiry: ask the charger for a new CSR with TriggerMessage.

Every ``renewal_check_interval_s`` the scheduler claims the current certificates expiring within
``renewal_lead_days`` (one node claims each, in PostgreSQL) and triggers SignChargingStationCertificate
or SignV2GCertificate; a charger that is not connected is asked again on a later round, one that
refused or did not answer after ``renewal_retry_s``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from csms.commands import CommandBus, CommandOutcome, CommandResult
from csms.commands.payloads import Built
from csms.pki.inventory import CertificateInventory, RenewalDue
from csms.pki.settings import PkiSettings
from csms.protocol.versions import OcppVersion

logger = logging.getLogger(__name__)

TRIGGERED_MESSAGE = {
    "ChargingStationCertificate": "SignChargingStationCertificate",
    "V2GCertificate": "SignV2GCertificate",
}


class RenewalScheduler:
    def __init__(
        self,
        inventory: CertificateInventory,
        commands: CommandBus,
        settings: PkiSettings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._inventory = inventory
        self._commands = commands
        self._settings = settings
        self._clock = clock

    async def run_once(self) -> list[RenewalDue]:
        """One round; the renewals the chargers accepted to start."""
        now = self._clock()
        due = await self._inventory.claim_renewals(
            due_before=now + timedelta(days=self._settings.renewal_lead_days),
            retry_before=now - timedelta(seconds=self._settings.renewal_retry_s),
        )
        started: list[RenewalDue] = []
        for renewal in due:
            result = await self._trigger(renewal)
            if result.outcome is CommandOutcome.ACCEPTED:
                logger.info(
                    "charger %s: %s expires %s, renewal triggered",
                    renewal.charger_id,
                    renewal.certificate_type,
                    renewal.not_after.isoformat(),
                )
                started.append(renewal)
            elif result.outcome is CommandOutcome.NOT_CONNECTED:
                await self._inventory.release_renewal(renewal)
            else:
                logger.warning(
                    "charger %s: renewal of %s answered %s",
                    renewal.charger_id,
                    renewal.certificate_type,
                    result.status or result.outcome.value,
                )
        return started

    async def _trigger(self, renewal: RenewalDue) -> CommandResult:
        def build(version: OcppVersion) -> Built:
            if version is OcppVersion.V201:
                return "TriggerMessage", {"requestedMessage": TRIGGERED_MESSAGE[renewal.certificate_type]}
            if renewal.certificate_type != "ChargingStationCertificate":
                return None
            # 1.6: TriggerMessage has no certificate messages; the security extension's
            # ExtendedTriggerMessage has.
            return "ExtendedTriggerMessage", {"requestedMessage": "SignChargePointCertificate"}

        return await self._commands.call_per_version(renewal.charger_id, build)

    async def run(self) -> None:
        """Rounds every ``renewal_check_interval_s`` until cancelled."""
        while True:
            try:
                await self.run_once()
            except Exception:
                # Outermost handler of the renewal task: one failed round must not end renewals.
                logger.exception("certificate renewal round failed")
            await asyncio.sleep(self._settings.renewal_check_interval_s)
