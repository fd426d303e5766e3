-- Values the server generates once and keeps (the TURN shared secret).
CREATE TABLE server_settings (
    name VARCHAR(64) PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
