-- Reply controls (issue 17): why the model finished a reply (a Continue button shows after
-- `length`), and the answers of a reply that has more than one (Regenerate adds one).
-- The same changes as migrations/sqlite/0003_reply_controls.sql.

ALTER TABLE messages ADD COLUMN finish_reason TEXT;

-- Answers per request a chat chose with /n (NULL: llm.n).
ALTER TABLE chat_settings ADD COLUMN n BIGINT;

-- Every answer of a reply that has more than one, `position` from 0 in the order they came;
-- the one shown is copied into messages.content (and so is what the history holds).
CREATE TABLE reply_alternatives (
    reply         BIGINT NOT NULL REFERENCES messages (id),
    position      BIGINT NOT NULL,
    content       TEXT   NOT NULL,
    finish_reason TEXT,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (reply, position)
);
