-- Plug & Charge and charger certificates (csms.pki): what we issued, what is revoked, and the
-- security events the PKI raised. Certificates only: private keys are never stored here.

CREATE TABLE pki_issued_certificates (
    issuer               text NOT NULL,           -- issuer DN (RFC 4514)
    serial_number        text NOT NULL,           -- lower-case hex
    charger_id           text NOT NULL,
    certificate_type     text NOT NULL,           -- ChargingStationCertificate | V2GCertificate
    subject              text NOT NULL,
    not_before           timestamptz NOT NULL,
    not_after            timestamptz NOT NULL,
    issued_at            timestamptz NOT NULL DEFAULT now(),
    certificate_pem      text NOT NULL,
    renewal_requested_at timestamptz,
    superseded_at        timestamptz,             -- a newer certificate of the same type was issued
    revoked_at           timestamptz,
    revocation_reason    text,
    PRIMARY KEY (issuer, serial_number)
);
CREATE INDEX pki_issued_by_charger ON pki_issued_certificates (charger_id, certificate_type);
CREATE INDEX pki_issued_current_expiry ON pki_issued_certificates (not_after)
    WHERE revoked_at IS NULL AND superseded_at IS NULL;

CREATE TABLE pki_contract_revocations (
    emaid      text PRIMARY KEY,                  -- normalised: no separators, upper case
    revoked_at timestamptz NOT NULL DEFAULT now(),
    reason     text
);

CREATE TABLE pki_security_events (
    id         bigserial PRIMARY KEY,
    charger_id text NOT NULL,
    event_type text NOT NULL,
    detail     text NOT NULL,
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pki_security_events_charger ON pki_security_events (charger_id, at);
