-- A token's group (1.6 IdTagInfo.parentIdTag, 2.0.1 IdTokenInfo.groupIdToken, C09): tokens of one
-- group may stop each other's transactions at the charger. NULL: the token has no group. The type
-- is the group token's 2.0.1 IdTokenEnumType (a group id is usually the CSMS's own: Central).
ALTER TABLE driver_tokens
    ADD COLUMN group_id_token      text CHECK (length(group_id_token) BETWEEN 1 AND 36),
    ADD COLUMN group_id_token_type text NOT NULL DEFAULT 'Central';
