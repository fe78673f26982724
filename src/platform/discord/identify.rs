//! Turns at identifying among instances. Discord starts one gateway session per 5 s per
//! rate-limit key (`shard_id % max_concurrency`) and answers an IDENTIFY beyond that with
//! Invalid Session; serenity paces only the shards of its own process, so instances starting
//! together would identify at once. A coordinating instance therefore takes a database lease
//! per rate-limit key its shards use before they identify, and gives it up 5 s after they are
//! all connected. The scope, `discord-identify:<key>`, names a role, not a chat (a chat's scope
//! is `discord:<channel>`).
//!
//! Only the first start takes turns: when serenity later starts a shard again by itself (after
//! a session timed out), that IDENTIFY is not leased; if it collides, Discord refuses one and
//! serenity identifies it again 5 s later.

use std::collections::BTreeSet;
use std::time::Duration;

use serenity::all::{ConnectionStage, ShardId, ShardManager};

use super::ShardRange;
use crate::instances::{Instance, Scope};

/// How long Discord counts an IDENTIFY against its rate-limit key.
const WINDOW: Duration = Duration::from_secs(5);
/// How often a waiting instance asks for a lease again, and a holder reads its shards' stages.
const POLL: Duration = Duration::from_millis(250);
/// How long a process waits for one of its shards to connect before giving its turn up anyway.
const PER_SHARD: Duration = Duration::from_secs(30);

/// The leases this process takes before its shards identify.
pub(super) struct IdentifyTurns {
    instance: Instance,
    scopes: Vec<Scope>,
}

impl IdentifyTurns {
    /// The turns of the shards of `range`, for a bot whose `max_concurrency` is given.
    pub(super) fn new(instance: Instance, range: ShardRange, max_concurrency: u32) -> Self {
        let scopes = keys(range, max_concurrency)
            .into_iter()
            .map(|key| Scope::named(format!("discord-identify:{key}")))
            .collect();
        Self { instance, scopes }
    }

    /// Waits until this instance holds every lease, taken in ascending order (so two instances
    /// never wait for each other). Cancel it by dropping it.
    pub(super) async fn take(&self) {
        for scope in &self.scopes {
            let mut told = false;
            while !self.instance.acquire(scope).await {
                if !told {
                    tracing::info!(%scope, "another instance is identifying its Discord shards; waiting for its turn");
                    told = true;
                }
                tokio::time::sleep(POLL).await;
            }
        }
    }

    /// Gives the leases up once every shard of `range` is connected and Discord's window has
    /// passed, or after [`PER_SHARD`] per shard when one never connects.
    pub(super) async fn release_once_connected(&self, shards: &ShardManager, range: ShardRange) {
        let count = range.last - range.first + 1;
        let give_up = tokio::time::Instant::now() + PER_SHARD * count;
        while !connected(shards, range).await {
            if tokio::time::Instant::now() >= give_up {
                tracing::warn!(%range, "shards still not connected; letting other instances identify");
                break;
            }
            self.keep().await;
            tokio::time::sleep(POLL).await;
        }
        let passed = tokio::time::Instant::now() + WINDOW;
        while tokio::time::Instant::now() < passed {
            self.keep().await;
            tokio::time::sleep(POLL).await;
        }
        self.release().await;
    }

    /// Marks the leases used, so the instance does not give them up as idle meanwhile.
    async fn keep(&self) {
        for scope in &self.scopes {
            self.instance.hold(scope).await;
        }
    }

    /// Gives up every lease this process took (none is given up twice).
    pub(super) async fn release(&self) {
        for scope in &self.scopes {
            self.instance.release(scope).await;
        }
    }
}

/// The rate-limit keys of the shards of `range`, ascending.
fn keys(range: ShardRange, max_concurrency: u32) -> BTreeSet<u32> {
    range.ids().map(|id| id % max_concurrency.max(1)).collect()
}

/// True when serenity reports every shard of `range` connected.
async fn connected(shards: &ShardManager, range: ShardRange) -> bool {
    let runners = shards.runners.lock().await;
    range.ids().all(|id| {
        runners
            .get(&ShardId(id))
            .is_some_and(|r| r.stage == ConnectionStage::Connected)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_share_a_rate_limit_key_modulo_max_concurrency() {
        let range = |first, last| ShardRange {
            first,
            last,
            count: 16,
        };
        assert_eq!(keys(range(0, 7), 1), BTreeSet::from([0]));
        assert_eq!(keys(range(4, 7), 16), BTreeSet::from([4, 5, 6, 7]));
        assert_eq!(keys(range(0, 7), 4), BTreeSet::from([0, 1, 2, 3]));
        assert_eq!(keys(range(3, 3), 0), BTreeSet::from([0]), "0 counts as 1");
    }
}
