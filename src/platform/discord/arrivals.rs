//! Among several instances, a channel's messages taken in the order Discord wrote them. serenity
//! runs each gateway event in a task of its own, and the task of a later message may run first
//! (tokio runs the task spawned last first, and other worker threads steal the rest); a message
//! id is a snowflake, rising with time within a channel.
//!
//! The tasks of messages that arrive together start within microseconds of each other, so each
//! message waits [`REORDER`] before the channel's messages are taken in id order. That is a
//! window, not a proof: a task whose start is delayed longer (a machine overloaded for that
//! long) can still be taken after a later message of its channel.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use std::time::Duration;

use serenity::all::{ChannelId, MessageId};

/// How long a message waits for the tasks of messages that arrived with it.
const REORDER: Duration = Duration::from_millis(20);

/// The messages waiting to be taken, per channel.
pub struct Arrivals<T> {
    channels: Mutex<HashMap<ChannelId, Arc<Channel<T>>>>,
}

struct Channel<T> {
    /// Arrived, not taken yet, by id.
    pending: Mutex<BTreeMap<MessageId, T>>,
    /// Held while one task takes the channel's messages.
    turn: tokio::sync::Mutex<()>,
}

impl<T> Default for Arrivals<T> {
    fn default() -> Self {
        Self {
            channels: Mutex::default(),
        }
    }
}

impl<T> Arrivals<T> {
    /// Takes `item` (message `id` of `channel`) with `take`, after the channel's messages with
    /// lower ids that arrived with it (within [`REORDER`]), and one at a time: whichever task
    /// holds the channel's turn takes every waiting message in id order.
    pub async fn in_order<F, Fut>(&self, channel: ChannelId, id: MessageId, item: T, take: F)
    where
        F: Fn(T) -> Fut,
        Fut: Future<Output = ()>,
    {
        let slot = {
            let mut channels = lock(&self.channels);
            channels.entry(channel).or_insert_with(|| {
                Arc::new(Channel {
                    pending: Mutex::default(),
                    turn: tokio::sync::Mutex::new(()),
                })
            });
            channels[&channel].clone()
        };
        lock(&slot.pending).insert(id, item);
        // The tasks of messages that arrived with this one get to put theirs down first.
        tokio::time::sleep(REORDER).await;
        {
            let _turn = slot.turn.lock().await;
            loop {
                let next = lock(&slot.pending).pop_first();
                let Some((_, item)) = next else { break };
                take(item).await;
            }
        }
        let mut channels = lock(&self.channels);
        // Only the map and this task hold it: nothing is waiting in the channel.
        if Arc::strong_count(&slot) == 2 && lock(&slot.pending).is_empty() {
            channels.remove(&channel);
        }
    }
}

/// Locks `mutex`, whose data stays consistent even if a holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn messages_spawned_together_are_taken_in_id_order_whichever_task_runs_first() {
        let arrivals: Arc<Arrivals<u64>> = Arc::default();
        let taken = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // Spawned newest first: on this runtime they start in that order.
        for id in (1..=5u64).rev() {
            let (arrivals, taken) = (arrivals.clone(), taken.clone());
            tasks.push(tokio::spawn(async move {
                let take = |n: u64| {
                    let taken = taken.clone();
                    async move {
                        tokio::task::yield_now().await;
                        lock(&taken).push(n);
                    }
                };
                let (channel, id_) = (ChannelId::new(10), MessageId::new(id));
                arrivals.in_order(channel, id_, id, take).await;
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(*lock(&taken), [1, 2, 3, 4, 5]);
        assert!(lock(&arrivals.channels).is_empty(), "nothing left behind");
    }
}
