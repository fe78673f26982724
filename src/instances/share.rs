//! Each instance's part of a platform's bot-wide budget. Telegram's ~30 messages a second and
//! Discord's 50 requests a second count every call of the bot, whichever instance makes it,
//! while each instance paces only its own calls: the instances that answer chats on a platform
//! split its budget evenly. An instance that holds none of the platform's chats (one standing
//! by, or the one polling Telegram while another answers) takes no part, so one instance alone
//! keeps the whole budget.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::{Instance, Scope, lock};
use crate::engine::event::PlatformKind;
use crate::engine::ports::Limits;

/// How often the instances answering on each platform are counted again. Until then another
/// instance that just started answering spends its part beside this one's whole budget: one
/// that receives the platform's events itself counts from its start ([`Instance::receives`]),
/// one that only takes chats over from its first chat.
const SHARE_EVERY: Duration = Duration::from_millis(250);

/// This instance's part of one platform's bot-wide budget; cheap to clone, and follows the
/// count of the other instances answering on the platform as the inbox pump renews it.
#[derive(Debug, Clone, Default)]
pub struct Share {
    /// Other live instances holding a chat of the platform.
    others: Arc<AtomicU32>,
}

impl Share {
    /// This instance's part of `budget` calls: an even split among the instances answering on
    /// the platform, never below one call.
    pub fn of(&self, budget: u32) -> u32 {
        let instances = self.others.load(Ordering::Relaxed).saturating_add(1);
        (budget / instances).max(1)
    }

    /// `limits` with the bot-wide budget cut to this instance's part.
    pub fn limit(&self, mut limits: Limits) -> Limits {
        if let Some(bot) = &mut limits.bot {
            bot.count = self.of(bot.count);
        }
        limits
    }

    fn set(&self, others: u32) {
        self.others.store(others, Ordering::Relaxed);
    }
}

impl Instance {
    /// This instance's part of `platform`'s bot-wide budget.
    pub fn share(&self, platform: PlatformKind) -> Share {
        lock(&self.shared.shares)
            .entry(platform)
            .or_default()
            .clone()
    }

    /// Counts this instance among those answering on `platform` from now on, before it holds
    /// any of the platform's chats: it receives the platform's events itself (Telegram's
    /// webhook, Discord's shards), so the chats that write to it come to it first. It takes its
    /// [`Scope::receiving`] role for that, and counts the others at once.
    pub async fn receives(&self, platform: PlatformKind) {
        let role = Scope::receiving(platform, &self.shared.config.id);
        lock(&self.shared.local).receiving.insert(role.clone());
        self.acquire(&role).await;
        self.count_sharers().await;
    }

    /// Counts the instances answering beside this one every [`SHARE_EVERY`] until the heartbeat
    /// stops: apart from the inbox pump, whose hand-overs do not wait for it.
    pub(super) async fn count_sharers_while_beating(self) {
        loop {
            self.count_sharers().await;
            tokio::select! {
                () = self.shared.beating.cancelled() => break,
                () = tokio::time::sleep(SHARE_EVERY) => {}
            }
        }
    }

    /// Counts again the other instances answering on each platform (taking again the roles of
    /// [`Instance::receives`] that the database could not give before).
    pub(super) async fn count_sharers(&self) {
        let shared = &self.shared;
        let missing: Vec<Scope> = {
            let local = lock(&shared.local);
            local.receiving.difference(&local.held).cloned().collect()
        };
        for role in &missing {
            self.acquire(role).await;
        }
        let (me, failover) = (&shared.config.id, shared.config.failover);
        let counts = match shared.store.others_active(me, failover).await {
            Ok(counts) => counts,
            Err(error) => {
                tracing::warn!(error = %error.chain(), "could not count the other instances");
                return;
            }
        };
        let shares = lock(&shared.shares);
        for (platform, share) in shares.iter() {
            let others = counts
                .iter()
                .find(|(p, _)| p == platform)
                .map_or(0, |(_, n)| *n);
            if share.others.load(Ordering::Relaxed) != others {
                tracing::info!(%platform, others, "instances answering beside this one changed");
            }
            share.set(others);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Share;

    #[test]
    fn the_budget_splits_evenly_among_the_instances_answering_and_never_to_nothing() {
        let share = Share::default();
        assert_eq!(share.of(30), 30, "alone: all of it");
        share.set(1);
        assert_eq!((share.of(30), share.of(50)), (15, 25));
        share.set(2);
        assert_eq!(share.of(50), 16, "rounded down: together never over");
        share.set(100);
        assert_eq!(share.of(30), 1);
    }
}
