-- Billing: ratings, immutable documents (receipts, credit notes) and their line items, the
-- payment holds placed at start, one payment row per session revision (the capture state
-- machine), the ledger, and the notifications outbox. Only provider tokens are stored here:
-- no card data (PCI-DSS scope stays with the payment provider).

-- One rating per session: the session id is the idempotency key of rating.
CREATE TABLE billing_ratings (
    session_id       uuid PRIMARY KEY REFERENCES charging_sessions,
    driver_id        text,
    charger_id       text NOT NULL,
    tariff_id        text,
    currency         text NOT NULL,
    energy_wh        numeric NOT NULL,
    duration_s       numeric NOT NULL,
    idle_s           numeric NOT NULL,
    total_excl_vat   numeric NOT NULL,
    total_incl_vat   numeric NOT NULL,
    cdr              jsonb NOT NULL,
    rated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX billing_ratings_rated_at ON billing_ratings (rated_at);

-- Receipts and credit notes. Revision 1 is the first receipt; a correction adds a credit note
-- cancelling the current receipt and a new receipt, both under the next revision.
CREATE TABLE billing_documents (
    document_id    text PRIMARY KEY,
    session_id     uuid NOT NULL REFERENCES billing_ratings,
    revision       integer NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('receipt', 'credit_note')),
    currency       text NOT NULL,
    total_excl_vat numeric NOT NULL,
    total_incl_vat numeric NOT NULL,
    reason         text,
    body           jsonb NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (session_id, revision, kind)
);

CREATE TABLE billing_line_items (
    document_id     text NOT NULL REFERENCES billing_documents,
    position        integer NOT NULL,
    kind            text NOT NULL,
    description     text NOT NULL,
    quantity        numeric NOT NULL,
    unit            text NOT NULL,
    unit_price      numeric,
    vat_percent     numeric,
    amount_excl_vat numeric NOT NULL,
    amount_incl_vat numeric NOT NULL,
    PRIMARY KEY (document_id, position)
);

-- Documents and their lines are immutable: a correction is a credit note plus a new receipt.
CREATE FUNCTION billing_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'billing documents are immutable: issue a credit note instead (% on %)', TG_OP, TG_TABLE_NAME;
END $$;
CREATE TRIGGER billing_documents_immutable BEFORE UPDATE OR DELETE ON billing_documents
    FOR EACH ROW EXECUTE FUNCTION billing_refuse_change();
CREATE TRIGGER billing_line_items_immutable BEFORE UPDATE OR DELETE ON billing_line_items
    FOR EACH ROW EXECUTE FUNCTION billing_refuse_change();

-- The hold placed before a remote start (the provider's PaymentIntent, manual capture).
CREATE TABLE billing_holds (
    session_id        uuid PRIMARY KEY,
    driver_id         text NOT NULL,
    payment_method_id text NOT NULL,
    intent_id         text,
    amount            numeric NOT NULL,
    currency          text NOT NULL,
    status            text NOT NULL CHECK (status IN ('authorized', 'declined', 'captured', 'released', 'failed')),
    detail            text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- What is to be paid per session revision and where that stands:
-- rated -> capture_pending -> captured | retrying -> capture_pending ... -> debt.
-- amount is signed: a correction that lowers the price is a negative revision (a refund).
CREATE TABLE billing_payments (
    session_id        uuid NOT NULL REFERENCES billing_ratings,
    revision          integer NOT NULL,
    driver_id         text,
    payment_method_id text,
    currency          text NOT NULL,
    amount            numeric NOT NULL,
    state             text NOT NULL
        CHECK (state IN ('rated', 'capture_pending', 'captured', 'retrying', 'debt')),
    declines          integer NOT NULL DEFAULT 0,   -- definitive failures: a new provider key each
    unknown_outcomes  integer NOT NULL DEFAULT 0,   -- timeouts / 5xx: retried under the same key
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    claim_token       uuid,
    intent_id         text,
    captured_amount   numeric,
    last_error        text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, revision)
);
CREATE INDEX billing_payments_due ON billing_payments (next_attempt_at)
    WHERE state IN ('rated', 'capture_pending', 'retrying');
CREATE INDEX billing_payments_debt ON billing_payments (driver_id) WHERE state = 'debt';

-- Double-entry style ledger of what each driver owes (amount > 0: owed more). Each entry has a
-- unique key so a replayed step books nothing twice. account 'debt' holds the compensating
-- entries of payments given up after their retries.
CREATE TABLE billing_ledger (
    entry_id    bigserial PRIMARY KEY,
    entry_key   text NOT NULL UNIQUE,
    driver_id   text,
    session_id  uuid NOT NULL REFERENCES billing_ratings,
    revision    integer NOT NULL,
    account     text NOT NULL CHECK (account IN ('receivable', 'debt')),
    kind        text NOT NULL
        CHECK (kind IN ('charge', 'credit', 'payment', 'refund', 'to_debt', 'debt')),
    currency    text NOT NULL,
    amount      numeric NOT NULL,
    booked_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX billing_ledger_session ON billing_ledger (session_id);
CREATE INDEX billing_ledger_driver ON billing_ledger (driver_id);

-- Notifications to drivers (declined payment, retry, debt), sent by whatever delivers them.
CREATE TABLE billing_notifications (
    notification_id bigserial PRIMARY KEY,
    notification_key text NOT NULL UNIQUE,
    driver_id       text,
    session_id      uuid NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('payment_declined', 'payment_debt', 'refund')),
    body            jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
CREATE INDEX billing_notifications_unsent ON billing_notifications (created_at) WHERE sent_at IS NULL;

-- Sessions that could not be rated yet (no tariff assigned, bad meter values): retried later so
-- a configuration fixed by the operator still gets the session billed; visible to operators.
CREATE TABLE billing_rating_failures (
    session_id      uuid PRIMARY KEY REFERENCES charging_sessions,
    error           text NOT NULL,
    attempts        integer NOT NULL DEFAULT 1,
    next_attempt_at timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
