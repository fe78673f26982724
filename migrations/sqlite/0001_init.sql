-- Parley's initial schema: conversations, their messages, and per-chat settings.
-- Timestamps are unix milliseconds. A chat without a thread stores thread = ''.

CREATE TABLE conversations (
    id         INTEGER PRIMARY KEY,
    uuid       TEXT    NOT NULL UNIQUE,
    platform   TEXT    NOT NULL,
    chat       TEXT    NOT NULL,
    thread     TEXT    NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    ended_at   INTEGER
);

-- Exactly one active (not ended) conversation per chat place.
CREATE UNIQUE INDEX conversations_one_active
    ON conversations (platform, chat, thread) WHERE ended_at IS NULL;

-- Every conversation of a chat place, for usage over all of them.
CREATE INDEX conversations_by_place ON conversations (platform, chat, thread);

CREATE TABLE messages (
    id                INTEGER PRIMARY KEY,
    conversation      INTEGER NOT NULL REFERENCES conversations (id),
    role              TEXT    NOT NULL CHECK (role IN ('user', 'assistant')),
    author_id         TEXT,
    author_name       TEXT,
    content           TEXT    NOT NULL DEFAULT '',
    model             TEXT,
    status            TEXT    NOT NULL
                      CHECK (status IN ('streaming', 'complete', 'partial', 'failed')),
    failure_reason    TEXT,
    platform_messages TEXT    NOT NULL DEFAULT '[]',
    in_reply_to       INTEGER REFERENCES messages (id),
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cached_tokens     INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens  INTEGER NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);

-- History of one conversation in insertion order.
CREATE INDEX messages_by_conversation ON messages (conversation, id);

-- Replies to one user message, for usage per user.
CREATE INDEX messages_by_in_reply_to ON messages (in_reply_to) WHERE in_reply_to IS NOT NULL;

-- User messages by author, for usage per user.
CREATE INDEX messages_by_author ON messages (author_id) WHERE role = 'user';

-- Replies a crash left streaming, found at start-up.
CREATE INDEX messages_streaming ON messages (id) WHERE status = 'streaming';

CREATE TABLE chat_settings (
    platform      TEXT    NOT NULL,
    chat          TEXT    NOT NULL,
    thread        TEXT    NOT NULL DEFAULT '',
    model         TEXT,
    system_prompt TEXT,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (platform, chat, thread)
);
