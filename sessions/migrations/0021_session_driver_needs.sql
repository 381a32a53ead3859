-- What the driver asked for when starting (or later changed, PATCH /v1/sessions/{id}): when the
-- car leaves and the session's total energy. NULL: not given (the car's word, or the station's
-- defaults, apply). The planner hears them through the charging service (DriverNeeds events).
ALTER TABLE charging_sessions
    ADD COLUMN departure_at      timestamptz,
    ADD COLUMN energy_needed_kwh double precision CHECK (energy_needed_kwh > 0);
