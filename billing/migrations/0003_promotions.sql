-- Promotions and membership-tier discounts (tariffs.promotions: our extension, OCPI has none).
-- A promotion takes a percentage or a fixed amount (excl. VAT, in `currency`) off a session's
-- price; it may be limited to a CPO's chargers, a membership tier (drivers.tier), holders of a
-- code, or any of these together, and is valid on the local dates [valid_from, valid_until).
CREATE TABLE billing_promotions (
    promotion_id text PRIMARY KEY,
    cpo_id       text,          -- NULL: on every operator's chargers
    kind         text NOT NULL CHECK (kind IN ('PERCENT', 'FIXED')),
    amount       numeric NOT NULL CHECK (amount >= 0),
    currency     text,
    tier         text,
    code         text,
    valid_from   date,
    valid_until  date,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (kind <> 'PERCENT' OR amount <= 100),
    CHECK (kind <> 'FIXED' OR currency IS NOT NULL),
    CHECK (valid_from IS NULL OR valid_until IS NULL OR valid_until > valid_from)
);
-- One promotion per code and operator: a code a driver enters names one promotion.
CREATE UNIQUE INDEX billing_promotions_code ON billing_promotions (coalesce(cpo_id, ''), upper(code))
    WHERE code IS NOT NULL;

-- Codes a driver entered in their account: they count for sessions started at or after
-- `redeemed_at` (a code entered mid-session does not reprice it).
CREATE TABLE billing_redeemed_codes (
    driver_id   text NOT NULL REFERENCES drivers ON DELETE CASCADE,
    code        text NOT NULL,  -- normalised: trimmed, upper case
    redeemed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (driver_id, code)
);

-- The promotion a receipt applied (NULL: none), for the operator's reports.
ALTER TABLE billing_ratings ADD COLUMN promotion_id text;
ALTER TABLE billing_ratings ADD COLUMN discount_incl_vat numeric NOT NULL DEFAULT 0;
