CREATE TABLE messages (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    from_id BIGINT NOT NULL,
    -- 0 is the lobby, which every user reads.
    to_id BIGINT NOT NULL,
    body TEXT NOT NULL,
    sent_at BIGINT NOT NULL,
    read_at BIGINT,
    CONSTRAINT messages_from FOREIGN KEY (from_id) REFERENCES users (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE INDEX messages_pair ON messages (to_id, from_id, id);
CREATE INDEX messages_unread ON messages (to_id, read_at);
