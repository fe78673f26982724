-- Files users sent with their messages (images, text files), stored once by content: every later
-- request of a conversation carries exactly these bytes, so the prompt cache keeps hitting.
-- The same tables as migrations/sqlite/0002_files.sql.

CREATE TABLE files (
    digest     TEXT   PRIMARY KEY,               -- SHA-256 of data, lowercase hex
    kind       TEXT   NOT NULL CHECK (kind IN ('image', 'text')),
    mime       TEXT   NOT NULL,
    size       BIGINT NOT NULL,
    data       BYTEA  NOT NULL,
    created_at BIGINT NOT NULL
);

-- The files of one user message, in the order it brought them. A file stays as long as any
-- message names it: several messages and conversations may share one.
CREATE TABLE message_files (
    message  BIGINT NOT NULL REFERENCES messages (id),
    position BIGINT NOT NULL,
    digest   TEXT   NOT NULL REFERENCES files (digest),
    name     TEXT   NOT NULL,
    PRIMARY KEY (message, position)
);

-- Which messages use a file, for any later clean-up of files no message names.
CREATE INDEX message_files_by_digest ON message_files (digest);
