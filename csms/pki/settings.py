"""The PKI's settings: one frozen object the CLI builds from YAML and passes to :func:`csms.pki.install`."""

from __future__ import annotations

from dataclasses import dataclass, field

from csms.pki.errors import PkiError
from csms.pki.revocation import RevocationSettings
from csms.pki.verify import UnavailablePolicy


@dataclass(frozen=True, slots=True)
class CaFiles:
    """Where a CA's PEM certificate chain (the CA first) and PEM private key are."""

    certificate_file: str
    key_file: str


@dataclass(frozen=True, slots=True)
class PkiSettings:
    """Plug & Charge and charger certificates.

    ``contract_root_files``: PEM files of the mobility-operator (and V2G) roots contract
    certificates must chain to. ``station_ca`` signs ChargingStationCertificates (security profile
    3; the CSMS's ``tls_client_ca_file`` must trust its root), ``v2g_ca`` the SECC's V2GCertificates.
    ``organization_name``: when set, a CSR's subject O must equal it (OCPP A02/A03: the CPO's name).
    """

    contract_root_files: tuple[str, ...] = ()
    contract_sub_ca_files: tuple[str, ...] = ()
    """PEM files of MO sub-CAs known ahead, for an Authorize carrying only OCSP hash data."""
    revocation: RevocationSettings = field(default_factory=RevocationSettings)
    revocation_unavailable: UnavailablePolicy = UnavailablePolicy.REJECT
    require_contract_certificate: bool = True
    """An Authorize with an eMAID but neither certificate nor hash data is refused
    (NoCertificateAvailable): an eMAID alone is as easy to spoof as any identifier."""
    station_ca: CaFiles | None = None
    v2g_ca: CaFiles | None = None
    organization_name: str | None = None
    station_certificate_days: int = 365
    v2g_certificate_days: int = 365
    renewal_lead_days: float = 30.0
    """Ask a charger for a new CSR this long before its certificate expires."""
    renewal_check_interval_s: float = 3600.0
    renewal_retry_s: float = 86_400.0
    """How long after an unanswered renewal request it is asked again."""
    local_mo_ca: CaFiles | None = None
    """A local MO sub-CA for the demo contract-certificate provider (Get15118EVCertificate)."""

    def __post_init__(self) -> None:
        if self.station_certificate_days <= 0 or self.v2g_certificate_days <= 0:
            raise PkiError("certificate lifetimes must be positive")
        if self.renewal_lead_days < 0 or self.renewal_check_interval_s <= 0 or self.renewal_retry_s <= 0:
            raise PkiError("renewal_lead_days must not be negative, the intervals must be positive")
        if self.revocation.cache_ttl_s < 0:
            raise PkiError("the OCSP cache lifetime must not be negative")
