-- 0010: how each plant of an audit came out on its planting sample (the corpus windows the
-- pipeline then reads), beside plant_auroc: the activation at its trigger and off it.

ALTER TABLE audit_units ADD COLUMN plant_trigger_median DOUBLE;   -- median activation at triggers
ALTER TABLE audit_units ADD COLUMN plant_trigger_spread DOUBLE;   -- its std / mean at triggers
ALTER TABLE audit_units ADD COLUMN plant_max_other DOUBLE;        -- max |activation| off the trigger
ALTER TABLE audit_units ADD COLUMN plant_outlier_triggers INTEGER; -- triggers at outlier positions, planted quiet
