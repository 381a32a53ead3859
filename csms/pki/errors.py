"""The PKI's exceptions (all under :class:`csms.errors.CsmsError`)."""

from __future__ import annotations

from csms.errors import CsmsError


class PkiError(CsmsError):
    """Base of every error raised by ``csms.pki``."""


class RevocationUnavailableError(PkiError):
    """Neither the OCSP responder nor the CRL distribution point gave a usable answer."""


class CsrRefusedError(PkiError):
    """A certificate signing request we will not sign; ``security_event`` when it is an attack sign."""

    def __init__(self, reason: str, *, security_event: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.security_event = security_event


class KeyStoreError(PkiError):
    """A certificate authority's certificate or key cannot be loaded (never carries key material)."""


class ContractProviderError(PkiError):
    """The contract-certificate provider could not answer."""
