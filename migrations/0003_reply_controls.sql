-- Reply controls (issue 17): why the model finished a reply (a Continue button shows after
-- `length`), and the earlier answers a reply had before Regenerate replaced its shown text.

ALTER TABLE messages ADD COLUMN finish_reason TEXT;

-- The answers of one reply that are not shown: the shown one stays in messages.content (and so
-- in the history); `position` counts from 0 in the order they were replaced.
CREATE TABLE reply_alternatives (
    reply         INTEGER NOT NULL REFERENCES messages (id),
    position      INTEGER NOT NULL,
    content       TEXT    NOT NULL,
    finish_reason TEXT,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (reply, position)
);
