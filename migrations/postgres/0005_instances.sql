-- Several instances on one database (issue 18): the same tables as
-- migrations/sqlite/0005_instances.sql. Times are the server's clock in unix milliseconds, so
-- instances on machines whose clocks differ still agree on who is alive.

-- One row per running instance; an instance is alive while `stopping` is false and its
-- heartbeat is younger than the failover time (telegram.failover_secs).
CREATE TABLE instances (
    id           TEXT    PRIMARY KEY,
    started_at   BIGINT  NOT NULL,
    heartbeat_at BIGINT  NOT NULL,
    stopping     BOOLEAN NOT NULL DEFAULT FALSE
);

-- Which instance talks to a chat (the pacing scope: a Telegram chat with all its topics, a
-- Discord channel), or polls Telegram (`telegram:poll`). A lease holds while its instance is
-- alive and has not released it: the heartbeat renews every lease at once. A released lease
-- keeps its row with `released_at`, so the next holder knows how recently the chat was spoken to.
CREATE TABLE chat_leases (
    scope       TEXT   NOT NULL PRIMARY KEY,
    instance    TEXT   NOT NULL,
    released_at BIGINT
);

CREATE INDEX chat_leases_by_instance ON chat_leases (instance);

-- Inbound events accepted by some instance, taken in `seq` order by the holder of their
-- scope's lease. A row stays (without its payload) once its turn started, so an event the
-- platform delivers again (a retried webhook, a poll after a takeover) is stored once.
CREATE TABLE inbox (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scope       TEXT   NOT NULL,
    platform    TEXT   NOT NULL,
    event_id    TEXT   NOT NULL,
    payload     TEXT,
    received_by TEXT   NOT NULL,
    received_at BIGINT NOT NULL,
    started_at  BIGINT,
    UNIQUE (platform, event_id)
);

-- Events waiting for their turn, per scope in order.
CREATE INDEX inbox_waiting ON inbox (scope, seq) WHERE started_at IS NULL;

-- The instance that streams a reply (NULL: written by an instance that does not coordinate).
ALTER TABLE messages ADD COLUMN instance TEXT;
