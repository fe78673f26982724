//! ◀ and ▶ (and `/alt N`): show another answer of the chat's last reply in its messages, paced
//! like any reply, and make it the one the history holds.

use futures_util::stream;
use tokio_util::sync::CancellationToken;

use super::Engine;
use super::answer::Streamed;
use super::notices::STORE_TROUBLE;
use crate::engine::controls::NOT_LAST;
use crate::engine::event::Incoming;
use crate::engine::ports::{MessageRowId, Platform, StoreError, StreamEvent, TokenStream};
use crate::engine::reply::ReplyOutcome;

/// What a Show that names no answer of the reply is told.
fn no_such(count: usize) -> String {
    match count {
        0 | 1 => "My last reply has one answer; 🔄 Regenerate adds another.".into(),
        _ => format!("My last reply has answers 1 to {count}: /alt N shows one."),
    }
}

impl Engine {
    /// Shows the answer at `index` of the reply `target` names (the chat's last when `None`).
    /// A press that a newer ◀/▶ press on the same reply has overtaken does nothing.
    pub(super) async fn show(
        &self,
        incoming: &Incoming,
        (target, index, press): (Option<MessageRowId>, usize, u64),
        platform: &dyn Platform,
        cancel: &CancellationToken,
    ) -> Option<ReplyOutcome> {
        if target.is_some_and(|t| !self.controls().is_newest_show(t, press)) {
            return None;
        }
        let refusal = match self
            .try_show(incoming, target, index, platform, cancel)
            .await
        {
            Ok(Ok(outcome)) => return Some(outcome),
            Ok(Err(refusal)) => refusal,
            Err(error) => {
                tracing::error!(error = %error.chain(), chat = %incoming.key, "show failed in the store");
                STORE_TROUBLE.into()
            }
        };
        let (key, reply_to) = (&incoming.key, incoming.reply_to.as_ref());
        self.notify(platform, key, reply_to, &refusal).await;
        None
    }

    async fn try_show(
        &self,
        incoming: &Incoming,
        target: Option<MessageRowId>,
        index: usize,
        platform: &dyn Platform,
        cancel: &CancellationToken,
    ) -> Result<Result<ReplyOutcome, String>, StoreError> {
        let last = match (self.store.last_reply(&incoming.key).await?, target) {
            (Some(last), Some(target)) if last.id != target => return Ok(Err(NOT_LAST.into())),
            (Some(last), _) => last,
            (None, _) => return Ok(Err(no_such(0))),
        };
        let count = self.store.alternatives(last.id).await?.len();
        let shown = match count {
            2.. => self.store.show_alternative(last.id, index).await?,
            _ => None,
        };
        let Some((text, finish_reason)) = shown else {
            return Ok(Err(no_such(count)));
        };
        // The answer as a finished stream: the reply loop fits it into the reply's messages
        // (editing, sending or deleting what differs), paced, with the buttons of answer `index`.
        let events = [
            Ok(StreamEvent::Content(text)),
            Ok(StreamEvent::Finished(finish_reason.unwrap_or_default())),
        ];
        let answer = TokenStream::new(stream::iter(events));
        let streamed = Streamed {
            incoming,
            platform,
            cancel,
            reply: last.id,
            reply_to: None,
            reuse: &last.platform_messages,
            before: None,
            browse: Some((index, count)),
            stoppable: false,
            asked_at: None,
        };
        Ok(Ok(self.stream_into(&streamed, None, Ok(answer)).await))
    }
}
