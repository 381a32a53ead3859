"""The PKI's records in PostgreSQL: issued certificates (expiry, renewal, revocation), revoked
contracts and chargers, and security events. Certificates and names only; never a private key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from csms.pki.certs import normalize_emaid, serial_hex, to_pem
from csms.storage.database import Database


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    issuer: str
    serial_number: str
    charger_id: str
    certificate_type: str
    not_after: datetime
    revoked_at: datetime | None
    superseded_at: datetime | None = None
    installed_at: datetime | None = None
    """When the charger accepted it (CertificateSigned answered Accepted)."""


@dataclass(frozen=True, slots=True)
class RenewalDue:
    issuer: str
    serial_number: str
    charger_id: str
    certificate_type: str
    not_after: datetime


class CertificateInventory:
    """Repository of ``pki_*`` tables (migration ``0003_pki``)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def record_issued(
        self, charger_id: str, certificate_type: str, certificate: x509.Certificate
    ) -> None:
        """Store a newly issued certificate (it replaces the older ones once the charger installs it:
        :meth:`installed`)."""
        async with self._database.pool.acquire() as connection:
            await connection.execute(
                "INSERT INTO pki_issued_certificates (issuer, serial_number, charger_id, certificate_type,"
                " subject, not_before, not_after, certificate_pem) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                certificate.issuer.rfc4514_string(),
                serial_hex(certificate.serial_number),
                charger_id,
                certificate_type,
                certificate.subject.rfc4514_string(),
                certificate.not_valid_before_utc,
                certificate.not_valid_after_utc,
                to_pem(certificate),
            )

    async def installed(self, charger_id: str, certificate_type: str, certificate: x509.Certificate) -> None:
        """The charger accepted ``certificate``: the certificates of the type issued before it are
        superseded. Not the newer ones: CertificateSigned outcomes are recorded by server tasks, so a
        late record for an older certificate must not supersede one issued (and not yet answered)
        after it."""
        async with self._database.pool.acquire() as connection, connection.transaction():
            await connection.execute(
                "UPDATE pki_issued_certificates AS older SET superseded_at = now()"
                " FROM pki_issued_certificates AS new"
                " WHERE new.issuer = $3 AND new.serial_number = $4"
                " AND older.charger_id = $1 AND older.certificate_type = $2"
                " AND older.superseded_at IS NULL AND older.issued_at < new.issued_at",
                charger_id,
                certificate_type,
                certificate.issuer.rfc4514_string(),
                serial_hex(certificate.serial_number),
            )
            await connection.execute(
                "UPDATE pki_issued_certificates SET installed_at = now()"
                " WHERE issuer = $1 AND serial_number = $2 AND installed_at IS NULL",
                certificate.issuer.rfc4514_string(),
                serial_hex(certificate.serial_number),
            )

    async def refused(self, certificate: x509.Certificate, reason: str) -> None:
        """The charger refused (or never got) ``certificate``: revoke it, the previous one stays current."""
        async with self._database.pool.acquire() as connection:
            await connection.execute(
                "UPDATE pki_issued_certificates SET revoked_at = now(), revocation_reason = $3"
                " WHERE issuer = $1 AND serial_number = $2 AND revoked_at IS NULL",
                certificate.issuer.rfc4514_string(),
                serial_hex(certificate.serial_number),
                reason,
            )

    async def issued_to(self, charger_id: str) -> list[IssuedCertificate]:
        """Every certificate issued to ``charger_id``, newest first."""
        async with self._database.pool.acquire() as connection:
            rows = await connection.fetch(
                "SELECT issuer, serial_number, charger_id, certificate_type, not_after, revoked_at,"
                " superseded_at, installed_at FROM pki_issued_certificates"
                " WHERE charger_id = $1 ORDER BY issued_at DESC",
                charger_id,
            )
        return [IssuedCertificate(**dict(row)) for row in rows]

    async def client_certificate_revoked(self, charger_id: str, certificate: x509.Certificate) -> bool:
        """Whether ``charger_id`` may not connect with ``certificate``: we issued it and revoked it,
        or we did not issue it and the charger was revoked after the certificate's notBefore."""
        async with self._database.pool.acquire() as connection:
            revoked = await connection.fetchval(
                "SELECT CASE WHEN issued.serial_number IS NOT NULL THEN issued.revoked_at IS NOT NULL"
                " ELSE EXISTS (SELECT 1 FROM pki_charger_revocations"
                " WHERE charger_id = $3 AND revoked_at > $4) END"
                " FROM (SELECT 1) AS one LEFT JOIN pki_issued_certificates AS issued"
                " ON issued.issuer = $1 AND issued.serial_number = $2",
                certificate.issuer.rfc4514_string(),
                serial_hex(certificate.serial_number),
                charger_id,
                certificate.not_valid_before_utc,
            )
        return bool(revoked)

    async def observe_client_certificate(self, charger_id: str, certificate: x509.Certificate) -> bool:
        """Track a client certificate we did not issue (a factory one) so it is renewed before it
        expires; only while the charger has no current certificate of ours. Whether it was added."""
        async with self._database.pool.acquire() as connection:
            result: str = await connection.execute(
                "INSERT INTO pki_issued_certificates (issuer, serial_number, charger_id, certificate_type,"
                " subject, not_before, not_after, certificate_pem)"
                " SELECT $1, $2, $3, 'ChargingStationCertificate', $4, $5, $6, $7"
                " WHERE NOT EXISTS (SELECT 1 FROM pki_issued_certificates WHERE charger_id = $3"
                " AND certificate_type = 'ChargingStationCertificate' AND superseded_at IS NULL"
                " AND revoked_at IS NULL)"
                " ON CONFLICT (issuer, serial_number) DO NOTHING",
                certificate.issuer.rfc4514_string(),
                serial_hex(certificate.serial_number),
                charger_id,
                certificate.subject.rfc4514_string(),
                certificate.not_valid_before_utc,
                certificate.not_valid_after_utc,
                to_pem(certificate),
            )
        return result.endswith(" 1")

    async def revoke_charger(self, charger_id: str, reason: str | None) -> int:
        """Revoke every certificate ``charger_id`` holds so far; how many of ours were revoked."""
        async with self._database.pool.acquire() as connection, connection.transaction():
            result: str = await connection.execute(
                "UPDATE pki_issued_certificates SET revoked_at = now(), revocation_reason = $2"
                " WHERE charger_id = $1 AND revoked_at IS NULL",
                charger_id,
                reason,
            )
            await connection.execute(
                "INSERT INTO pki_charger_revocations (charger_id, reason) VALUES ($1, $2)"
                " ON CONFLICT (charger_id) DO UPDATE SET revoked_at = now(), reason = excluded.reason",
                charger_id,
                reason,
            )
        return int(result.split()[-1])

    async def revoke_contract(self, emaid: str, reason: str | None) -> bool:
        """Cancel the contract ``emaid``; False when it was already cancelled."""
        async with self._database.pool.acquire() as connection:
            result: str = await connection.execute(
                "INSERT INTO pki_contract_revocations (emaid, reason) VALUES ($1, $2)"
                " ON CONFLICT (emaid) DO NOTHING",
                normalize_emaid(emaid),
                reason,
            )
        return result.endswith(" 1")

    async def contract_revoked(self, emaid: str) -> bool:
        async with self._database.pool.acquire() as connection:
            found = await connection.fetchval(
                "SELECT 1 FROM pki_contract_revocations WHERE emaid = $1", normalize_emaid(emaid)
            )
        return found is not None

    async def claim_renewals(self, *, due_before: datetime, retry_before: datetime) -> list[RenewalDue]:
        """Current certificates expiring before ``due_before`` whose renewal was not asked for since
        ``retry_before``; marks them asked (one node claims each)."""
        async with self._database.pool.acquire() as connection:
            rows = await connection.fetch(
                "UPDATE pki_issued_certificates SET renewal_requested_at = now()"
                " WHERE revoked_at IS NULL AND superseded_at IS NULL AND not_after < $1"
                " AND (renewal_requested_at IS NULL OR renewal_requested_at < $2)"
                " RETURNING issuer, serial_number, charger_id, certificate_type, not_after",
                due_before,
                retry_before,
            )
        return [RenewalDue(**dict(row)) for row in rows]

    async def release_renewal(self, due: RenewalDue) -> None:
        """Forget a renewal claim the charger did not take (not connected), so it is asked again."""
        async with self._database.pool.acquire() as connection:
            await connection.execute(
                "UPDATE pki_issued_certificates SET renewal_requested_at = NULL"
                " WHERE issuer = $1 AND serial_number = $2",
                due.issuer,
                due.serial_number,
            )

    async def security_event(self, charger_id: str, event_type: str, detail: str) -> None:
        async with self._database.pool.acquire() as connection:
            await connection.execute(
                "INSERT INTO pki_security_events (charger_id, event_type, detail) VALUES ($1, $2, $3)",
                charger_id,
                event_type,
                detail,
            )

    async def security_events(self, charger_id: str) -> list[tuple[str, str]]:
        """``(event_type, detail)`` of a charger's security events, oldest first."""
        async with self._database.pool.acquire() as connection:
            rows = await connection.fetch(
                "SELECT event_type, detail FROM pki_security_events WHERE charger_id = $1 ORDER BY id",
                charger_id,
            )
        return [(row["event_type"], row["detail"]) for row in rows]
