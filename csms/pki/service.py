"""What the certificate handlers ask: Plug & Charge authorisation, CSR signing, OCSP relay.

Handlers translate OCPP payloads to these calls and back; everything here is version-neutral and
independent of the socket.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Protocol

from cryptography import x509

from csms.commands.results import CommandOutcome
from csms.domain.events import Authorization, AuthorizationStatus, IdToken
from csms.pki.certs import OcspId, to_pem
from csms.pki.errors import CsrRefusedError, PkiError, RevocationUnavailableError
from csms.pki.inventory import CertificateInventory
from csms.pki.keystore import CertificateAuthority
from csms.pki.revocation import TtlCache
from csms.pki.signing import CertificateUse, check_csr, issue_certificate
from csms.pki.verify import CertificateStatus, ContractVerdict, ContractVerifier, RevocationStatus

logger = logging.getLogger(__name__)

TokenAuthorizer = Callable[[str, IdToken], Awaitable[Authorization]]

_TOKEN_STATUS = {
    CertificateStatus.CERTIFICATE_EXPIRED: AuthorizationStatus.EXPIRED,
    CertificateStatus.CERTIFICATE_REVOKED: AuthorizationStatus.BLOCKED,
    CertificateStatus.CONTRACT_CANCELLED: AuthorizationStatus.BLOCKED,
}


class HashRevocationChecker(Protocol):
    async def status_by_id(self, request_id: OcspId, issuer: x509.Certificate) -> RevocationStatus: ...

    async def relay(self, request_id: OcspId) -> bytes: ...

    def forget(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ContractDecision:
    """The answer to a Plug & Charge Authorize: the token's verdict and the certificate's.

    An accepted verdict expires no later than the contract certificate (the charger's authorization
    cache keeps the eMAID no longer)."""

    authorization: Authorization
    certificate_status: CertificateStatus
    detail: str

    @property
    def status(self) -> AuthorizationStatus:
        return self.authorization.status


class PlugAndCharge:
    """Authorize with a contract certificate (or its OCSP hash data), then the eMAID's contract."""

    def __init__(
        self,
        verifier: ContractVerifier,
        revocation: HashRevocationChecker,
        inventory: CertificateInventory,
        *,
        cache_ttl_s: float,
        require_certificate: bool = True,
    ) -> None:
        self.require_certificate = require_certificate
        """Whether an eMAID without certificate data is refused rather than left to the Authorizer."""
        self._verifier = verifier
        self._revocation = revocation
        self._inventory = inventory
        self._cache_ttl_s = cache_ttl_s
        self._cancelled: TtlCache[str, bool] = TtlCache()
        """eMAID -> cancelled by the operator, believed as long as OCSP answers are."""

    @property
    def verifier(self) -> ContractVerifier:
        return self._verifier

    def forget(self) -> None:
        """Drop every cached revocation answer (OCSP, CRL and the operator's cancellations)."""
        self._cancelled.clear()
        self._revocation.forget()

    async def _contract_cancelled(self, emaid: str) -> bool:
        cancelled = self._cancelled.get(emaid)
        if cancelled is None:
            cancelled = await self._inventory.contract_revoked(emaid)
            self._cancelled.put(emaid, cancelled, self._cache_ttl_s)
        return cancelled

    async def authorize(
        self,
        charger_id: str,
        token: IdToken,
        *,
        certificate_pem: str | None,
        hash_data: Sequence[OcspId],
        authorize_token: TokenAuthorizer,
    ) -> ContractDecision:
        """Verify the certificate, then ask ``authorize_token`` (the app's Authorizer) for the eMAID."""
        if await self._contract_cancelled(token.value):
            verdict = ContractVerdict(
                CertificateStatus.CONTRACT_CANCELLED, "the operator cancelled the contract"
            )
        elif certificate_pem is not None:
            verdict = await self._verifier.verify_pem(certificate_pem, token.value)
        elif hash_data:
            verdict = await self._verify_hash_data(hash_data)
        else:
            verdict = ContractVerdict(CertificateStatus.NO_CERTIFICATE_AVAILABLE, "no certificate data")
        if not verdict.accepted:
            logger.info(
                "charger %s: contract certificate for %s refused: %s (%s)",
                charger_id,
                token.value,
                verdict.status.value,
                verdict.detail,
            )
            return ContractDecision(
                Authorization(_TOKEN_STATUS.get(verdict.status, AuthorizationStatus.INVALID)),
                verdict.status,
                verdict.detail,
            )
        authorization = await authorize_token(charger_id, token)
        valid_until = verdict.chain[0].not_valid_after_utc if verdict.chain else None
        if authorization.accepted and valid_until is not None:
            expires_at = authorization.expires_at
            authorization = replace(
                authorization, expires_at=valid_until if expires_at is None else min(expires_at, valid_until)
            )
        return ContractDecision(authorization, CertificateStatus.ACCEPTED, verdict.detail)

    async def _verify_hash_data(self, hash_data: Sequence[OcspId]) -> ContractVerdict:
        """The charger verified the chain; check each certificate's revocation through OCSP."""
        for request_id in hash_data:
            issuer = self._verifier.known_issuer(request_id.hash_algorithm, request_id.issuer_key_hash)
            if issuer is None:
                return ContractVerdict(
                    CertificateStatus.CERT_CHAIN_ERROR,
                    f"unknown issuer of certificate {request_id.serial_number}",
                )
            status = await self._revocation.status_by_id(request_id, issuer)
            if status is RevocationStatus.REVOKED:
                return ContractVerdict(
                    CertificateStatus.CERTIFICATE_REVOKED,
                    f"certificate {request_id.serial_number} is revoked",
                )
            if status is not RevocationStatus.GOOD:
                return ContractVerdict(
                    CertificateStatus.CERT_CHAIN_ERROR,
                    f"revocation of certificate {request_id.serial_number} is {status.value}",
                )
        return ContractVerdict(CertificateStatus.ACCEPTED, "OCSP: good")

    async def certificate_status(self, request_id: OcspId) -> bytes | None:
        """GetCertificateStatus: the responder's DER answer, None when it cannot be had."""
        try:
            return await self._revocation.relay(request_id)
        except RevocationUnavailableError as exc:
            logger.warning("OCSP relay for %s failed: %s", request_id.serial_number, exc)
            return None


