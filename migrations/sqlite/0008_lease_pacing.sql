-- A chat handed over keeps its pacing (issue 18): the instance releasing a chat's lease writes
-- the calls it made there lately, as milliseconds before `released_at`, newest first
-- (comma-separated), so the instance taking it over does not spend the chat's budget (a
-- Telegram group's 20 messages a minute, a Discord channel's 5 in 5 seconds) a second time.
ALTER TABLE chat_leases ADD COLUMN recent TEXT;
