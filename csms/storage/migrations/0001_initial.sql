-- Charger registry, transactions, meter samples and the OCPP message log.

CREATE TABLE chargers (
    charger_id          text PRIMARY KEY,
    station_id          text,
    cpo_id              text,
    vendor              text,
    model               text,
    serial_number       text,
    firmware_version    text,
    latitude_deg        double precision,
    longitude_deg       double precision,
    password_hash       text,
    registration_status text NOT NULL DEFAULT 'Accepted'
        CHECK (registration_status IN ('Accepted', 'Pending', 'Rejected')),
    auto_registered     boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL DEFAULT now(),
    last_boot_at        timestamptz
);

CREATE TABLE connectors (
    charger_id     text NOT NULL REFERENCES chargers ON DELETE CASCADE,
    evse_id        integer NOT NULL,
    connector_id   integer NOT NULL,
    connector_type text,
    max_power_kw   double precision,
    PRIMARY KEY (charger_id, evse_id, connector_id)
);

CREATE TABLE transactions (
    id               bigserial PRIMARY KEY,
    charger_id       text NOT NULL REFERENCES chargers,
    ocpp_version     text NOT NULL,
    transaction_id   text NOT NULL,
    evse_id          integer,
    connector_id     integer,
    id_token         text,
    id_token_type    text,
    meter_start_wh   double precision,
    meter_stop_wh    double precision,
    started_at       timestamptz,
    ended_at         timestamptz,
    stop_reason      text,
    start_message_id text,
    remote_start_id  integer,
    reservation_id   integer,
    charging_state   text,
    offline          boolean NOT NULL DEFAULT false,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (charger_id, transaction_id)
);
-- A 1.6 StartTransaction replayed (same charger, connector and start time) is the same transaction.
CREATE UNIQUE INDEX transactions_v16_natural_key
    ON transactions (charger_id, evse_id, started_at) WHERE ocpp_version = '1.6';
CREATE INDEX transactions_open ON transactions (charger_id, evse_id) WHERE ended_at IS NULL;

CREATE TABLE transaction_events (
    charger_id     text NOT NULL,
    transaction_id text NOT NULL,
    seq_no         integer NOT NULL,
    event_type     text NOT NULL,
    trigger_reason text NOT NULL,
    offline        boolean NOT NULL,
    occurred_at    timestamptz NOT NULL,
    message_id     text NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (charger_id, transaction_id, seq_no)
);

CREATE TABLE meter_samples (
    id             bigserial PRIMARY KEY,
    charger_id     text NOT NULL,
    evse_id        integer NOT NULL,
    transaction_id text,
    sampled_at     timestamptz NOT NULL,
    measurand      text NOT NULL,
    phase          text NOT NULL DEFAULT '',
    location       text NOT NULL DEFAULT '',
    context        text,
    value          double precision NOT NULL,
    unit           text NOT NULL,
    UNIQUE (charger_id, evse_id, sampled_at, measurand, phase, location)
);
CREATE INDEX meter_samples_transaction ON meter_samples (charger_id, transaction_id);

CREATE TABLE ocpp_messages (
    id              bigserial PRIMARY KEY,
    charger_id      text NOT NULL,
    direction       text NOT NULL CHECK (direction IN ('in', 'out')),
    message_type_id smallint NOT NULL,
    action          text,
    unique_id       text NOT NULL,
    payload         jsonb NOT NULL,
    logged_at       timestamptz NOT NULL
);
CREATE INDEX ocpp_messages_charger_time ON ocpp_messages (charger_id, logged_at);