class CertificateSigner:
    """SignCertificate: checks the CSR against the charger, signs it, records the certificate."""

    def __init__(
        self,
        authorities: dict[CertificateUse, CertificateAuthority],
        inventory: CertificateInventory,
        *,
        lifetimes: dict[CertificateUse, timedelta],
        organization_name: str | None,
    ) -> None:
        self._authorities = authorities
        self._inventory = inventory
        self._lifetimes = lifetimes
        self._organization_name = organization_name

    def can_sign(self, use: CertificateUse) -> bool:
        return use in self._authorities

    async def check(
        self, charger_id: str, csr_pem: str, use: CertificateUse
    ) -> x509.CertificateSigningRequest:
        """Refuse (:class:`CsrRefusedError`) a CSR we will not sign; a security event is recorded."""
        try:
            if use not in self._authorities:
                raise CsrRefusedError(f"no CA is configured to sign {use.value}")
            check_csr(csr_pem, charger_id, use, organization_name=self._organization_name)
        except CsrRefusedError as exc:
            if exc.security_event:
                logger.warning("charger %s: security event: CSR refused: %s", charger_id, exc.reason)
                await self._inventory.security_event(charger_id, "InvalidCsr", exc.reason)
            else:
                logger.info("charger %s: CSR refused: %s", charger_id, exc.reason)
            raise
        return x509.load_pem_x509_csr(csr_pem.encode("ascii"))

    async def sign(self, charger_id: str, csr_pem: str, use: CertificateUse) -> tuple[x509.Certificate, str]:
        """The new certificate and its PEM chain (then the sub-CAs) for a CSR :meth:`check` accepted."""
        request = check_csr(csr_pem, charger_id, use, organization_name=self._organization_name)
        authority = self._authorities.get(use)
        if authority is None:
            raise PkiError(f"no CA signs {use.value}")
        certificate = issue_certificate(request, authority, lifetime=self._lifetimes[use])
        await self._inventory.record_issued(charger_id, use.value, certificate)
        logger.info(
            "charger %s: issued %s serial %x valid until %s",
            charger_id,
            use.value,
            certificate.serial_number,
            certificate.not_valid_after_utc.isoformat(),
        )
        return certificate, to_pem(certificate, *authority.chain)

    async def delivered(
        self, charger_id: str, use: CertificateUse, certificate: x509.Certificate, outcome: CommandOutcome
    ) -> None:
        """Record what the charger made of CertificateSigned: installed (the older certificates are
        superseded), refused or never received (the new one is revoked, so renewal goes on for the old),
        or unknown (a timeout: both stay current until one expires or is replaced)."""
        if outcome is CommandOutcome.ACCEPTED:
            await self._inventory.installed(charger_id, use.value, certificate)
        elif outcome is not CommandOutcome.TIMEOUT:
            logger.warning(
                "charger %s: %s serial %x not installed (%s): revoked",
                charger_id,
                use.value,
                certificate.serial_number,
                outcome.value,
            )
            await self._inventory.refused(certificate, f"not installed by the charger ({outcome.value})")
