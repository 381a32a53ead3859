"""CSR checks, certificate issue, and CA keys loaded from files (never shown)."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from csms.pki.errors import CsrRefusedError, KeyStoreError
from csms.pki.keystore import load_file_authority
from csms.pki.signing import CertificateUse, check_csr, issue_certificate
from tests.csms.pki.factory import csr, key, key_pem, name, pem, root, sub_ca

STATION = CertificateUse.CHARGING_STATION
V2G = CertificateUse.V2G


def _csr_with(private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, common_name: str = "CP-1") -> str:
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(name(common_name, "CPO"))
        .sign(private_key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM).decode()


def test_a_csr_naming_this_charger_is_signed_with_the_right_extensions() -> None:
    ca = sub_ca("CPO Sub-CA", root("V2G Root"))
    request, holder = csr("CP-1", organization="CPO")
    checked = check_csr(request, "CP-1", V2G, organization_name="CPO")
    certificate = issue_certificate(checked, ca.authority(), lifetime=timedelta(days=30))
    certificate.verify_directly_issued_by(ca.certificate)
    assert certificate.public_key() == holder.public_key()
    assert certificate.subject == name("CP-1", "CPO")
    assert not certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.SERVER_AUTH in usage
    assert (certificate.not_valid_after_utc - certificate.not_valid_before_utc) == timedelta(days=30)


@pytest.mark.parametrize(
    ("request_pem", "use", "reason", "security_event"),
    [
        (csr("CP-2")[0], STATION, "not the charging station", True),
        (csr("CP-1", organization="Other")[0], STATION, "not the CPO", True),
        (_csr_with(ec.generate_private_key(ec.SECP521R1())), STATION, "not accepted", False),
        (_csr_with(rsa.generate_private_key(65537, 1024)), STATION, "2048 bits", False),
        (_csr_with(rsa.generate_private_key(65537, 2048)), V2G, "EC P-256", False),
        (
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            STATION,
            "not a PEM",
            False,
        ),
    ],
)
def test_csrs_we_will_not_sign(
    request_pem: str, use: CertificateUse, reason: str, security_event: bool
) -> None:
    with pytest.raises(CsrRefusedError, match=reason) as refused:
        check_csr(
            request_pem, "CP-1", use, organization_name="fairwatt CPO" if "Other" not in reason else "CPO"
        )
    assert refused.value.security_event is security_event


def test_a_csr_with_a_broken_signature_is_a_security_event() -> None:
    request, _ = csr("CP-1", organization="CPO")
    der = x509.load_pem_x509_csr(request.encode()).public_bytes(serialization.Encoding.DER)
    tampered = der[:-8] + bytes(b ^ 0x01 for b in der[-8:])
    tampered_pem = x509.load_der_x509_csr(tampered).public_bytes(serialization.Encoding.PEM).decode()
    with pytest.raises(CsrRefusedError) as refused:
        check_csr(tampered_pem, "CP-1", STATION, organization_name=None)
    assert refused.value.security_event


def test_a_ca_from_files_signs_and_never_shows_its_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ca = sub_ca("Station Sub-CA", root("CSMS Root"))
    (tmp_path / "ca.pem").write_text(pem(ca.certificate))
    (tmp_path / "ca.key").write_bytes(key_pem(ca.key))
    authority = load_file_authority(str(tmp_path / "ca.pem"), str(tmp_path / "ca.key"))
    secret = key_pem(ca.key).decode()
    assert repr(authority) == "KeyCertificateAuthority(CN=Station Sub-CA)"
    checked = check_csr(csr("CP-9")[0], "CP-9", STATION, organization_name=None)
    issue_certificate(checked, authority, lifetime=timedelta(days=1)).verify_directly_issued_by(
        ca.certificate
    )
    (tmp_path / "other.key").write_bytes(key_pem(key()))
    with pytest.raises(KeyStoreError, match="does not belong"):
        load_file_authority(str(tmp_path / "ca.pem"), str(tmp_path / "other.key"))
    (tmp_path / "broken.key").write_text(secret[:200])
    with caplog.at_level(logging.DEBUG), pytest.raises(KeyStoreError) as broken:
        load_file_authority(str(tmp_path / "ca.pem"), str(tmp_path / "broken.key"))
    assert secret[40:120] not in str(broken.value)
    assert all(secret[40:120] not in record.getMessage() for record in caplog.records)
    with pytest.raises(KeyStoreError, match=r"missing\.key"):
        load_file_authority(str(tmp_path / "ca.pem"), str(tmp_path / "missing.key"))
