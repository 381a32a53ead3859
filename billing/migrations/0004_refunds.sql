-- The refunds a negative revision (a correction that lowered the price) made, one row per
-- PaymentIntent refunded. What is left to refund of an intent is what it collected minus these:
-- a session corrected up (a second intent) and then down may need refunds from both intents,
-- and a provider refuses a refund larger than what is left of one.
CREATE TABLE billing_refunds (
    session_id uuid NOT NULL,
    revision   integer NOT NULL,
    intent_id  text NOT NULL,
    refund_id  text NOT NULL,
    amount     numeric NOT NULL CHECK (amount > 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, revision, intent_id),
    FOREIGN KEY (session_id, revision) REFERENCES billing_payments
);

-- Refunds made before this table existed: one intent each, recorded on the payment row.
INSERT INTO billing_refunds (session_id, revision, intent_id, refund_id, amount)
SELECT session_id, revision, intent_id, '', -captured_amount
FROM billing_payments
WHERE state = 'captured' AND amount < 0 AND captured_amount < 0 AND intent_id IS NOT NULL;
