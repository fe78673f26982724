//! Which of the bot's gateway shards this process runs (`discord.shards` of
//! `discord.shard_count`). Discord sends a guild's events to shard
//! `(guild_id >> 22) % shard_count` and DMs to shard 0.

use std::fmt;
use std::ops::RangeInclusive;

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

#[cfg(test)]
mod tests {
    use super::*;

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
