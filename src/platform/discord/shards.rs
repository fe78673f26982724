//! Which of the bot's gateway shards this process runs (`discord.shards` of
//! `discord.shard_count`). Discord sends a guild's events to shard
//! `(guild_id >> 22) % shard_count` and DMs to shard 0.

use std::fmt;
use std::ops::RangeInclusive;

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
/// below the count Discord recommends (it closes a shard holding too many guilds with 4011) or
/// when fewer sessions may start today than this process starts. Returns the bot's
/// `max_concurrency`; a failed call only logs, and the answer is then 1 (the strictest).
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
    let starting = range.last - range.first + 1;
    let limit = &bot.session_start_limit;
    if limit.remaining < starting {
        warnings.push(format!(
            "Discord allows {} more gateway sessions for {} min; this process starts {starting}",
            limit.remaining,
            limit.reset_after / 60_000
        ));
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_below_discords_and_a_spent_session_limit_are_warned_about() {
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
        let spent = warnings(&bot(1, 1), range);
        assert_eq!(spent.len(), 1);
        assert!(
            spent[0].contains("1 more gateway sessions for 60 min"),
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
