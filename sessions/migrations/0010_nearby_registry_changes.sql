-- Which chargers changed where nearby search looks (position, station, connectors, tariff), so
-- every node's in-memory index reloads only those: one row per charger, bumped to the next value
-- of a sequence by triggers on chargers, connectors, stations and tariff assignments.

CREATE SEQUENCE nearby_registry_seq;

CREATE TABLE nearby_registry_changes (
    charger_id text PRIMARY KEY,
    seq        bigint NOT NULL
);
CREATE INDEX nearby_registry_changes_seq ON nearby_registry_changes (seq);

CREATE FUNCTION nearby_registry_touch(ids text[]) RETURNS void LANGUAGE sql AS $$
    INSERT INTO nearby_registry_changes (charger_id, seq)
    SELECT id, nextval('nearby_registry_seq')
    FROM (SELECT DISTINCT id FROM unnest(ids) AS id WHERE id IS NOT NULL) AS changed
    ON CONFLICT (charger_id) DO UPDATE SET seq = excluded.seq;
$$;

CREATE FUNCTION nearby_charger_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM nearby_registry_touch(ARRAY[OLD.charger_id]);
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.latitude_deg IS NOT DISTINCT FROM NEW.latitude_deg
            AND OLD.longitude_deg IS NOT DISTINCT FROM NEW.longitude_deg
            AND OLD.station_id IS NOT DISTINCT FROM NEW.station_id
            AND OLD.registration_status IS NOT DISTINCT FROM NEW.registration_status THEN
        RETURN NEW;  -- a boot (vendor, firmware, last_boot_at): nothing nearby search shows
    END IF;
    PERFORM nearby_registry_touch(ARRAY[NEW.charger_id]);
    RETURN NEW;
END;
$$;
CREATE TRIGGER chargers_nearby AFTER INSERT OR UPDATE OR DELETE ON chargers
    FOR EACH ROW EXECUTE FUNCTION nearby_charger_changed();

CREATE FUNCTION nearby_connector_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM nearby_registry_touch(ARRAY[OLD.charger_id]);
        RETURN OLD;
    END IF;
    PERFORM nearby_registry_touch(ARRAY[NEW.charger_id]);
    RETURN NEW;
END;
$$;
CREATE TRIGGER connectors_nearby AFTER INSERT OR UPDATE OR DELETE ON connectors
    FOR EACH ROW EXECUTE FUNCTION nearby_connector_changed();

CREATE FUNCTION nearby_station_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.latitude_deg IS NOT DISTINCT FROM NEW.latitude_deg
            AND OLD.longitude_deg IS NOT DISTINCT FROM NEW.longitude_deg
            AND OLD.time_zone IS NOT DISTINCT FROM NEW.time_zone THEN
        RETURN NEW;
    END IF;
    PERFORM nearby_registry_touch(
        ARRAY(SELECT charger_id FROM chargers WHERE station_id = coalesce(NEW.station_id, OLD.station_id)));
    RETURN coalesce(NEW, OLD);
END;
$$;
CREATE TRIGGER stations_nearby AFTER INSERT OR UPDATE OR DELETE ON stations
    FOR EACH ROW EXECUTE FUNCTION nearby_station_changed();

CREATE FUNCTION nearby_tariff_assignment_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed tariff_assignments;
BEGIN
    changed := coalesce(NEW, OLD);
    IF changed.scope = 'charger' THEN
        PERFORM nearby_registry_touch(ARRAY[changed.scope_id]);
    ELSE
        PERFORM nearby_registry_touch(ARRAY(SELECT charger_id FROM chargers WHERE station_id = changed.scope_id));
    END IF;
    RETURN changed;
END;
$$;
CREATE TRIGGER tariff_assignments_nearby AFTER INSERT OR UPDATE OR DELETE ON tariff_assignments
    FOR EACH ROW EXECUTE FUNCTION nearby_tariff_assignment_changed();
