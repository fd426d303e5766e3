ALTER TABLE calls DROP COLUMN trace_parent;
ALTER TABLE calls DROP COLUMN failure_class;
