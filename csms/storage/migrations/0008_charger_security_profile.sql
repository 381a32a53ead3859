-- The OCPP security profile configured for each charger (1, 2 or 3): a connection that offers less
-- is refused (csms/server.py; OCPP 1.6 Security Whitepaper / 2.0.1 Part 2 A00.FR.002, A05).
-- NULL: not configured, the charger is held to the node's profile (CsmsSettings.security_profile).
ALTER TABLE chargers ADD COLUMN security_profile smallint
    CHECK (security_profile BETWEEN 1 AND 3);
