-- What 2.0.1 stations tell of themselves: the device model they report (NotifyReport, B07/B08),
-- the reports we asked for (GetBaseReport/GetReport) and the events they notify (NotifyEvent, N07).

CREATE TABLE device_model_reports (
    charger_id   text NOT NULL,
    request_id   integer NOT NULL,
    requested    text,                          -- the ReportBase we asked for, 'Custom' for GetReport;
                                                -- NULL: a report we have no request of on record
    requested_at timestamptz,
    answer       text,                          -- the answer to our request (Accepted, EmptyResultSet, ...)
    seq_nos      integer[] NOT NULL DEFAULT '{}',  -- the parts received
    last_seq_no  integer,                       -- the part sent with tbc false: parts 0..last_seq_no make it
    variables    integer NOT NULL DEFAULT 0,    -- variable attributes received
    generated_at timestamptz,                   -- the latest part's generatedAt
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (charger_id, request_id)
);

-- One row per variable attribute (Actual, Target, MinSet, MaxSet); a later report replaces it.
CREATE TABLE device_model_variables (
    charger_id          text NOT NULL,
    component           text NOT NULL,
    component_instance  text NOT NULL DEFAULT '',
    evse_id             integer,
    connector_id        integer,
    variable            text NOT NULL,
    variable_instance   text NOT NULL DEFAULT '',
    attribute_type      text NOT NULL DEFAULT 'Actual',
    value               text,
    mutability          text NOT NULL,
    persistent          boolean NOT NULL,
    constant            boolean NOT NULL,
    data_type           text,
    unit                text,
    min_limit           double precision,
    max_limit           double precision,
    values_list         text,
    supports_monitoring boolean,
    request_id          integer NOT NULL,
    reported_at         timestamptz NOT NULL,      -- the generatedAt of the report that said it
    updated_at          timestamptz NOT NULL DEFAULT now()
);
-- A component with no EVSE or connector is one component: NULLs compare equal here (an index on
-- expressions rather than UNIQUE NULLS NOT DISTINCT, which needs PostgreSQL 15).
CREATE UNIQUE INDEX device_model_variables_key ON device_model_variables
    (charger_id, component, component_instance, COALESCE(evse_id, -1), COALESCE(connector_id, -1),
     variable, variable_instance, attribute_type);

CREATE TABLE device_events (
    id                     bigserial PRIMARY KEY,
    charger_id             text NOT NULL,
    event_id               integer NOT NULL,
    occurred_at            timestamptz NOT NULL,
    event_trigger          text NOT NULL,       -- Alerting, Delta, Periodic
    actual_value           text NOT NULL,
    notification_type      text NOT NULL,       -- HardWiredNotification, HardWiredMonitor, ...
    component              text NOT NULL,
    component_instance     text NOT NULL DEFAULT '',
    evse_id                integer,
    connector_id           integer,
    variable               text NOT NULL,
    variable_instance      text NOT NULL DEFAULT '',
    cause                  integer,
    tech_code              text,
    tech_info              text,
    cleared                boolean,
    transaction_id         text,
    variable_monitoring_id integer,
    generated_at           timestamptz NOT NULL,
    seq_no                 integer NOT NULL,
    message_id             text NOT NULL,
    received_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (charger_id, event_id, occurred_at)   -- a NotifyEvent sent again stores nothing twice
);
CREATE INDEX device_events_charger_time ON device_events (charger_id, occurred_at);
