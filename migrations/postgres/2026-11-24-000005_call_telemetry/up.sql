-- Why a call ended, joining what the server saw with the clients' reports (ok, no_answer, ...).
ALTER TABLE calls ADD COLUMN failure_class VARCHAR(64);
-- The W3C trace context of the call's trace, so a restarted server continues the same trace.
ALTER TABLE calls ADD COLUMN trace_parent VARCHAR(128);
