"""ContractVerifier without the network: revocation answers come from a dict."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509

from csms.pki.verify import (
    CertificateStatus,
    ContractVerifier,
    RevocationStatus,
    UnavailablePolicy,
)
from tests.csms.pki.factory import NOW, contract, key, pem, root, sub_ca

pytestmark = pytest.mark.asyncio


class DictRevocation:
    """Every certificate GOOD unless its serial is in ``answers``."""

    def __init__(self) -> None:
        self.answers: dict[int, RevocationStatus] = {}
        self.asked: list[int] = []

    async def status(self, certificate: x509.Certificate, issuer: x509.Certificate) -> RevocationStatus:
        self.asked.append(certificate.serial_number)
        return self.answers.get(certificate.serial_number, RevocationStatus.GOOD)


MO_ROOT = root("MO Root")
MO_SUB = sub_ca("MO Sub", MO_ROOT)
EMAID = "DE-FWT-C12345678-9"


def verifier(revocation: DictRevocation, **kwargs: object) -> ContractVerifier:
    return ContractVerifier([MO_ROOT.certificate], revocation, **kwargs)  # type: ignore[arg-type]


async def test_a_valid_chain_naming_the_emaid_is_accepted_and_every_link_checked() -> None:
    revocation = DictRevocation()
    leaf, _ = contract(EMAID, MO_SUB, base_url=None)
    verdict = await verifier(revocation).verify_pem(pem(leaf, MO_SUB.certificate), "DEFWTC123456789")
    assert verdict.status is CertificateStatus.ACCEPTED, verdict.detail
    assert verdict.emaid == EMAID
    assert revocation.asked == [leaf.serial_number, MO_SUB.certificate.serial_number]


async def test_the_root_may_be_sent_along() -> None:
    leaf, _ = contract(EMAID, MO_SUB, base_url=None)
    chain = pem(leaf, MO_SUB.certificate, MO_ROOT.certificate)
    assert (await verifier(DictRevocation()).verify_pem(chain, EMAID)).accepted


async def test_expired_and_not_yet_valid_certificates_are_refused() -> None:
    expired, _ = contract(
        EMAID, MO_SUB, base_url=None, not_before=NOW - timedelta(days=30), not_after=NOW - timedelta(days=1)
    )
    future, _ = contract(EMAID, MO_SUB, base_url=None, not_before=NOW + timedelta(days=1))
    for leaf in (expired, future):
        verdict = await verifier(DictRevocation()).verify_pem(pem(leaf, MO_SUB.certificate), EMAID)
        assert verdict.status is CertificateStatus.CERTIFICATE_EXPIRED


async def test_the_clock_decides_expiry() -> None:
    leaf, _ = contract(EMAID, MO_SUB, base_url=None)
    later = verifier(DictRevocation(), clock=lambda: datetime.now(UTC) + timedelta(days=400))
    assert (
        await later.verify_pem(pem(leaf, MO_SUB.certificate), EMAID)
    ).status is CertificateStatus.CERTIFICATE_EXPIRED


async def test_a_chain_from_an_untrusted_root_is_refused() -> None:
    rogue_root = root("Rogue Root")
    rogue_sub = sub_ca("Rogue Sub", rogue_root)
    leaf, _ = contract(EMAID, rogue_sub, base_url=None)
    without_root = await verifier(DictRevocation()).verify_pem(pem(leaf, rogue_sub.certificate), EMAID)
    with_root = await verifier(DictRevocation()).verify_pem(
        pem(leaf, rogue_sub.certificate, rogue_root.certificate), EMAID
    )
    assert without_root.status is CertificateStatus.CERT_CHAIN_ERROR
    assert with_root.status is CertificateStatus.CERT_CHAIN_ERROR


async def test_a_forged_certificate_is_a_signature_error() -> None:
    forged, _ = contract(EMAID, MO_SUB, base_url=None, signing_key=key())
    verdict = await verifier(DictRevocation()).verify_pem(pem(forged, MO_SUB.certificate), EMAID)
    assert verdict.status is CertificateStatus.SIGNATURE_ERROR


async def test_a_sub_ca_under_a_root_of_the_same_name_but_another_key_is_a_signature_error() -> None:
    impostor_root = root("MO Root")
    impostor_sub = sub_ca("MO Sub", impostor_root)
    leaf, _ = contract(EMAID, impostor_sub, base_url=None)
    verdict = await verifier(DictRevocation()).verify_pem(pem(leaf, impostor_sub.certificate), EMAID)
    assert verdict.status is CertificateStatus.SIGNATURE_ERROR


async def test_the_certificate_must_name_the_emaid_of_the_token() -> None:
    leaf, _ = contract(EMAID, MO_SUB, base_url=None)
    verdict = await verifier(DictRevocation()).verify_pem(pem(leaf, MO_SUB.certificate), "DE-FWT-C99999999-1")
    assert verdict.status is CertificateStatus.CERT_CHAIN_ERROR
    assert "does not name" in verdict.detail


async def test_ca_constraints_are_enforced() -> None:
    not_a_ca = sub_ca("MO Leafish", MO_ROOT, ca=False)
    leaf, _ = contract(EMAID, not_a_ca, base_url=None)
    verdict = await verifier(DictRevocation()).verify_pem(pem(leaf, not_a_ca.certificate), EMAID)
    assert verdict.status is CertificateStatus.CERT_CHAIN_ERROR
    assert "not a CA" in verdict.detail
    # MO_SUB allows no sub-CA below it (path length 0): a sub-sub-CA's contract is refused.
    sub_sub = sub_ca("MO Sub Sub", MO_SUB)
    leaf, _ = contract(EMAID, sub_sub, base_url=None)
    verdict = await verifier(DictRevocation()).verify_pem(
        pem(leaf, sub_sub.certificate, MO_SUB.certificate), EMAID
    )
    assert verdict.status is CertificateStatus.CERT_CHAIN_ERROR
    assert "sub-CAs below it" in verdict.detail


async def test_revoked_leaf_or_sub_ca_is_refused() -> None:
    leaf, _ = contract(EMAID, MO_SUB, base_url=None)
    for serial in (leaf.serial_number, MO_SUB.certificate.serial_number):
        revocation = DictRevocation()
        revocation.answers[serial] = RevocationStatus.REVOKED
        verdict = await verifier(revocation).verify_pem(pem(leaf, MO_SUB.certificate), EMAID)
        assert verdict.status is CertificateStatus.CERTIFICATE_REVOKED


async def test_unavailable_revocation_follows_the_policy() -> None:
    leaf, _ = contract(EMAID, MO_SUB, base_url=None)
    revocation = DictRevocation()
    revocation.answers[leaf.serial_number] = RevocationStatus.UNAVAILABLE
    chain = pem(leaf, MO_SUB.certificate)
    hard = await verifier(revocation, unavailable_policy=UnavailablePolicy.REJECT).verify_pem(chain, EMAID)
    soft = await verifier(revocation, unavailable_policy=UnavailablePolicy.ACCEPT).verify_pem(chain, EMAID)
    assert hard.status is CertificateStatus.CERT_CHAIN_ERROR
    assert soft.status is CertificateStatus.ACCEPTED


async def test_garbage_is_a_chain_error() -> None:
    verdict = await verifier(DictRevocation()).verify_pem(
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", EMAID
    )
    assert verdict.status is CertificateStatus.CERT_CHAIN_ERROR
