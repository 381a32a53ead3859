-- Lookups the session lifecycle makes on every meter value and transaction end (by the charger's
-- transaction id), and the authoriser on every id token a charger presents (open app sessions).
CREATE INDEX charging_sessions_transaction ON charging_sessions (charger_id, transaction_id);
CREATE INDEX charging_sessions_open_token ON charging_sessions (charger_id, id_token)
    WHERE state IN ('INITIATED', 'ACTIVE', 'STOPPING');
