//! Which of the bot's gateway shards this process runs (`discord.shards` of
//! `discord.shard_count`). Discord sends a guild's events to shard
//! `(guild_id >> 22) % shard_count` and DMs to shard 0.

use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

use serde::Deserialize;

use super::rest::DiscordRest;

/// A range of shard ids of a bot with `count` shards, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardRange {
    /// The first shard id run here.
    pub first: u32,
    /// The last shard id run here.
    pub last: u32,
    /// The bot's total number of shards (at least 1).
    pub count: u32,
}

impl ShardRange {
    /// Every shard of a bot with `count` (at least 1) shards.
    pub fn all(count: u32) -> Self {
        let count = count.max(1);
        Self {
            first: 0,
            last: count - 1,
            count,
        }
    }

    /// The shard ids run here.
    pub fn ids(&self) -> RangeInclusive<u32> {
        self.first..=self.last
    }

    /// True when the bot runs as one shard, as a small bot does.
    pub fn is_single(&self) -> bool {
        self.count == 1
    }
}

impl fmt::Display for ShardRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.first == self.last {
            true => write!(f, "shard {} of {}", self.first, self.count),
            false => write!(f, "shards {}-{} of {}", self.first, self.last, self.count),
        }
    }
}

/// What `GET /gateway/bot` says about sharding.
#[derive(Debug, Deserialize)]
struct GatewayBot {
    shards: u32,
    session_start_limit: SessionStartLimit,
}

#[derive(Debug, Deserialize)]
struct SessionStartLimit {
    remaining: u32,
    reset_after: u64,
    /// How many rate-limit keys may identify at once (1 for most bots).
    #[serde(default = "one")]
    max_concurrency: u32,
}

fn one() -> u32 {
    1
}

/// Asks Discord (`GET /gateway/bot`) whether `range` fits: warns when `discord.shard_count` is
/// below the count Discord recommends (it closes a shard holding too many guilds with 4011).
/// Returns the bot's `max_concurrency`; a failed call only logs, and the answer is then 1 (the
/// strictest).
pub(super) async fn check(rest: &DiscordRest, range: ShardRange) -> u32 {
    let answer = rest.gateway_bot().await;
    let parsed = answer.map(serde_json::from_value::<GatewayBot>);
    let bot = match parsed {
        Ok(Ok(bot)) => bot,
        Ok(Err(error)) => {
            tracing::warn!(%error, "unreadable GET /gateway/bot");
            return 1;
        }
        Err(error) => {
            tracing::warn!(%error, "GET /gateway/bot failed");
            return 1;
        }
    };
    for warning in warnings(&bot, range) {
        tracing::warn!("{warning}");
    }
    bot.session_start_limit.max_concurrency.max(1)
}

/// The warnings `check` logs for what Discord said.
fn warnings(bot: &GatewayBot, range: ShardRange) -> Vec<String> {
    let mut warnings = Vec::new();
    if range.count < bot.shards {
        warnings.push(format!(
            "discord.shard_count = {} is below the {} shards Discord recommends for this bot; raise it on every instance",
            range.count, bot.shards
        ));
    }
    warnings
}

/// Waits while Discord allows fewer session starts than the shards of `range` (asking again
/// once the limit resets): an IDENTIFY past the day's limit makes Discord reset the bot's
/// token and close all its sessions. Returns at once when Discord cannot be asked.
pub(super) async fn await_session_starts(rest: &DiscordRest, range: ShardRange) {
    loop {
        let answer = rest.gateway_bot().await;
        let Ok(Ok(bot)) = answer.map(serde_json::from_value::<GatewayBot>) else {
            return;
        };
        let Some(why) = short_of_sessions(&bot, range) else {
            return;
        };
        tracing::error!("{why}");
        let reset = Duration::from_millis(bot.session_start_limit.reset_after);
        tokio::time::sleep(reset + Duration::from_secs(1)).await;
    }
}

/// Why the shards of `range` must not start now, when Discord allows fewer sessions.
fn short_of_sessions(bot: &GatewayBot, range: ShardRange) -> Option<String> {
    let starting = range.last - range.first + 1;
    let limit = &bot.session_start_limit;
    (limit.remaining < starting).then(|| {
        format!(
            "Discord allows {} more gateway sessions for {} min and this process starts {starting}; \
             its shards wait for the reset (one session too many makes Discord reset the bot token)",
            limit.remaining,
            limit.reset_after / 60_000
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_below_discords_is_warned_about_and_a_spent_session_limit_waited_for() {
        let bot = |shards, remaining| GatewayBot {
            shards,
            session_start_limit: SessionStartLimit {
                remaining,
                reset_after: 3_600_000,
                max_concurrency: 1,
            },
        };
        let range = ShardRange {
            first: 0,
            last: 1,
            count: 2,
        };
        assert!(warnings(&bot(2, 1000), range).is_empty());
        let low = warnings(&bot(4, 1000), range);
        assert_eq!(low.len(), 1);
        assert!(low[0].contains("discord.shard_count = 2"), "{low:?}");
        assert!(short_of_sessions(&bot(2, 2), range).is_none());
        let spent = short_of_sessions(&bot(1, 1), range).expect("one session short");
        assert!(
            spent.contains("1 more gateway sessions for 60 min and this process starts 2"),
            "{spent:?}"
        );
    }

    #[test]
    fn a_range_names_its_shards() {
        assert_eq!(ShardRange::all(1).to_string(), "shard 0 of 1");
        let range = ShardRange {
            first: 2,
            last: 3,
            count: 4,
        };
        assert_eq!(range.to_string(), "shards 2-3 of 4");
        assert_eq!(range.ids().collect::<Vec<_>>(), [2, 3]);
    }
}
