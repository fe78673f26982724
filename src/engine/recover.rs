//! After a crash: the last message of each reply the crash interrupted is edited to say so,
//! keeping the text recorded while it streamed.

use super::deliver::{Delivery, Policy};
use super::pace::{Pacer, Urgency};
use super::ports::{InterruptedReply, Limits, Phase, Platform, PlatformError};
use super::reply::{INTERRUPTED, RESTARTED};
use super::split;

/// What the last message of an interrupted reply becomes: its text and the marker, or `None`
/// when they do not fit in one message (the marker is then sent on its own).
pub fn marked_text(reply: &InterruptedReply, limits: &Limits) -> Option<String> {
    let marker = format!("{INTERRUPTED}{RESTARTED}");
    if reply.content.is_empty() {
        return Some(marker);
    }
    let mut pieces = split::split(&reply.content, limits.max_len, limits.unit);
    // The text recorded may run past the last message that was sent: mark that one.
    let last = reply.platform_messages.len().clamp(1, pieces.len().max(1));
    pieces.truncate(last);
    let text = pieces.pop().map(|piece| piece.text).unwrap_or_default();
    let marked = format!("{text}\n\n{marker}");
    (limits.unit.len(&marked) <= limits.max_len).then_some(marked)
}

/// Marks `reply` as interrupted in the chat: edits its last message, or answers it with the
/// marker when the text leaves no room. A reply interrupted before anything of it showed gets
/// the marker as a message of its own: its asker would otherwise wait for an answer that never
/// comes. Paced like any reply; retries rate limits.
pub async fn mark_interrupted(
    platform: &dyn Platform,
    pacer: &Pacer,
    reply: &InterruptedReply,
) -> Result<(), PlatformError> {
    let (chat, limits) = (&reply.key, platform.limits(&reply.key));
    let last = reply.platform_messages.last();
    let marked = last.and_then(|_| marked_text(reply, &limits));
    let marker = format!("{INTERRUPTED}{RESTARTED}");
    // On its own, the marker is the reply's first text: it goes before the chat's next
    // answer's first text, queued after it.
    let urgency = match last {
        Some(_) => Urgency::Final,
        None => Urgency::First,
    };
    let delivery = Delivery::new(pacer, chat, limits, urgency, Policy::MARKER);
    let marking = delivery.run(|| async {
        match (last, &marked) {
            (Some(last), Some(text)) => platform.edit(chat, last, text, Phase::Final).await,
            (_, _) => platform.send(chat, last, &marker, Phase::Final).await,
        }
    });
    marking.await.map(|_| ())
}

#[cfg(test)]
mod tests;
