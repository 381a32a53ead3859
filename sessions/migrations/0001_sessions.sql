-- Drivers, their tokens and payment methods, charging sessions and their events, idempotency
-- keys, and versioned tariffs with their assignment to chargers and stations.

CREATE TABLE drivers (
    driver_id  text PRIMARY KEY,
    cpo_id     text,
    name       text,
    email      text,
    tier       text,           -- membership tier (tariffs.promotions)
    blocked    boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- RFID uids, eMAIDs, app-issued tokens: what a charger presents as idTag / idToken.
CREATE TABLE driver_tokens (
    id_token    text PRIMARY KEY,
    token_type  text NOT NULL DEFAULT 'ISO14443',
    driver_id   text NOT NULL REFERENCES drivers ON DELETE CASCADE,
    status      text NOT NULL DEFAULT 'Accepted'
        CHECK (status IN ('Accepted', 'Blocked', 'Expired', 'Invalid')),
    expires_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX driver_tokens_driver ON driver_tokens (driver_id);

-- Only the payment provider's token: never card data (PCI-DSS scope stays with the provider).
CREATE TABLE payment_methods (
    payment_method_id text PRIMARY KEY,
    driver_id         text NOT NULL REFERENCES drivers ON DELETE CASCADE,
    provider          text NOT NULL DEFAULT 'local',
    provider_token    text NOT NULL,
    label             text,
    is_default        boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE charging_sessions (
    session_id        uuid PRIMARY KEY,
    driver_id         text REFERENCES drivers,
    charger_id        text NOT NULL,
    evse_id           integer NOT NULL,
    connector_id      integer NOT NULL DEFAULT 1,
    state             text NOT NULL
        CHECK (state IN ('INITIATED', 'ACTIVE', 'STOPPING', 'COMPLETED', 'FAILED')),
    origin            text NOT NULL CHECK (origin IN ('app', 'rfid', 'plug_and_charge', 'free_vend')),
    failure_reason    text,
    id_token          text,
    payment_method_id text REFERENCES payment_methods,
    remote_start_id   integer,
    reservation_id    integer,
    transaction_ref   bigint UNIQUE,        -- transactions.id once the charger reports it
    transaction_id    text,                 -- the charger's transaction id
    tariff_id         text,                 -- pricing: the version in force at started_at
    time_zone         text NOT NULL DEFAULT 'UTC',
    meter_start_wh    double precision,
    meter_last_wh     double precision,     -- latest register reading (estimates only)
    meter_stop_wh     double precision,     -- final, authoritative (StopTransaction / Ended)
    power_w           double precision,
    offline           boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    ended_at          timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX charging_sessions_driver ON charging_sessions (driver_id, created_at DESC);
CREATE INDEX charging_sessions_open ON charging_sessions (charger_id, evse_id)
    WHERE state IN ('INITIATED', 'ACTIVE', 'STOPPING');
CREATE INDEX charging_sessions_completed ON charging_sessions (ended_at) WHERE state = 'COMPLETED';

-- Every transition and live update, in order: the outbox other parts read and the SSE replay log.
CREATE TABLE session_events (
    seq        bigserial PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES charging_sessions ON DELETE CASCADE,
    kind       text NOT NULL CHECK (kind IN ('state', 'progress')),
    state      text NOT NULL,
    at         timestamptz NOT NULL,
    data       jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX session_events_session ON session_events (session_id, seq);

CREATE TABLE idempotency_keys (
    driver_id    text NOT NULL,
    key          text NOT NULL,
    request_hash text NOT NULL,
    session_id   uuid NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (driver_id, key)
);

-- Versioned tariffs (OCPI 2.2.1 Tariff JSON); a session is priced with the version in force
-- when it started.
CREATE TABLE tariffs (
    tariff_id  text NOT NULL,
    version    integer NOT NULL,
    cpo_id     text,
    body       jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text,
    PRIMARY KEY (tariff_id, version)
);

-- Which tariff applies: a charger's own, else its station's.
CREATE TABLE tariff_assignments (
    scope      text NOT NULL CHECK (scope IN ('charger', 'station')),
    scope_id   text NOT NULL,
    tariff_id  text NOT NULL,
    PRIMARY KEY (scope, scope_id)
);
