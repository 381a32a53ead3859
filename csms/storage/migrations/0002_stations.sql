-- Stations: where chargers stand and the local time their drivers and receipts see.

CREATE TABLE stations (
    station_id    text PRIMARY KEY,
    cpo_id        text,
    name          text,
    time_zone     text NOT NULL DEFAULT 'UTC',
    latitude_deg  double precision,
    longitude_deg double precision,
    address       text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chargers_station ON chargers (station_id);
CREATE INDEX chargers_cpo ON chargers (cpo_id);
