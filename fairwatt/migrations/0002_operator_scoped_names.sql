-- Local lists and demand-response programmes are named per operator (two CPOs may both have a
-- "fleet" list); stations, chargers and tariffs stay globally unique, which apply checks against
-- the tables that hold them.
ALTER TABLE network_resources DROP CONSTRAINT network_resources_pkey;
ALTER TABLE network_resources ADD PRIMARY KEY (cpo_id, kind, resource_id);
