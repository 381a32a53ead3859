"""Contract-certificate verification: chain, dates, CA constraints, revocation and the eMAID.

:class:`ContractVerifier` is pure apart from the :class:`RevocationChecker` it is given, so it is
tested with a checker that answers from a dict; :mod:`csms.pki.revocation` is the network one.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from csms.pki.certs import common_name, issuer_key_hash, load_chain, normalize_emaid, serial_hex
from csms.pki.errors import PkiError

logger = logging.getLogger(__name__)

MAX_CHAIN_LENGTH = 4
"""Leaf, at most two sub-CAs and the root (ISO 15118-2 allows two sub-CA levels)."""


class CertificateStatus(Enum):
    """OCPP 2.0.1 ``AuthorizeCertificateStatusEnumType``."""

    ACCEPTED = "Accepted"
    SIGNATURE_ERROR = "SignatureError"
    CERTIFICATE_EXPIRED = "CertificateExpired"
    CERTIFICATE_REVOKED = "CertificateRevoked"
    NO_CERTIFICATE_AVAILABLE = "NoCertificateAvailable"
    CERT_CHAIN_ERROR = "CertChainError"
    CONTRACT_CANCELLED = "ContractCancelled"


class RevocationStatus(Enum):
    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"
    """The responder does not know the certificate."""
    UNAVAILABLE = "unavailable"
    """Neither OCSP nor the CRL answered."""


class RevocationChecker(Protocol):
    """Whether a certificate issued by ``issuer`` is revoked (OCSP, CRL, a test dict...)."""

    async def status(self, certificate: x509.Certificate, issuer: x509.Certificate) -> RevocationStatus: ...


class UnavailablePolicy(Enum):
    """What a verdict is when no revocation source answers."""

    REJECT = "reject"
    """Hard fail: the certificate is refused (CertChainError)."""
    ACCEPT = "accept"
    """Soft fail: the certificate is accepted and a warning logged."""


@dataclass(frozen=True, slots=True)
class ContractVerdict:
    status: CertificateStatus
    detail: str
    emaid: str | None = None
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def accepted(self) -> bool:
        return self.status is CertificateStatus.ACCEPTED


Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ContractVerifier:
    """Verifies a contract-certificate chain up to one of ``trust_anchors`` (mobility-operator roots)."""

    def __init__(
        self,
        trust_anchors: Iterable[x509.Certificate],
        revocation: RevocationChecker,
        *,
        unavailable_policy: UnavailablePolicy = UnavailablePolicy.REJECT,
        clock: Clock = _utc_now,
        clock_skew: timedelta = timedelta(minutes=5),
    ) -> None:
        self._anchors = list(trust_anchors)
        self._revocation = revocation
        self._policy = unavailable_policy
        self._clock = clock
        self._skew = clock_skew
        self._known_issuers: dict[tuple[str, str], x509.Certificate] = {}
        for anchor in self._anchors:
            self._remember(anchor)

    def _remember(self, issuer: x509.Certificate) -> None:
        for algorithm in ("SHA256", "SHA384", "SHA512"):
            self._known_issuers[(algorithm, issuer_key_hash(issuer, algorithm))] = issuer

    def add_intermediate(self, certificate: x509.Certificate) -> bool:
        """Know a sub-CA ahead (for Authorize with hash data only) if a trust anchor signed it."""
        for anchor in self._anchors:
            signed = anchor.subject == certificate.issuer and _signed_by(certificate, anchor)
            if signed and _ca_problem(certificate, intermediates_below=0) is None:
                self._remember(certificate)
                return True
        return False

    def known_issuer(self, algorithm: str, key_hash: str) -> x509.Certificate | None:
        """A trust anchor or an already verified sub-CA whose key hashes to ``key_hash``."""
        return self._known_issuers.get((algorithm, key_hash.lower()))

    async def verify_pem(self, chain_pem: str, emaid: str | None) -> ContractVerdict:
        """Verify a PEM chain (leaf first) and, when given, that its subject names ``emaid``."""
        try:
            chain = load_chain(chain_pem)
        except PkiError as exc:
            return ContractVerdict(CertificateStatus.CERT_CHAIN_ERROR, str(exc))
        return await self.verify(chain, emaid)

    async def verify(self, chain: Sequence[x509.Certificate], emaid: str | None) -> ContractVerdict:
        """Verify ``chain`` (leaf first; the root may be included or not)."""
        leaf = chain[0]
        leaf_emaid = common_name(leaf.subject)
        path_or_verdict = self._build_path(leaf, list(chain[1:]))
        if isinstance(path_or_verdict, ContractVerdict):
            return path_or_verdict
        path = path_or_verdict
        structural = self._check_path(path)
        if structural is not None:
            return structural
        if emaid is not None and (
            leaf_emaid is None or normalize_emaid(leaf_emaid) != normalize_emaid(emaid)
        ):
            return ContractVerdict(
                CertificateStatus.CERT_CHAIN_ERROR,
                f"certificate subject CN {leaf_emaid!r} does not name the eMAID {emaid!r}",
                leaf_emaid,
            )
        for certificate, issuer in itertools.pairwise(path):
            status = await self._revocation.status(certificate, issuer)
            verdict = self._revocation_verdict(status, certificate, leaf_emaid)
            if verdict is not None:
                return verdict
        for issuer in path[1:-1]:
            self._remember(issuer)
        return ContractVerdict(CertificateStatus.ACCEPTED, "chain verified", leaf_emaid, tuple(path))

    def _revocation_verdict(
        self, status: RevocationStatus, certificate: x509.Certificate, emaid: str | None
    ) -> ContractVerdict | None:
        serial = serial_hex(certificate.serial_number)
        if status is RevocationStatus.GOOD:
            return None
        if status is RevocationStatus.REVOKED:
            return ContractVerdict(
                CertificateStatus.CERTIFICATE_REVOKED, f"certificate {serial} is revoked", emaid
            )
        if status is RevocationStatus.UNKNOWN:
            return ContractVerdict(
                CertificateStatus.CERT_CHAIN_ERROR, f"the responder does not know certificate {serial}", emaid
            )
        if self._policy is UnavailablePolicy.ACCEPT:
            logger.warning("revocation of certificate %s cannot be checked: accepted by policy", serial)
            return None
        return ContractVerdict(
            CertificateStatus.CERT_CHAIN_ERROR, f"revocation of certificate {serial} cannot be checked", emaid
        )

    def _build_path(
        self, leaf: x509.Certificate, intermediates: list[x509.Certificate]
    ) -> list[x509.Certificate] | ContractVerdict:
        path = [leaf]
        emaid = common_name(leaf.subject)
        while len(path) <= MAX_CHAIN_LENGTH:
            current = path[-1]
            anchor_found = False
            for anchor in self._anchors:
                if anchor.subject != current.issuer:
                    continue
                anchor_found = True
                if _signed_by(current, anchor):
                    if current != anchor:
                        path.append(anchor)
                    return path
            if current.issuer == current.subject:
                return ContractVerdict(
                    CertificateStatus.CERT_CHAIN_ERROR, "the chain ends at an untrusted root", emaid
                )
            candidates = [c for c in intermediates if c.subject == current.issuer and c not in path]
            for candidate in candidates:
                if _signed_by(current, candidate):
                    path.append(candidate)
                    break
            else:
                if anchor_found or candidates:
                    return ContractVerdict(
                        CertificateStatus.SIGNATURE_ERROR,
                        f"the signature of {current.subject.rfc4514_string()} does not verify",
                        emaid,
                    )
                return ContractVerdict(
                    CertificateStatus.CERT_CHAIN_ERROR,
                    f"no trusted issuer for {current.issuer.rfc4514_string()}",
                    emaid,
                )
        return ContractVerdict(CertificateStatus.CERT_CHAIN_ERROR, "the chain is too long", emaid)

    def _check_path(self, path: list[x509.Certificate]) -> ContractVerdict | None:
        now = self._clock()
        emaid = common_name(path[0].subject)
        for certificate in path:
            if not (
                certificate.not_valid_before_utc - self._skew
                <= now
                <= certificate.not_valid_after_utc + self._skew
            ):
                return ContractVerdict(
                    CertificateStatus.CERTIFICATE_EXPIRED,
                    f"{certificate.subject.rfc4514_string()} is valid from {certificate.not_valid_before_utc}"
                    f" to {certificate.not_valid_after_utc}",
                    emaid,
                )
        leaf_constraints = _basic_constraints(path[0])
        if leaf_constraints is not None and leaf_constraints.ca:
            return ContractVerdict(
                CertificateStatus.CERT_CHAIN_ERROR, "the contract certificate is a CA", emaid
            )
        for depth, issuer in enumerate(path[1:]):
            problem = _ca_problem(issuer, intermediates_below=depth)
            if problem is not None:
                return ContractVerdict(CertificateStatus.CERT_CHAIN_ERROR, problem, emaid)
        return None


def _signed_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _basic_constraints(certificate: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None


def _ca_problem(issuer: x509.Certificate, *, intermediates_below: int) -> str | None:
    """Why ``issuer`` may not sign certificates with ``intermediates_below`` sub-CAs under it, or None."""
    name = issuer.subject.rfc4514_string()
    constraints = _basic_constraints(issuer)
    if constraints is None or not constraints.ca:
        return f"{name} is not a CA (basicConstraints)"
    if constraints.path_length is not None and intermediates_below > constraints.path_length:
        return (
            f"{name} allows {constraints.path_length} sub-CAs below it, the chain has {intermediates_below}"
        )
    try:
        usage = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None
    if not usage.key_cert_sign:
        return f"{name} may not sign certificates (keyUsage)"
    return None
