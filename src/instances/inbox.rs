//! The inbox pump: hands the events waiting for the scopes this instance holds to their
//! platform's handler in order, takes the scopes nobody alive holds, and notes through each
//! event's receipt when its turn starts and ends.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::{Instance, Running, Scope, Shared, Waiting, lock};
use crate::engine::dispatcher::with_receipt;
use crate::engine::ports::Receipt;

/// How often the inbox is read when nothing woke the pump: how soon an event another instance
/// stored for a scope this one holds is answered (SQLite has no notifications).
const POLL: Duration = Duration::from_millis(150);

/// Events read from the inbox at once.
const BATCH: u32 = 256;

/// An event that waited longer than this (its instance died with it queued, and the failover
/// took long) is not answered any more: its sender is asked to send it again.
pub(super) const TOO_OLD: Duration = Duration::from_secs(600);

impl Instance {
    /// Reads the inbox until `intake` stops it.
    pub(super) async fn pump(self, intake: CancellationToken) {
        // Free scopes come from other instances stopping or dying, not from this one's events
        // (it takes the scope of each event it stores): looked for once a poll interval, not
        // at every wake, which a burst of updates brings every few milliseconds.
        let mut freed: Option<tokio::time::Instant> = None;
        loop {
            let woken = self.shared.wake.notified();
            if freed.is_none_or(|at| at.elapsed() >= POLL) {
                freed = Some(tokio::time::Instant::now());
                self.take_free_scopes().await;
            }
            self.hand_over().await;
            tokio::select! {
                () = intake.cancelled() => break,
                () = woken => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
        self.shared.pumped.cancel();
        tracing::debug!("stopped taking events from the inbox");
    }

    /// Takes the lease of every scope with waiting events that no live instance holds (its
    /// holder died, or stopped before they started), of the platforms this instance answers.
    async fn take_free_scopes(&self) {
        let failover = self.shared.config.failover;
        match self.shared.store.free_scopes(failover).await {
            Ok(scopes) => {
                for scope in scopes.into_iter().filter(|s| self.answers(s)) {
                    if self.acquire(&scope).await {
                        tracing::info!(%scope, "took over a chat with events waiting");
                    }
                }
            }
            Err(error) => tracing::warn!(error = %error.chain(), "could not read the inbox"),
        }
    }

    /// Whether a platform this instance answers (its handler is served) owns `scope`: an
    /// instance without Discord must not take a Discord channel it cannot answer.
    fn answers(&self, scope: &Scope) -> bool {
        let handlers = lock(&self.shared.handlers);
        let platform = scope.as_str().split(':').next().unwrap_or_default();
        handlers.keys().any(|p| p.as_str() == platform)
    }

    /// Hands the waiting events of held scopes, oldest first, to their handlers, each once.
    async fn hand_over(&self) {
        let shared = &self.shared;
        let waiting = match shared.store.waiting(&shared.config.id, BATCH).await {
            Ok(waiting) => waiting,
            Err(error) => {
                tracing::warn!(error = %error.chain(), "could not read the inbox");
                return;
            }
        };
        // What was handed and has started is judged on the whole read: a read cut at BATCH
        // says nothing of the events past its last, whether or not some scopes are paused.
        let fresh = {
            let mut local = lock(&shared.local);
            not_handed(&mut local.handed, &waiting)
        };
        for event in self.unpaused(waiting) {
            if fresh.contains(&event.seq) {
                lock(&shared.local).handed.insert(event.seq);
                self.deliver(event).await;
            }
        }
    }

    /// The events of `waiting` whose scope is not paused after a takeover, nor waiting for the
    /// markers of a dead holder's replies.
    fn unpaused(&self, waiting: Vec<Waiting>) -> Vec<Waiting> {
        let mut local = lock(&self.shared.local);
        if local.paused.is_empty() && local.marking.is_empty() {
            return waiting;
        }
        let now = tokio::time::Instant::now();
        local.paused.retain(|_, until| *until > now);
        local.marking.retain(|_, (tasks, until)| {
            tasks.retain(|task| !task.is_finished());
            !tasks.is_empty() && *until > now
        });
        waiting
            .into_iter()
            .filter(|e| !local.paused.contains_key(&e.scope))
            .filter(|e| !local.marking.contains_key(&e.scope))
            .collect()
    }

    /// Hands one event to its platform's handler with a receipt; a platform not started yet
    /// gets it on a later read.
    async fn deliver(&self, event: Waiting) {
        let handler = lock(&self.shared.handlers).get(&event.platform).cloned();
        let Some(handler) = handler else {
            lock(&self.shared.local).handed.remove(&event.seq);
            return;
        };
        let running = {
            let mut local = lock(&self.shared.local);
            local
                .used
                .insert(event.scope.clone(), tokio::time::Instant::now());
            Running::count(&self.shared, &mut local, &event.scope)
        };
        let receipt = InboxReceipt {
            shared: self.shared.clone(),
            seq: event.seq,
            running,
        };
        if event.age > TOO_OLD {
            tracing::warn!(scope = %event.scope, age_secs = event.age.as_secs(),
                "an event waited too long; asking to send it again");
            receipt.started().await;
            handler.too_old(&event.payload).await;
            return;
        }
        let ((), left) = with_receipt(Box::new(receipt), handler.deliver(&event.payload)).await;
        if let Some(receipt) = left {
            receipt.started().await;
        }
    }
}

/// Forgets the `handed` events a read of the inbox (`waiting`, oldest first, at most [`BATCH`])
/// no longer lists as waiting (their turns started), and returns the listed ones not handed
/// yet. A read cut at [`BATCH`] does not list the waiting events past its last: those handed
/// are kept.
fn not_handed(handed: &mut HashSet<i64>, waiting: &[Waiting]) -> HashSet<i64> {
    let listed: HashSet<i64> = waiting.iter().map(|e| e.seq).collect();
    let last = waiting.iter().map(|e| e.seq).max().unwrap_or(i64::MIN);
    let complete = waiting.len() < BATCH as usize;
    handed.retain(|seq| listed.contains(seq) || (!complete && *seq > last));
    listed
        .into_iter()
        .filter(|seq| !handed.contains(seq))
        .collect()
}

/// Follows one inbox event from its hand-over to the end of its turn.
struct InboxReceipt {
    shared: Arc<Shared>,
    seq: i64,
    running: Running,
}

#[async_trait]
impl Receipt for InboxReceipt {
    async fn started(&self) {
        if let Err(error) = self.shared.store.start_event(self.seq).await {
            tracing::warn!(scope = %self.running.scope, error = %error.chain(),
                "could not mark an inbox event started");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Duration;

    use super::{BATCH, not_handed};
    use crate::engine::event::PlatformKind;
    use crate::instances::{Scope, Waiting};

    fn waiting(seqs: impl IntoIterator<Item = i64>) -> Vec<Waiting> {
        seqs.into_iter()
            .map(|seq| Waiting {
                seq,
                scope: Scope::named("telegram:1"),
                platform: PlatformKind::Telegram,
                payload: String::new(),
                age: Duration::ZERO,
            })
            .collect()
    }

    #[test]
    fn handed_events_are_forgotten_once_started_and_kept_past_a_cut_read() {
        let mut handed: HashSet<i64> = [5, 7, 900].into();
        // A full read (cut at BATCH) of older events: 900 lies past it and stays handed; 5 is
        // not listed any more (its turn started).
        let full = waiting(10..10 + i64::from(BATCH));
        let fresh = not_handed(&mut handed, &full);
        assert_eq!(fresh.len(), BATCH as usize, "all listed, none handed yet");
        assert_eq!(
            handed,
            [900].into(),
            "5 and 7 started; 900 is past the read"
        );
        // A read that is not cut lists everything waiting: 900 started.
        let fresh = not_handed(&mut handed, &waiting([950]));
        assert_eq!(fresh, [950].into());
        assert!(handed.is_empty());
    }
}
