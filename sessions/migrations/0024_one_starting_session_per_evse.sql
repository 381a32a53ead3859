-- At most one app session waits for its charger (INITIATED) on an EVSE. The API's "in use" check
-- reads before it inserts, so two starts racing for one connector (two drivers, or one driver's
-- double tap under two Idempotency-Keys) both passed it and both sent a remote start; now the
-- second insert fails (the API answers 409, the idempotency key stays free) on every node alike.
-- Only the API creates INITIATED sessions; the charger's own sessions enter at ACTIVE or COMPLETED.
--
-- Duplicates such a race left before this migration: all but the first-created FAIL, with their
-- event (so their live streams end), as the start timeout would have failed them.
WITH ranked AS (
    SELECT session_id,
           row_number() OVER (PARTITION BY charger_id, evse_id ORDER BY created_at, session_id) AS place
    FROM charging_sessions WHERE state = 'INITIATED'),
failed AS (
    UPDATE charging_sessions s
    SET state = 'FAILED', failure_reason = 'another start on this connector came first', updated_at = now()
    FROM ranked WHERE s.session_id = ranked.session_id AND ranked.place > 1
    RETURNING s.session_id)
INSERT INTO session_events (session_id, kind, state, at, data)
SELECT session_id, 'state', 'FAILED', now(),
       jsonb_build_object('state', 'FAILED', 'reason', 'another start on this connector came first')
FROM failed;

CREATE UNIQUE INDEX charging_sessions_one_initiated ON charging_sessions (charger_id, evse_id)
    WHERE state = 'INITIATED';
