-- The operator side: the network as last applied, its audit log, revoked operator API keys.

-- One row per resource an operator's network file declares (station, charger, tariff, local
-- list, demand-response programmes), as its canonical JSON: what `fairwatt diff` compares
-- against. The primary key is global: an id belongs to one operator.
CREATE TABLE network_resources (
    kind        text NOT NULL
        CHECK (kind IN ('station', 'charger', 'tariff', 'local_list', 'demand_response')),
    resource_id text NOT NULL,
    cpo_id      text NOT NULL,
    body        jsonb NOT NULL,
    version     integer NOT NULL DEFAULT 1,   -- +1 on every change (a local list's listVersion)
    applied_at  timestamptz NOT NULL DEFAULT now(),
    applied_by  text NOT NULL,
    PRIMARY KEY (kind, resource_id)
);
CREATE INDEX network_resources_cpo ON network_resources (cpo_id, kind);

-- Who changed what and when: every applied change and every command sent through the operator API.
CREATE TABLE operator_audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    cpo_id      text NOT NULL,
    actor       text NOT NULL,
    action      text NOT NULL,
    kind        text,
    resource_id text,
    before      jsonb,
    after       jsonb,
    detail      jsonb
);
CREATE INDEX operator_audit_log_cpo ON operator_audit_log (cpo_id, at DESC);

-- Operator API keys are long-lived signed tokens; a revoked key's id is refused from then on.
CREATE TABLE operator_key_revocations (
    key_id     text PRIMARY KEY,
    cpo_id     text,
    revoked_at timestamptz NOT NULL DEFAULT now()
);
