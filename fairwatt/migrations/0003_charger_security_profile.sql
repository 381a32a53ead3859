-- Chargers applied before csms migration 0008 have their network file's security profile only in
-- network_resources: copy it into the new column (the projection of the applied body), so an upgrade
-- enforces it without a re-apply. Bodies applied then said 1 also for a charger whose file names no
-- profile (now NULL: the node's profile); `fairwatt diff` shows that field for them until the next
-- apply, which stores NULL. With one listener per node, 1 and NULL admit the same connections.
UPDATE chargers c
SET security_profile = (r.body->>'security_profile')::smallint
FROM network_resources r
WHERE r.kind = 'charger'
  AND r.resource_id = c.charger_id
  AND r.body->>'security_profile' IN ('1', '2', '3');
