-- A FullInventory report (GetBaseReport, B07) lists every variable a station has: once all its parts
-- are in, the variables it left out (and nothing reported since it began) are removed
-- (csms/storage/device_model.py).

-- When the report began by the station's clock: the earliest generatedAt of its parts. NULL for a
-- report whose first parts came before this migration (its start is unknown: it removes nothing).
ALTER TABLE device_model_reports ADD COLUMN first_generated_at timestamptz;
-- A complete FullInventory: how many variable attributes it removed (NULL for any other report, or
-- one not complete yet).
ALTER TABLE device_model_reports ADD COLUMN removed integer;
