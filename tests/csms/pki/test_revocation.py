"""NetworkRevocationChecker against the local OCSP responder and CRL server."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from cryptography.x509 import ocsp

from csms.pki.certs import OcspId, ocsp_id
from csms.pki.errors import RevocationUnavailableError
from csms.pki.revocation import NetworkRevocationChecker, RevocationSettings
from csms.pki.verify import RevocationStatus
from tests.csms.pki.factory import Pki, key

pytestmark = pytest.mark.asyncio


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest_asyncio.fixture
async def clock() -> FakeMonotonic:
    return FakeMonotonic()


@pytest_asyncio.fixture
async def checker(clock: FakeMonotonic) -> AsyncIterator[NetworkRevocationChecker]:
    checker = NetworkRevocationChecker(
        RevocationSettings(cache_ttl_s=60.0, ocsp_timeout_s=2.0), monotonic=clock
    )
    await checker.open()
    try:
        yield checker
    finally:
        await checker.close()


async def test_good_then_cached_for_the_lifetime_then_asked_again(
    pki: Pki, checker: NetworkRevocationChecker, clock: FakeMonotonic
) -> None:
    leaf, _ = pki.contract("DE-FWT-C00000001-1")
    assert await checker.status(leaf, pki.mo_sub.certificate) is RevocationStatus.GOOD
    assert pki.responder.ocsp_requests == 1
    pki.responder.revoke(leaf)
    clock.now += 59
    assert await checker.status(leaf, pki.mo_sub.certificate) is RevocationStatus.GOOD  # cached
    assert pki.responder.ocsp_requests == 1
    clock.now += 2
    assert await checker.status(leaf, pki.mo_sub.certificate) is RevocationStatus.REVOKED
    assert pki.responder.ocsp_requests == 2


async def test_crl_is_the_fallback_when_ocsp_is_down(pki: Pki, checker: NetworkRevocationChecker) -> None:
    good, _ = pki.contract("DE-FWT-C00000002-1")
    revoked, _ = pki.contract("DE-FWT-C00000003-1")
    pki.responder.revoke(revoked)
    pki.responder.ocsp_available = False
    assert await checker.status(good, pki.mo_sub.certificate) is RevocationStatus.GOOD
    assert await checker.status(revoked, pki.mo_sub.certificate) is RevocationStatus.REVOKED
    assert pki.responder.crl_requests == 1  # the CRL itself is cached too


async def test_unavailable_when_neither_answers(pki: Pki, checker: NetworkRevocationChecker) -> None:
    leaf, _ = pki.contract("DE-FWT-C00000004-1")
    pki.responder.ocsp_available = False
    pki.responder.crl_available = False
    assert await checker.status(leaf, pki.mo_sub.certificate) is RevocationStatus.UNAVAILABLE
    pki.responder.ocsp_available = True
    assert await checker.status(leaf, pki.mo_sub.certificate) is RevocationStatus.GOOD  # not cached


async def test_a_forged_ocsp_answer_is_not_believed(pki: Pki, checker: NetworkRevocationChecker) -> None:
    leaf, _ = pki.contract("DE-FWT-C00000005-1")
    pki.responder.revoke(leaf)
    pki.responder.wrong_signer = key()  # an impostor answering "good"
    pki.responder.crl_available = False
    assert await checker.status(leaf, pki.mo_sub.certificate) is RevocationStatus.UNAVAILABLE


async def test_relay_returns_the_responders_answer_for_hash_data(
    pki: Pki, checker: NetworkRevocationChecker
) -> None:
    leaf, _ = pki.contract("DE-FWT-C00000006-1")
    pki.responder.revoke(leaf)
    request_id = ocsp_id(leaf, pki.mo_sub.certificate)
    wire = OcspId.from_ocpp(
        {
            "hashAlgorithm": request_id.hash_algorithm,
            "issuerNameHash": request_id.issuer_name_hash,
            "issuerKeyHash": request_id.issuer_key_hash,
            "serialNumber": request_id.serial_number,
            "responderURL": f"{pki.responder.base_url}/ocsp",
        }
    )
    answer = ocsp.load_der_ocsp_response(await checker.relay(wire))
    assert answer.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert answer.serial_number == leaf.serial_number
    assert await checker.status_by_id(wire, pki.mo_sub.certificate) is RevocationStatus.REVOKED
    assert pki.responder.ocsp_requests == 1  # the relayed answer is cached
    assert base64.b64encode(await checker.relay(wire))


async def test_relay_only_to_allowed_hosts(pki: Pki) -> None:
    leaf, _ = pki.contract("DE-FWT-C00000007-1")
    request_id = ocsp_id(leaf, pki.mo_sub.certificate)
    checker = NetworkRevocationChecker(RevocationSettings(relay_hosts=("ocsp.mo.example",)))
    await checker.open()
    try:
        with pytest.raises(RevocationUnavailableError, match="not one we relay to"):
            await checker.relay(request_id)
        assert pki.responder.ocsp_requests == 0
    finally:
        await checker.close()


async def test_an_oversized_answer_is_not_read(pki: Pki) -> None:
    leaf, _ = pki.contract("DE-FWT-C00000008-1")
    checker = NetworkRevocationChecker(RevocationSettings(ocsp_max_bytes=100, crl_max_bytes=100))
    await checker.open()
    try:
        assert await checker.status(leaf, pki.mo_sub.certificate) is RevocationStatus.UNAVAILABLE
        assert (pki.responder.ocsp_requests, pki.responder.crl_requests) == (1, 1)
    finally:
        await checker.close()


async def test_concurrent_lookups_of_one_certificate_ask_the_responder_once(
    pki: Pki, checker: NetworkRevocationChecker
) -> None:
    leaf, _ = pki.contract("DE-FWT-C00000009-1")
    answers = await asyncio.gather(*(checker.status(leaf, pki.mo_sub.certificate) for _ in range(5)))
    assert answers == [RevocationStatus.GOOD] * 5
    assert pki.responder.ocsp_requests == 1


async def test_waiters_ask_themselves_when_the_first_lookup_is_cancelled(
    pki: Pki, checker: NetworkRevocationChecker
) -> None:
    leaf, _ = pki.contract("DE-FWT-C00000010-1")
    first = asyncio.create_task(checker.status(leaf, pki.mo_sub.certificate))
    await asyncio.sleep(0)  # the first lookup is under way
    waiters = [asyncio.create_task(checker.status(leaf, pki.mo_sub.certificate)) for _ in range(2)]
    await asyncio.sleep(0)
    first.cancel()
    assert await asyncio.gather(*waiters) == [RevocationStatus.GOOD] * 2
    with pytest.raises(asyncio.CancelledError):
        await first
