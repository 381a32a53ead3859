-- A charger revoked as a whole (csms.pki): its client certificates issued before revoked_at are
-- refused at the security-profile-3 handshake, including ones we did not issue ourselves.

CREATE TABLE pki_charger_revocations (
    charger_id text PRIMARY KEY,
    revoked_at timestamptz NOT NULL DEFAULT now(),
    reason     text
);
