-- Reservations of one EVSE (the 1.6 connectorId) by one driver: the OCPP reservation id is the
-- primary key. A reservation holds its EVSE over [starts_at, expires_at) while it is scheduled,
-- pending (ReserveNow under way) or active (accepted by the charger); expires_at is
-- min(starts_at + duration, starts_at + hold). Two of those never overlap: an exclusion
-- constraint when btree_gist can be installed, and in every case a check under a per-EVSE
-- advisory lock in the code (sessions/reservations.py).

CREATE SEQUENCE reservation_ids AS integer;

CREATE TABLE reservations (
    reservation_id integer PRIMARY KEY DEFAULT nextval('reservation_ids'),
    driver_id      text NOT NULL,
    charger_id     text NOT NULL,
    evse_id        integer NOT NULL CHECK (evse_id > 0),
    id_token       text NOT NULL,          -- what the charger is told to wait for
    id_token_type  text NOT NULL DEFAULT 'Central',
    status         text NOT NULL CHECK (status IN
        ('scheduled', 'pending', 'active', 'used', 'cancelled', 'expired', 'rejected', 'failed')),
    starts_at      timestamptz NOT NULL,
    ends_at        timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    failure_reason text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (starts_at < expires_at AND expires_at <= ends_at)
);
CREATE INDEX reservations_holding ON reservations (charger_id, evse_id, starts_at)
    WHERE status IN ('scheduled', 'pending', 'active');
CREATE INDEX reservations_due ON reservations (starts_at, expires_at)
    WHERE status IN ('scheduled', 'pending', 'active');
CREATE INDEX reservations_driver ON reservations (driver_id, created_at DESC);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'btree_gist') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS btree_gist;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'btree_gist not installed (%): overlaps are refused by the advisory-lock check', SQLERRM;
        END;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'btree_gist') THEN
        ALTER TABLE reservations ADD CONSTRAINT reservations_no_overlap EXCLUDE USING gist (
            charger_id WITH =, evse_id WITH =, tstzrange(starts_at, expires_at) WITH &&
        ) WHERE (status IN ('scheduled', 'pending', 'active'));
    END IF;
END;
$$;
