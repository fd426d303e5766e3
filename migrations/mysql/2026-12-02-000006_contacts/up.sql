-- A user's contacts (PROTOCOL.md section 2.1): people they added, and people they have called,
-- been called by or chatted with one to one ("met", kept both ways).
CREATE TABLE contacts (
    user_id BIGINT NOT NULL,
    contact_id BIGINT NOT NULL,
    added BOOLEAN NOT NULL DEFAULT FALSE,
    met BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, contact_id),
    CONSTRAINT contacts_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT contacts_contact FOREIGN KEY (contact_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE INDEX contacts_contact_id ON contacts (contact_id);

-- Everyone already called or chatted with is a contact from the start.
INSERT IGNORE INTO contacts (user_id, contact_id, added, met, created_at)
SELECT a, b, FALSE, TRUE, MIN(t) FROM (
    SELECT caller_id AS a, callee_id AS b, created_at AS t FROM calls
    UNION ALL SELECT callee_id, caller_id, created_at FROM calls
    UNION ALL SELECT from_id, to_id, sent_at FROM messages WHERE to_id <> 0
    UNION ALL SELECT to_id, from_id, sent_at FROM messages WHERE to_id <> 0
) AS met WHERE a <> b GROUP BY a, b;
