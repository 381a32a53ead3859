"""``csms.pki.app.install`` from settings alone: roots, sub-CAs and CA keys read from files."""

from __future__ import annotations

from pathlib import Path

import pytest

from csms.pki.app import install
from csms.pki.certs import ocsp_id
from csms.pki.errors import KeyStoreError
from csms.pki.settings import CaFiles, PkiSettings
from csms.pki.signing import CertificateUse
from csms.server import create_app
from tests.csms.conftest import make_settings
from tests.csms.pki.factory import Pki, key_pem, pem, root, sub_ca

pytestmark = pytest.mark.asyncio


def write(directory: Path, pki: Pki) -> PkiSettings:
    (directory / "mo-root.pem").write_text(pem(pki.mo_root.certificate))
    (directory / "mo-sub.pem").write_text(pem(pki.mo_sub.certificate))
    (directory / "station.pem").write_text(pem(pki.station_sub.certificate))
    (directory / "station.key").write_bytes(key_pem(pki.station_sub.key))
    return PkiSettings(
        contract_root_files=(str(directory / "mo-root.pem"),),
        contract_sub_ca_files=(str(directory / "mo-sub.pem"),),
        station_ca=CaFiles(str(directory / "station.pem"), str(directory / "station.key")),
    )


async def test_install_reads_the_pki_from_files(database_dsn: str, pki: Pki, tmp_path: Path) -> None:
    runtime = install(create_app(make_settings(database_dsn)), write(tmp_path, pki))
    assert runtime.signer.can_sign(CertificateUse.CHARGING_STATION)
    assert not runtime.signer.can_sign(CertificateUse.V2G)
    leaf, _ = pki.contract("DE-FWT-C40000001-1")
    # The MO sub-CA is known ahead: hash data naming it as issuer can be checked.
    known = ocsp_id(leaf, pki.mo_sub.certificate)
    verifier = runtime.plug_and_charge.verifier
    assert verifier.known_issuer(known.hash_algorithm, known.issuer_key_hash) == pki.mo_sub.certificate
    rogue = sub_ca("Rogue", root("Rogue Root"))
    unknown = ocsp_id(leaf, rogue.certificate)
    assert verifier.known_issuer(unknown.hash_algorithm, unknown.issuer_key_hash) is None


async def test_a_sub_ca_file_not_under_a_root_is_refused(database_dsn: str, pki: Pki, tmp_path: Path) -> None:
    settings = write(tmp_path, pki)
    (tmp_path / "mo-sub.pem").write_text(pem(sub_ca("Rogue", root("Rogue Root")).certificate))
    with pytest.raises(KeyStoreError, match="not signed by a contract root"):
        install(create_app(make_settings(database_dsn)), settings)
