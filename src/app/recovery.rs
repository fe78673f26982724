//! Marks, in the chats, the replies the last crash interrupted, once their platform is up.

use crate::engine::event::PlatformKind;
use crate::engine::ports::InterruptedReply;
use crate::engine::recover::mark_interrupted;

use super::Runtime;

/// One task per interrupted reply: wait for its platform, then edit its last message.
pub(super) fn spawn(runtime: &Runtime, interrupted: Vec<InterruptedReply>) {
    let shown = interrupted
        .into_iter()
        .filter(|r| r.key.platform != PlatformKind::Console && !r.platform_messages.is_empty());
    for reply in shown {
        let platforms = runtime.platforms.clone();
        let engine = runtime.engine.clone();
        let stop = runtime.shutdown.intake.clone();
        runtime.tracker.spawn(async move {
            let kind = reply.key.platform;
            let Some(platform) = platforms.wait_for(kind, &stop).await else {
                return;
            };
            let marking = mark_interrupted(platform.as_ref(), engine.pacer(kind), &reply);
            let result = tokio::select! {
                _ = stop.cancelled() => return,
                result = marking => result,
            };
            match result {
                Ok(()) => tracing::info!(chat = %reply.key, "marked an interrupted reply"),
                Err(error) => {
                    tracing::warn!(chat = %reply.key, %error, "could not mark an interrupted reply");
                }
            }
        });
    }
}
