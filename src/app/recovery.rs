//! Marks, in the chats, the replies a crash interrupted (the last run's, or a dead instance's),
//! once their platform is up.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::engine::event::{ChatKey, PlatformKind};
use crate::engine::ports::InterruptedReply;
use crate::engine::recover::mark_interrupted;
use crate::engine::turn::Engine;
use crate::instances::Marking;
use crate::platform::registry::Platforms;

use super::Runtime;

/// What marking needs from the runtime; cheap to clone.
#[derive(Clone)]
pub(super) struct Marker {
    platforms: Platforms,
    engine: Arc<Engine>,
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl Marker {
    /// Marks on `runtime`'s platforms, until it stops taking messages.
    pub(super) fn of(runtime: &Runtime) -> Self {
        Self {
            platforms: runtime.platforms.clone(),
            engine: runtime.engine.clone(),
            tracker: runtime.tracker.clone(),
            stop: runtime.shutdown.intake.clone(),
        }
    }

    /// One task per interrupted reply: wait for its platform, then edit its last message (or,
    /// when nothing of it showed, send the marker on its own).
    /// Returns each marking's task, by chat.
    pub(super) fn spawn(&self, interrupted: Vec<InterruptedReply>) -> Vec<(ChatKey, Marking)> {
        let chats = interrupted
            .into_iter()
            .filter(|r| r.key.platform != PlatformKind::Console);
        let mut markings = Vec::new();
        for reply in chats {
            let (marker, key) = (self.clone(), reply.key.clone());
            markings.push((
                key,
                self.tracker.spawn(async move { marker.mark(reply).await }),
            ));
        }
        markings
    }

    async fn mark(self, reply: InterruptedReply) {
        let kind = reply.key.platform;
        let Some(platform) = self.platforms.wait_for(kind, &self.stop).await else {
            return;
        };
        let marking = mark_interrupted(platform.as_ref(), self.engine.pacer(kind), &reply);
        let result = tokio::select! {
            _ = self.stop.cancelled() => return,
            result = marking => result,
        };
        match result {
            Ok(()) => tracing::info!(chat = %reply.key, "marked an interrupted reply"),
            Err(error) => {
                tracing::warn!(chat = %reply.key, %error, "could not mark an interrupted reply");
            }
        }
    }
}

/// Marks the replies the last stop interrupted, in their chats.
pub(super) fn spawn(runtime: &Runtime, interrupted: Vec<InterruptedReply>) {
    Marker::of(runtime).spawn(interrupted);
}
