CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    from_id BIGINT NOT NULL REFERENCES users (id),
    -- 0 is the lobby, which every user reads.
    to_id BIGINT NOT NULL,
    body TEXT NOT NULL,
    sent_at BIGINT NOT NULL,
    read_at BIGINT
);

CREATE INDEX messages_pair ON messages (to_id, from_id, id);
CREATE INDEX messages_unread ON messages (to_id, read_at);
