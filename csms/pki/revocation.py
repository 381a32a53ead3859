"""Revocation over the network: OCSP (responder from the certificate's AIA) with a cache, the CRL
distribution point as fallback when the responder cannot be reached, and the OCSP relay the
charger's GetCertificateStatus uses.

Answers are checked before they are believed: an OCSP response must be signed by the issuer or by
a responder certificate the issuer gave the OCSPSigning usage, and must be current; a CRL must be
signed by the issuer. Good and revoked answers are cached for ``cache_ttl_s`` at most (never past
the answer's nextUpdate).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar
from urllib.parse import urlsplit

import aiohttp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from csms.pki.certs import OcspId, crl_urls, ocsp_urls, serial_hex, verify_signature
from csms.pki.errors import PkiError, RevocationUnavailableError
from csms.pki.verify import RevocationStatus

logger = logging.getLogger(__name__)

_OCSP_STATUS = {
    ocsp.OCSPCertStatus.GOOD: RevocationStatus.GOOD,
    ocsp.OCSPCertStatus.REVOKED: RevocationStatus.REVOKED,
    ocsp.OCSPCertStatus.UNKNOWN: RevocationStatus.UNKNOWN,
}
_SKEW = timedelta(minutes=5)
K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class RevocationSettings:
    cache_ttl_s: float = 300.0
    """How long a good or revoked answer is believed (capped by the answer's nextUpdate)."""
    ocsp_timeout_s: float = 3.0
    crl_timeout_s: float = 5.0
    crl_max_bytes: int = 10_000_000
    ocsp_max_bytes: int = 65_536
    relay_hosts: tuple[str, ...] = ()
    """Hosts a charger may have us relay OCSP requests to (GetCertificateStatus, Authorize with hash
    data: the URL comes from the charger). Empty: any http(s) URL, so the CSMS can be made to POST to
    any host it reaches; set it to the MO and V2G responders' hosts in production."""


class TtlCache(Generic[K, V]):
    """A dict whose entries expire (monotonic clock); bounded by dropping the oldest entries."""

    def __init__(self, max_entries: int = 100_000, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._entries: dict[K, tuple[float, V]] = {}
        self._max_entries = max_entries
        self._monotonic = monotonic

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self._monotonic():
            del self._entries[key]
            return None
        return entry[1]

    def put(self, key: K, value: V, ttl_s: float) -> None:
        if ttl_s <= 0:
            return
        if len(self._entries) >= self._max_entries:
            for old in list(self._entries)[: self._max_entries // 10 + 1]:
                del self._entries[old]
        self._entries[key] = (self._monotonic() + ttl_s, value)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def _ttl_until(next_update: datetime | None, cap_s: float, now: datetime) -> float:
    if next_update is None:
        return cap_s
    return max(0.0, min(cap_s, (next_update - now).total_seconds()))


def interpret_ocsp(
    response_der: bytes, certificate_serial: int, issuer: x509.Certificate, now: datetime
) -> tuple[RevocationStatus, datetime | None]:
    """The status an OCSP response gives, after checking who signed it and that it is current.

    :class:`RevocationUnavailableError` for an unsuccessful, unsigned, stale or unrelated response.
    """
    try:
        response = ocsp.load_der_ocsp_response(response_der)
    except ValueError as exc:
        raise RevocationUnavailableError(f"unreadable OCSP response: {exc}") from exc
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise RevocationUnavailableError(f"OCSP responder answered {response.response_status.name}")
    signer = _ocsp_signer(response, issuer, now)
    if not verify_signature(
        signer.public_key(),
        response.signature,
        response.tbs_response_bytes,
        response.signature_hash_algorithm,
    ):
        raise RevocationUnavailableError("the OCSP response signature does not verify")
    for single in response.responses:
        if single.serial_number != certificate_serial:
            continue
        if single.this_update_utc > now + _SKEW:
            raise RevocationUnavailableError("the OCSP response is from the future")
        if single.next_update_utc is not None and single.next_update_utc < now - _SKEW:
            raise RevocationUnavailableError("the OCSP response is stale")
        return _OCSP_STATUS[single.certificate_status], single.next_update_utc
    raise RevocationUnavailableError(f"the OCSP response does not cover {serial_hex(certificate_serial)}")


def _ocsp_signer(response: ocsp.OCSPResponse, issuer: x509.Certificate, now: datetime) -> x509.Certificate:
    """The issuer itself, or a current delegated responder certificate it signed for OCSP signing."""
    for responder in response.certificates:
        if not responder.not_valid_before_utc - _SKEW <= now <= responder.not_valid_after_utc + _SKEW:
            continue
        try:
            responder.verify_directly_issued_by(issuer)
            usage = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
            continue
        if ExtendedKeyUsageOID.OCSP_SIGNING in usage:
            return responder
    return issuer


class _LookupAbandonedError(PkiError):
    """The lookup others were waiting for was cancelled."""


async def _read_capped(answer: aiohttp.ClientResponse, max_bytes: int, url: str) -> bytes:
    """The whole body of ``answer``; :class:`RevocationUnavailableError` beyond ``max_bytes``."""
    chunks: list[bytes] = []
    total = 0
    async for chunk in answer.content.iter_chunked(65_536):
        total += len(chunk)
        if total > max_bytes:
            raise RevocationUnavailableError(f"the answer of {url} is larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class NetworkRevocationChecker:
    """OCSP first (cached), the CRL when the responder is unreachable; ``UNAVAILABLE`` when both fail."""

    def __init__(
        self,
        settings: RevocationSettings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._answers: TtlCache[tuple[str, str, str], RevocationStatus] = TtlCache(monotonic=monotonic)
        self._crls: TtlCache[str, x509.CertificateRevocationList] = TtlCache(1000, monotonic=monotonic)
        self._relayed: TtlCache[tuple[str, str, str], bytes] = TtlCache(monotonic=monotonic)
        self._in_flight: dict[tuple[str, str, str], asyncio.Future[RevocationStatus]] = {}
        self._http: aiohttp.ClientSession | None = None
        self.ocsp_requests = 0
        """OCSP requests sent (for tests and the benchmark)."""

    async def open(self) -> None:
        if self._http is None:
            self._http = aiohttp.ClientSession()

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def forget(self) -> None:
        """Drop every cached answer (the benchmark's cold runs; an operator after a key compromise)."""
        self._answers.clear()
        self._crls.clear()
        self._relayed.clear()

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            raise PkiError("the revocation checker is not open")
        return self._http

    async def status(self, certificate: x509.Certificate, issuer: x509.Certificate) -> RevocationStatus:
        key = (issuer.fingerprint(hashes.SHA256()).hex(), serial_hex(certificate.serial_number), "")
        cached = self._answers.get(key)
        if cached is not None:
            return cached
        # Concurrent Authorizes for certificates of one sub-CA ask the responder once.
        pending = self._in_flight.get(key)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except _LookupAbandonedError:
                pass  # the caller asking was cancelled: ask ourselves
        future: asyncio.Future[RevocationStatus] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            status = await self._look_up(certificate, issuer, key)
        except BaseException:
            future.set_exception(_LookupAbandonedError())
            future.exception()  # retrieved: nobody else may be waiting
            raise
        else:
            future.set_result(status)
            return status
        finally:
            if self._in_flight.get(key) is future:
                del self._in_flight[key]

    async def _look_up(
        self, certificate: x509.Certificate, issuer: x509.Certificate, key: tuple[str, str, str]
    ) -> RevocationStatus:
        now = self._clock()
        try:
            status, next_update = await self._ask_ocsp(certificate, issuer, now)
        except RevocationUnavailableError as ocsp_failure:
            try:
                status, next_update = await self._ask_crl(certificate, issuer, now)
            except RevocationUnavailableError as crl_failure:
                logger.warning(
                    "revocation of %s unknown: OCSP: %s; CRL: %s",
                    serial_hex(certificate.serial_number),
                    ocsp_failure,
                    crl_failure,
                )
                return RevocationStatus.UNAVAILABLE
        if status in (RevocationStatus.GOOD, RevocationStatus.REVOKED):
            self._answers.put(key, status, _ttl_until(next_update, self._settings.cache_ttl_s, now))
        return status

    async def _ask_ocsp(
        self, certificate: x509.Certificate, issuer: x509.Certificate, now: datetime
    ) -> tuple[RevocationStatus, datetime | None]:
        urls = ocsp_urls(certificate)
        if not urls:
            raise RevocationUnavailableError("no OCSP responder in the certificate")
        request = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA256()).build()
        body = await self._post_ocsp(urls[0], request.public_bytes(serialization.Encoding.DER))
        return interpret_ocsp(body, certificate.serial_number, issuer, now)

    async def _post_ocsp(self, url: str, request_der: bytes) -> bytes:
        if not url.startswith(("http://", "https://")):
            raise RevocationUnavailableError(f"OCSP responder {url!r} is not an HTTP URL")
        self.ocsp_requests += 1
        try:
            async with self._session().post(
                url,
                data=request_der,
                headers={"Content-Type": "application/ocsp-request"},
                timeout=aiohttp.ClientTimeout(total=self._settings.ocsp_timeout_s),
            ) as answer:
                if answer.status != 200:
                    raise RevocationUnavailableError(f"OCSP responder {url} answered HTTP {answer.status}")
                return await _read_capped(answer, self._settings.ocsp_max_bytes, url)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RevocationUnavailableError(f"OCSP responder {url} unreachable: {exc!r}") from exc

    async def _ask_crl(
        self, certificate: x509.Certificate, issuer: x509.Certificate, now: datetime
    ) -> tuple[RevocationStatus, datetime | None]:
        urls = crl_urls(certificate)
        if not urls:
            raise RevocationUnavailableError("no CRL distribution point in the certificate")
        crl = self._crls.get(urls[0])
        if crl is None:
            crl = await self._fetch_crl(urls[0])
            if crl.issuer != issuer.subject or not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
                raise RevocationUnavailableError(f"the CRL at {urls[0]} is not signed by the issuer")
            if crl.next_update_utc is not None and crl.next_update_utc < now - _SKEW:
                raise RevocationUnavailableError(f"the CRL at {urls[0]} is stale")
            self._crls.put(urls[0], crl, _ttl_until(crl.next_update_utc, self._settings.cache_ttl_s, now))
        revoked = crl.get_revoked_certificate_by_serial_number(certificate.serial_number)
        return (RevocationStatus.GOOD if revoked is None else RevocationStatus.REVOKED), crl.next_update_utc

    async def _fetch_crl(self, url: str) -> x509.CertificateRevocationList:
        if not url.startswith(("http://", "https://")):
            raise RevocationUnavailableError(f"CRL distribution point {url!r} is not an HTTP URL")
        try:
            async with self._session().get(
                url, timeout=aiohttp.ClientTimeout(total=self._settings.crl_timeout_s)
            ) as answer:
                if answer.status != 200:
                    raise RevocationUnavailableError(
                        f"CRL distribution point {url} answered HTTP {answer.status}"
                    )
                body = await _read_capped(answer, self._settings.crl_max_bytes, url)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RevocationUnavailableError(f"CRL distribution point {url} unreachable: {exc!r}") from exc
        try:
            return (
                x509.load_der_x509_crl(body)
                if not body.startswith(b"-----")
                else x509.load_pem_x509_crl(body)
            )
        except ValueError as exc:
            raise RevocationUnavailableError(f"unreadable CRL at {url}: {exc}") from exc

    async def relay(self, request_id: OcspId) -> bytes:
        """GetCertificateStatus: ask ``request_id.responder_url`` and return the DER response as is.

        The charger checks the response itself; we only relay it (and cache it like our own answers).
        """
        cached = self._relayed.get(request_id.cache_key)
        if cached is not None:
            return cached
        if request_id.responder_url is None:
            raise RevocationUnavailableError("no responder URL")
        host = urlsplit(request_id.responder_url).hostname
        if self._settings.relay_hosts and host not in self._settings.relay_hosts:
            raise RevocationUnavailableError(f"responder host {host!r} is not one we relay to")
        try:
            request = (
                ocsp.OCSPRequestBuilder()
                .add_certificate_by_hash(
                    bytes.fromhex(request_id.issuer_name_hash),
                    bytes.fromhex(request_id.issuer_key_hash),
                    int(request_id.serial_number, 16),
                    request_id.algorithm(),
                )
                .build()
            )
        except (ValueError, PkiError) as exc:
            raise RevocationUnavailableError(f"bad OCSP request data: {exc}") from exc
        body = await self._post_ocsp(
            request_id.responder_url, request.public_bytes(serialization.Encoding.DER)
        )
        try:
            response = ocsp.load_der_ocsp_response(body)
        except ValueError as exc:
            raise RevocationUnavailableError(f"unreadable OCSP response: {exc}") from exc
        if response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL:
            now = self._clock()
            self._relayed.put(
                request_id.cache_key,
                body,
                _ttl_until(response.next_update_utc, self._settings.cache_ttl_s, now),
            )
        return body

    async def status_by_id(self, request_id: OcspId, issuer: x509.Certificate) -> RevocationStatus:
        """The status of the certificate ``request_id`` names (iso15118CertificateHashData), via OCSP only."""
        key = (issuer.fingerprint(hashes.SHA256()).hex(), request_id.serial_number, "")
        cached = self._answers.get(key)
        if cached is not None:
            return cached
        now = self._clock()
        try:
            body = await self.relay(request_id)
            status, next_update = interpret_ocsp(body, int(request_id.serial_number, 16), issuer, now)
        except RevocationUnavailableError as exc:
            logger.warning("revocation of %s unknown: %s", request_id.serial_number, exc)
            return RevocationStatus.UNAVAILABLE
        if status in (RevocationStatus.GOOD, RevocationStatus.REVOKED):
            self._answers.put(key, status, _ttl_until(next_update, self._settings.cache_ttl_s, now))
        return status


__all__ = ["NetworkRevocationChecker", "RevocationSettings", "TtlCache", "interpret_ocsp"]
