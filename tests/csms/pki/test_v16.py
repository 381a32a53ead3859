"""The OCPP 1.6 security extension: SignCertificate -> CertificateSigned (no certificate type), and
renewal through ExtendedTriggerMessage, with an ``ocpp`` 1.6 charge point."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from ocpp.routing import on
from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action

from csms.commands import CommandOutcome
from csms.commands.certificates import (
    CertificateIdUse,
    InstallCertificateUse,
    delete_certificate,
    get_installed_certificate_ids,
    install_certificate,
)
from csms.pki.certs import common_name, load_chain
from tests.csms.chargers import Charger16, connected
from tests.csms.conftest import make_settings
from tests.csms.pki.factory import Pki, csr, pem
from tests.csms.pki.harness import ContractAuthorizer, pki_settings, running_pnc_csms, wait_installed

pytestmark = pytest.mark.asyncio


class SecureCharger16(Charger16):
    def __init__(self, charger_id: str, connection: Any) -> None:
        super().__init__(charger_id, connection)
        self.signed: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.triggers: asyncio.Queue[str] = asyncio.Queue()
        self.installed: dict[str, str] = {}

    @on(Action.certificate_signed)
    async def on_certificate_signed(self, **request: Any) -> Any:
        await self.signed.put(request)
        return call_result.CertificateSigned(status="Accepted")

    @on(Action.install_certificate)
    async def on_install_certificate(self, **request: Any) -> Any:
        self.installed[request["certificate_type"]] = request["certificate"]
        return call_result.InstallCertificate(status="Accepted")

    @on(Action.get_installed_certificate_ids)
    async def on_get_installed_certificate_ids(self, **request: Any) -> Any:
        if request["certificate_type"] not in self.installed:
            return call_result.GetInstalledCertificateIds(status="NotFound")
        hash_data = {
            "hash_algorithm": "SHA256",
            "issuer_name_hash": "aa",
            "issuer_key_hash": "bb",
            "serial_number": "1",
        }
        return call_result.GetInstalledCertificateIds(status="Accepted", certificate_hash_data=[hash_data])

    @on(Action.delete_certificate)
    async def on_delete_certificate(self, **request: Any) -> Any:
        self.installed.clear()
        return call_result.DeleteCertificate(status="Accepted")

    @on(Action.extended_trigger_message)
    async def on_extended_trigger_message(self, **request: Any) -> Any:
        await self.triggers.put(request["requested_message"])
        return call_result.ExtendedTriggerMessage(status="Accepted")


async def test_a_16_charge_point_gets_its_certificate_and_is_asked_to_renew_it(
    database_dsn: str, pki: Pki
) -> None:
    settings = make_settings(database_dsn, auto_register=True)
    config = pki_settings(station_certificate_days=1, renewal_lead_days=30)
    async with (
        running_pnc_csms(settings, pki, config, ContractAuthorizer()) as running,
        connected(SecureCharger16, running.url("CP16-SEC"), "CP16-SEC", "ocpp1.6") as charger,
    ):
        refused = await charger.call(call.SignCertificate(csr=csr("CP16-OTHER")[0]), suppress=False)
        assert refused.status == "Rejected"
        answer = await charger.call(call.SignCertificate(csr=csr("CP16-SEC")[0]), suppress=False)
        assert answer.status == "Accepted"
        signed = await asyncio.wait_for(charger.signed.get(), 5)
        assert set(signed) == {"certificate_chain"}
        leaf = load_chain(signed["certificate_chain"])[0]
        assert common_name(leaf.subject) == "CP16-SEC"
        leaf.verify_directly_issued_by(pki.station_sub.certificate)
        await wait_installed(running.pki, "CP16-SEC")
        started = await running.pki.renewal.run_once()
        assert [r.charger_id for r in started] == ["CP16-SEC"]
        assert await asyncio.wait_for(charger.triggers.get(), 5) == "SignChargePointCertificate"


async def test_root_certificates_on_a_16_charge_point(database_dsn: str, pki: Pki) -> None:
    settings = make_settings(database_dsn, auto_register=True)
    async with (
        running_pnc_csms(settings, pki, pki_settings(), ContractAuthorizer()) as running,
        connected(SecureCharger16, running.url("CP16-ROOTS"), "CP16-ROOTS", "ocpp1.6") as charger,
    ):
        bus = running.csms.commands
        root_pem = pem(pki.csms_root.certificate)
        assert (
            await install_certificate(bus, "CP16-ROOTS", InstallCertificateUse.CSMS_ROOT, root_pem)
        ).accepted
        assert charger.installed == {"CentralSystemRootCertificate": root_pem}
        mo_root = await install_certificate(bus, "CP16-ROOTS", InstallCertificateUse.MO_ROOT, root_pem)
        assert mo_root.outcome is CommandOutcome.NOT_SUPPORTED_BY_VERSION
        result, installed = await get_installed_certificate_ids(
            bus, "CP16-ROOTS", [CertificateIdUse.CSMS_ROOT]
        )
        assert result.accepted
        assert [(i.use, i.hash_data.serial_number) for i in installed] == [("CSMSRootCertificate", "1")]
        assert (await delete_certificate(bus, "CP16-ROOTS", installed[0].hash_data)).accepted
        assert charger.installed == {}
