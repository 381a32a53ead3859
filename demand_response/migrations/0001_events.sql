-- Demand-response events (one row per program and event id: its latest version), so a restart
-- keeps enforcing what was active or pending, even when the VTN cannot be reached.

CREATE TABLE dr_events (
    program             text NOT NULL,
    event_id            text NOT NULL,
    modification_number integer NOT NULL,
    status              text NOT NULL,
    starts_at           timestamptz NOT NULL,
    ends_at             timestamptz NOT NULL,   -- recovery included: when it stops mattering
    stations            text[] NOT NULL DEFAULT '{}',
    cpo_id              text,
    body                jsonb NOT NULL,
    received_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (program, event_id)
);
CREATE INDEX dr_events_ends_at ON dr_events (ends_at);
