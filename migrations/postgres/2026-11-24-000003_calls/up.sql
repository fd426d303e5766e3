CREATE TABLE calls (
    id VARCHAR(36) PRIMARY KEY NOT NULL,
    caller_id BIGINT NOT NULL REFERENCES users (id),
    callee_id BIGINT NOT NULL REFERENCES users (id),
    -- ringing, active, completed, missed, rejected, busy, cancelled, failed
    status VARCHAR(16) NOT NULL,
    media_audio BOOLEAN NOT NULL,
    media_video BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    answered_at BIGINT,
    ended_at BIGINT,
    duration_ms BIGINT,
    end_reason VARCHAR(64),
    ended_by BIGINT,
    -- The last Call/Report stats of each party, as JSON.
    caller_report TEXT,
    callee_report TEXT
);

CREATE INDEX calls_caller ON calls (caller_id, created_at);
CREATE INDEX calls_callee ON calls (callee_id, created_at);
CREATE INDEX calls_status ON calls (status);
