//! The one door every Telegram update comes through, polled or posted to the webhook: it drops
//! an update already taken (Telegram re-sends a webhook update whose answer it did not see) and
//! hands the rest to the adapter.
//!
//! **The seam for several instances.** [`Intake::accept`] is where an update stops being
//! Telegram's and becomes the bot's: its caller (the polling loop, the webhook endpoint) only
//! confirms it to Telegram once `accept` returned. On one instance `accept` de-duplicates by
//! `update_id` in memory and handles the update here ([`Intake::handle`]). With several
//! instances on one database, `accept` is the place to write the raw update into an inbox table
//! instead (unique on `update_id`, which de-duplicates across instances) and return; the instance
//! that holds the chat's lease then reads it back and calls [`Intake::handle`] with the same raw
//! text. Nothing before `accept` decodes the update.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::value::RawValue;

use super::long_poll::decode;
pub use super::polling::Taken;
use super::polling::{Accept, Adapter};

/// How many recent update ids are remembered. Telegram sends an update again only after its
/// request failed or timed out (at once, then after 2, 4, 8... s), and it holds back the chat's
/// later updates meanwhile: the copy comes back long before 10,000 other updates have passed.
pub const RECENT_UPDATES: usize = 10_000;

/// Takes updates in and hands each to the adapter once.
pub struct Intake {
    adapter: Arc<Adapter>,
    recent: Mutex<Recent>,
}

/// The last [`RECENT_UPDATES`] update ids taken.
#[derive(Default)]
struct Recent {
    order: VecDeque<i64>,
    seen: HashSet<i64>,
}

impl Recent {
    /// Notes `id`; false when it was noted already.
    fn note(&mut self, id: i64) -> bool {
        if !self.seen.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > RECENT_UPDATES
            && let Some(oldest) = self.order.pop_front()
        {
            self.seen.remove(&oldest);
        }
        true
    }
}

impl Intake {
    /// The intake in front of `adapter`.
    pub(super) fn new(adapter: Arc<Adapter>) -> Self {
        Self {
            adapter,
            recent: Mutex::new(Recent::default()),
        }
    }

    /// Takes one update as Telegram sent it (see the module's note on several instances). A new
    /// one is handled before this returns: commands and prompts are queued in their chat's turn
    /// order, slower answers run on tasks of their own, so this takes milliseconds.
    pub async fn accept(&self, raw: &RawValue) -> Taken {
        self.accept_all(&[raw]).await[0]
    }

    /// Takes a batch of updates (a poll's answer) in their order, as [`Intake::accept`] takes
    /// one: among several instances the shared inbox keeps them in one write.
    pub async fn accept_all(&self, raws: &[&RawValue]) -> Vec<Taken> {
        let ids: Vec<Option<i64>> = raws.iter().map(|raw| update_id(raw)).collect();
        let numbered: Vec<(i64, &RawValue)> = ids
            .iter()
            .zip(raws)
            .filter_map(|(id, raw)| Some(((*id)?, *raw)))
            .collect();
        // Among several instances the shared inbox takes them, once over all of them.
        let mut kept = self.adapter.keep_all(&numbered).await.into_iter();
        let mut taken = Vec::with_capacity(raws.len());
        for (id, raw) in ids.into_iter().zip(raws) {
            let Some(id) = id else {
                taken.push(Taken::NotAnUpdate);
                continue;
            };
            taken.push(match kept.next().flatten() {
                Some(true) => Taken::New(id),
                Some(false) => Taken::Duplicate(id),
                None => self.take_here(id, raw).await,
            });
        }
        taken
    }

    /// Takes an update on this instance alone: drops one taken already, handles the others.
    async fn take_here(&self, id: i64, raw: &RawValue) -> Taken {
        let new = {
            // Nothing panics while the lock is held: recover it rather than lose updates.
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            recent.note(id)
        };
        if !new {
            tracing::info!(update_id = id, "dropping an update delivered twice");
            return Taken::Duplicate(id);
        }
        self.handle(raw).await;
        Taken::New(id)
    }

    /// Handles a taken update: decodes it and hands it to the adapter. One that does not decode
    /// is skipped with a warning, so it cannot hold up the updates after it.
    pub async fn handle(&self, raw: &RawValue) {
        let polled = decode(raw);
        match polled.update {
            Ok(update) => self.adapter.handle(update).await,
            Err(why) => tracing::warn!(update_id = polled.id, %why, "skipping an update"),
        }
    }
}

/// The `update_id` of a raw update; `None` when it has none (it is not an update).
#[async_trait::async_trait]
impl Accept for Intake {
    async fn accept_all(&self, raws: &[&RawValue]) -> Vec<Taken> {
        Intake::accept_all(self, raws).await
    }
}

fn update_id(raw: &RawValue) -> Option<i64> {
    #[derive(serde::Deserialize)]
    struct Head {
        update_id: i64,
    }
    serde_json::from_str::<Head>(raw.get())
        .ok()
        .map(|h| h.update_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_new_once_and_the_oldest_are_forgotten_past_the_bound() {
        let mut recent = Recent::default();
        assert!(recent.note(7));
        assert!(!recent.note(7), "the second delivery is a duplicate");
        for id in 100..(100 + RECENT_UPDATES as i64) {
            assert!(recent.note(id));
        }
        assert_eq!(recent.order.len(), RECENT_UPDATES);
        assert_eq!(recent.seen.len(), RECENT_UPDATES);
        assert!(recent.note(7), "forgotten once past the bound");
    }
}
