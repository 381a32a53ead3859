"""Plug & Charge end to end: an ``ocpp`` 2.0.1 charger, the CSMS with its PKI, real PostgreSQL and
the local OCSP responder."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.x509 import ocsp
from ocpp.routing import on
from ocpp.v201 import call, call_result
from ocpp.v201.enums import Action

from csms.commands.certificates import (
    CertificateIdUse,
    InstallCertificateUse,
    delete_certificate,
    get_installed_certificate_ids,
    install_certificate,
)
from csms.pki.certs import common_name, load_chain, ocsp_id
from csms.pki.errors import ContractProviderError
from tests.csms.chargers import connected
from tests.csms.conftest import make_settings
from tests.csms.pki.factory import NOW, Pki, contract, csr, key, pem, root, sub_ca
from tests.csms.pki.harness import (
    ContractAuthorizer,
    PncCharger,
    PncCsms,
    pki_settings,
    running_pnc_csms,
    wait_installed,
)

pytestmark = pytest.mark.asyncio

EMAID = "DE-FWT-C10000001-1"


@pytest_asyncio.fixture
async def pnc(database_dsn: str, pki: Pki) -> AsyncIterator[PncCsms]:
    settings = make_settings(database_dsn, auto_register=True)
    async with running_pnc_csms(settings, pki, pki_settings(), ContractAuthorizer({EMAID})) as running:
        yield running


def charger_id() -> str:
    return f"CP-PNC-{uuid.uuid4().hex[:8]}"


async def authorize(charger: Any, emaid: str, **certificate: Any) -> tuple[str, str | None]:
    answer = await charger.call(
        call.Authorize(id_token={"id_token": emaid, "type": "eMAID"}, **certificate), suppress=False
    )
    return answer.id_token_info["status"], answer.certificate_status


async def test_a_valid_contract_certificate_is_accepted_for_a_known_contract(pnc: PncCsms, pki: Pki) -> None:
    leaf, _ = pki.contract(EMAID)
    async with connected(PncCharger, pnc.url(charger_id()), charger_id(), "ocpp2.0.1") as charger:
        assert await authorize(charger, EMAID, certificate=pki.chain(leaf)) == ("Accepted", "Accepted")
        # The charger's authorization cache keeps the contract no longer than its certificate.
        answer = await charger.call(
            call.Authorize(id_token={"id_token": EMAID, "type": "eMAID"}, certificate=pki.chain(leaf)),
            suppress=False,
        )
        expiry = answer.id_token_info["cache_expiry_date_time"]
        assert datetime.fromisoformat(expiry.replace("Z", "+00:00")) == leaf.not_valid_after_utc
        stranger, _ = pki.contract("DE-FWT-C10000002-1")
        assert await authorize(charger, "DE-FWT-C10000002-1", certificate=pki.chain(stranger)) == (
            "Unknown",
            "Accepted",
        )
    assert [t.value for t in pnc.authorizer.asked] == [EMAID, EMAID, "DE-FWT-C10000002-1"]
    assert pnc.authorizer.asked[0].token_type == "eMAID"


async def test_refused_certificates_never_reach_the_contract_authorizer(pnc: PncCsms, pki: Pki) -> None:
    expired, _ = pki.contract(EMAID, not_before=NOW - timedelta(days=10), not_after=NOW - timedelta(days=1))
    forged, _ = pki.contract(EMAID, signing_key=key())
    rogue_sub = sub_ca("Rogue MO Sub-CA", root("Rogue MO Root"))
    untrusted, _ = contract(EMAID, rogue_sub, base_url=None)
    other, _ = pki.contract("DE-FWT-C10000003-1")
    async with connected(PncCharger, pnc.url("CP-PNC-REFUSE"), "CP-PNC-REFUSE", "ocpp2.0.1") as charger:
        assert await authorize(charger, EMAID, certificate=pki.chain(expired)) == (
            "Expired",
            "CertificateExpired",
        )
        assert await authorize(charger, EMAID, certificate=pki.chain(forged)) == ("Invalid", "SignatureError")
        assert await authorize(charger, EMAID, certificate=pem(untrusted, rogue_sub.certificate)) == (
            "Invalid",
            "CertChainError",
        )
        # A valid certificate of another contract presented with this eMAID.
        assert await authorize(charger, EMAID, certificate=pki.chain(other)) == ("Invalid", "CertChainError")
    assert pnc.authorizer.asked == []


async def test_a_contract_revoked_at_the_mobility_operator_is_refused(pnc: PncCsms, pki: Pki) -> None:
    leaf, _ = pki.contract(EMAID)
    async with connected(PncCharger, pnc.url("CP-PNC-REV"), "CP-PNC-REV", "ocpp2.0.1") as charger:
        assert await authorize(charger, EMAID, certificate=pki.chain(leaf)) == ("Accepted", "Accepted")
        pki.responder.revoke(leaf)
        assert await authorize(charger, EMAID, certificate=pki.chain(leaf)) == (
            "Blocked",
            "CertificateRevoked",
        )


async def test_a_contract_cancelled_by_the_operator_is_refused(pnc: PncCsms, pki: Pki) -> None:
    emaid = "DE-FWT-C10000004-1"
    pnc.authorizer.contracts.add(emaid)
    leaf, _ = pki.contract(emaid)
    async with connected(PncCharger, pnc.url("CP-PNC-CAN"), "CP-PNC-CAN", "ocpp2.0.1") as charger:
        assert await authorize(charger, emaid, certificate=pki.chain(leaf)) == ("Accepted", "Accepted")
        assert await pnc.pki.inventory.revoke_contract("defwtc100000041", "card stolen")
        assert await authorize(charger, emaid, certificate=pki.chain(leaf)) == (
            "Blocked",
            "ContractCancelled",
        )


async def test_hash_data_only_is_checked_by_ocsp(pnc: PncCsms, pki: Pki) -> None:
    leaf, _ = pki.contract(EMAID)

    def hash_data(certificate: x509.Certificate, issuer: x509.Certificate) -> dict[str, str]:
        request_id = ocsp_id(certificate, issuer)
        return {
            "hash_algorithm": "SHA256",
            "issuer_name_hash": request_id.issuer_name_hash,
            "issuer_key_hash": request_id.issuer_key_hash,
            "serial_number": request_id.serial_number,
            "responder_url": f"{pki.responder.base_url}/ocsp",
        }

    data = [
        hash_data(leaf, pki.mo_sub.certificate),
        hash_data(pki.mo_sub.certificate, pki.mo_root.certificate),
    ]
    async with connected(PncCharger, pnc.url("CP-PNC-HASH"), "CP-PNC-HASH", "ocpp2.0.1") as charger:
        assert await authorize(charger, EMAID, iso15118_certificate_hash_data=data) == (
            "Accepted",
            "Accepted",
        )
        pki.responder.revoke(leaf)
        assert await authorize(charger, EMAID, iso15118_certificate_hash_data=data) == (
            "Blocked",
            "CertificateRevoked",
        )
        rogue = sub_ca("Rogue MO Sub-CA", root("Rogue MO Root"))
        unknown_issuer = [hash_data(contract(EMAID, rogue, base_url=None)[0], rogue.certificate)]
        assert await authorize(charger, EMAID, iso15118_certificate_hash_data=unknown_issuer) == (
            "Invalid",
            "CertChainError",
        )


async def test_get_certificate_status_relays_the_responders_answer(pnc: PncCsms, pki: Pki) -> None:
    request_id = ocsp_id(pki.cpo_sub.certificate, pki.v2g_root.certificate)
    data = {
        "hash_algorithm": "SHA256",
        "issuer_name_hash": request_id.issuer_name_hash,
        "issuer_key_hash": request_id.issuer_key_hash,
        "serial_number": request_id.serial_number,
        "responder_url": f"{pki.responder.base_url}/ocsp",
    }
    async with connected(PncCharger, pnc.url("CP-PNC-OCSP"), "CP-PNC-OCSP", "ocpp2.0.1") as charger:
        answer = await charger.call(call.GetCertificateStatus(ocsp_request_data=data), suppress=False)
        assert answer.status == "Accepted"
        response = ocsp.load_der_ocsp_response(base64.b64decode(answer.ocsp_result))
        assert response.certificate_status is ocsp.OCSPCertStatus.GOOD
        assert response.serial_number == pki.cpo_sub.certificate.serial_number
        pki.responder.ocsp_available = False
        data["serial_number"] = "abcdef"  # not cached: the responder is asked and is down
        answer = await charger.call(call.GetCertificateStatus(ocsp_request_data=data), suppress=False)
        assert answer.status == "Failed"


async def test_get_15118_ev_certificate_from_the_local_provider_then_plug_and_charge(
    pnc: PncCsms, pki: Pki
) -> None:
    emaid = "DE-FWT-C10000005-1"
    pnc.authorizer.contracts.add(emaid)
    request, _ = csr(emaid, organization=None)
    async with connected(PncCharger, pnc.url("CP-PNC-INST"), "CP-PNC-INST", "ocpp2.0.1") as charger:
        answer = await charger.call(
            call.Get15118EVCertificate(
                iso15118_schema_version="urn:iso:15118:2:2013:MsgDef",
                action="Install",
                exi_request=base64.b64encode(request.encode()).decode(),
            ),
            suppress=False,
        )
        assert answer.status == "Accepted"
        chain_pem = base64.b64decode(answer.exi_response).decode()
        chain = load_chain(chain_pem)
        assert common_name(chain[0].subject) == emaid
        assert await authorize(charger, emaid, certificate=chain_pem) == ("Accepted", "Accepted")
        refused = await charger.call(
            call.Get15118EVCertificate(
                iso15118_schema_version="x", action="Install", exi_request="bm90IGEgQ1NS"
            ),
            suppress=False,
        )
        assert refused.status == "Failed"


async def test_sign_certificate_issues_a_v2g_certificate_for_this_charger(pnc: PncCsms, pki: Pki) -> None:
    identity = charger_id()
    request, holder = csr(identity)
    async with connected(PncCharger, pnc.url(identity), identity, "ocpp2.0.1") as charger:
        answer = await charger.call(
            call.SignCertificate(csr=request, certificate_type="V2GCertificate"), suppress=False
        )
        assert answer.status == "Accepted"
        signed = await asyncio.wait_for(charger.signed.get(), 5)
        await wait_installed(pnc.pki, identity)
    assert signed["certificate_type"] == "V2GCertificate"
    chain = load_chain(signed["certificate_chain"])
    assert common_name(chain[0].subject) == identity
    assert chain[0].public_key() == holder.public_key()
    chain[0].verify_directly_issued_by(pki.cpo_sub.certificate)
    assert chain[1] == pki.cpo_sub.certificate
    issued = await pnc.pki.inventory.issued_to(identity)
    assert [(i.certificate_type, i.serial_number) for i in issued] == [
        ("V2GCertificate", format(chain[0].serial_number, "x"))
    ]


async def test_a_csr_for_another_chargers_identity_is_refused_as_a_security_event(pnc: PncCsms) -> None:
    request, _ = csr("CP-SOMEONE-ELSE")
    wrong_organisation, _ = csr("CP-PNC-CSR", organization="Other CPO")
    async with connected(PncCharger, pnc.url("CP-PNC-CSR"), "CP-PNC-CSR", "ocpp2.0.1") as charger:
        answer = await charger.call(call.SignCertificate(csr=request), suppress=False)
        assert answer.status == "Rejected"
        answer = await charger.call(call.SignCertificate(csr=wrong_organisation), suppress=False)
        assert answer.status == "Rejected"
        assert charger.signed.empty()
    events = await pnc.pki.inventory.security_events("CP-PNC-CSR")
    assert [event_type for event_type, _ in events][-2:] == ["InvalidCsr", "InvalidCsr"]
    assert "CP-SOMEONE-ELSE" in events[-2][1]
    assert await pnc.pki.inventory.issued_to("CP-PNC-CSR") == []


async def test_renewal_is_triggered_before_the_certificate_expires(database_dsn: str, pki: Pki) -> None:
    settings = make_settings(database_dsn, auto_register=True)
    # One-day certificates, renewed 30 days ahead: the new certificate is due at once.
    pki_config = pki_settings(station_certificate_days=1, renewal_lead_days=30)
    identity = charger_id()
    async with (
        running_pnc_csms(settings, pki, pki_config, ContractAuthorizer()) as running,
        connected(PncCharger, running.url(identity), identity, "ocpp2.0.1") as charger,
    ):
        request, _ = csr(identity)
        answer = await charger.call(call.SignCertificate(csr=request), suppress=False)
        assert answer.status == "Accepted"
        await asyncio.wait_for(charger.signed.get(), 5)
        await wait_installed(running.pki, identity)
        started = await running.pki.renewal.run_once()
        assert [r.charger_id for r in started] == [identity]
        assert await asyncio.wait_for(charger.triggers.get(), 5) == "SignChargingStationCertificate"
        assert await running.pki.renewal.run_once() == []  # asked once, not every round
        # The charger answers the trigger with a new CSR; the new certificate supersedes the old.
        answer = await charger.call(call.SignCertificate(csr=csr(identity)[0]), suppress=False)
        renewed = load_chain((await asyncio.wait_for(charger.signed.get(), 5))["certificate_chain"])[0]
        await wait_installed(running.pki, identity, renewed.serial_number)
        issued = await running.pki.inventory.issued_to(identity)
        assert issued[0].serial_number == format(renewed.serial_number, "x")
        assert len(issued) == 2
        assert await running.pki.renewal.run_once() != []  # the renewed one-day certificate is due too


async def test_install_list_and_delete_trusted_roots_on_a_charger(pnc: PncCsms, pki: Pki) -> None:
    async with connected(PncCharger, pnc.url("CP-PNC-ROOTS"), "CP-PNC-ROOTS", "ocpp2.0.1") as charger:
        bus = pnc.csms.commands
        result = await install_certificate(
            bus, "CP-PNC-ROOTS", InstallCertificateUse.MO_ROOT, pem(pki.mo_root.certificate)
        )
        assert result.accepted
        result = await install_certificate(
            bus, "CP-PNC-ROOTS", InstallCertificateUse.V2G_ROOT, pem(pki.v2g_root.certificate)
        )
        assert result.accepted
        assert charger.installed["MORootCertificate"] == pem(pki.mo_root.certificate)
        result, installed = await get_installed_certificate_ids(
            bus, "CP-PNC-ROOTS", [CertificateIdUse.MO_ROOT]
        )
        assert result.accepted
        assert [i.use for i in installed] == ["MORootCertificate", "V2GRootCertificate"]
        deleted = await delete_certificate(bus, "CP-PNC-ROOTS", installed[0].hash_data)
        assert deleted.accepted
        assert sorted(charger.installed) == ["V2GRootCertificate"]
        missing = await delete_certificate(bus, "CP-PNC-ROOTS", installed[0].hash_data)
        assert missing.status == "NotFound"


async def test_an_emaid_without_certificate_is_refused_unless_allowed(
    pnc: PncCsms, pki: Pki, database_dsn: str
) -> None:
    async with connected(PncCharger, pnc.url("CP-PNC-BARE"), "CP-PNC-BARE", "ocpp2.0.1") as charger:
        assert await authorize(charger, EMAID) == ("Invalid", "NoCertificateAvailable")
        rfid = await charger.call(
            call.Authorize(id_token={"id_token": "RFID-1", "type": "ISO14443"}), suppress=False
        )
        assert (rfid.id_token_info["status"], rfid.certificate_status) == ("Unknown", None)
    assert [t.value for t in pnc.authorizer.asked] == ["RFID-1"]
    settings = make_settings(database_dsn, auto_register=True)
    lenient = pki_settings(require_contract_certificate=False)
    async with (
        running_pnc_csms(settings, pki, lenient, ContractAuthorizer({EMAID})) as running,
        connected(PncCharger, running.url("CP-PNC-BARE"), "CP-PNC-BARE", "ocpp2.0.1") as charger,
    ):
        assert await authorize(charger, EMAID) == ("Accepted", None)


class UnreachableProvider:
    async def get_certificate(
        self, charger_id: str, schema_version: str, action: str, exi_request: str
    ) -> Any:
        raise ContractProviderError("the eMSP's service timed out")


async def test_a_provider_failure_is_a_failed_answer(database_dsn: str, pki: Pki) -> None:
    settings = make_settings(database_dsn, auto_register=True)
    async with (
        running_pnc_csms(
            settings, pki, pki_settings(), ContractAuthorizer(), UnreachableProvider()
        ) as running,
        connected(PncCharger, running.url("CP-PNC-PROV"), "CP-PNC-PROV", "ocpp2.0.1") as charger,
    ):
        request = call.Get15118EVCertificate(iso15118_schema_version="x", action="Update", exi_request="AAAA")
        answer = await charger.call(request, suppress=False)
        assert (answer.status, answer.exi_response) == ("Failed", "")


class RefusingCharger(PncCharger):
    @on(Action.certificate_signed)
    async def on_certificate_signed(self, **request: Any) -> Any:
        await self.signed.put(request)
        return call_result.CertificateSigned(status="Rejected")


async def until(check: Any) -> Any:
    """Poll ``check()`` until truthy: CertificateSigned's outcome is recorded by a server task."""
    deadline = asyncio.get_running_loop().time() + 10
    while not (found := await check()):
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)
    return found


