-- OCPP id tokens are case-insensitive (1.6 §7.28 IdToken; 2.0.1 IdTokenType.idToken): chargers
-- differ in the hex case of one card's uid. Tokens are looked up by lower(id_token).
CREATE INDEX driver_tokens_lower ON driver_tokens (lower(id_token));