async def test_a_new_certificate_replaces_the_old_only_once_installed(pnc: PncCsms) -> None:
    identity = charger_id()
    inventory = pnc.pki.inventory
    async with connected(PncCharger, pnc.url(identity), identity, "ocpp2.0.1") as charger:
        for _ in range(2):
            assert (
                await charger.call(call.SignCertificate(csr=csr(identity)[0]), suppress=False)
            ).status == "Accepted"
            await asyncio.wait_for(charger.signed.get(), 5)

        async def superseded() -> bool:
            issued = await inventory.issued_to(identity)
            return [i.superseded_at is not None for i in issued] == [False, True]

        await until(superseded)
    async with connected(RefusingCharger, pnc.url(identity), identity, "ocpp2.0.1") as charger:
        assert (
            await charger.call(call.SignCertificate(csr=csr(identity)[0]), suppress=False)
        ).status == "Accepted"
        await asyncio.wait_for(charger.signed.get(), 5)

        async def refused() -> list[Any]:
            issued = await inventory.issued_to(identity)
            return issued if issued[0].revoked_at is not None else []

        issued = await until(refused)
    # The refused one is revoked; the one the charger holds stays its current certificate.
    assert [(i.revoked_at is None, i.superseded_at is None) for i in issued] == [
        (False, True),
        (True, True),
        (True, False),
    ]
