//! Regenerate and Continue: a turn that asks again for the chat's last reply, with exactly the
//! request that produced it, or asks the model to go on where `max_tokens` cut it; either is
//! written into the same stored reply (its row is what the buttons name).

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Engine;
use super::answer::{Streamed, reply_record};
use super::notices::STORE_TROUBLE;
use crate::engine::command::Command;
use crate::engine::controls::{CONTINUE_PROMPT, LENGTH, NOT_LAST};
use crate::engine::event::{Incoming, MessageRef};
use crate::engine::ports::{
    CompletionRequest, LastReply, MessageRowId, ModelName, Platform, ReplyStatus, Role, StoreError,
    StoredMessage, TurnContext,
};
use crate::engine::reply::ReplyOutcome;

/// The answer to /regen or /continue in a chat without a reply.
const NOTHING: &str = "There is no reply here to regenerate or continue yet.";
/// The answer to Continue on a reply the model finished.
const NOT_CUT: &str = "That reply was not cut short: there is nothing to continue.";
/// Which control a redo turn runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Redo {
    /// Ask again; the old answer is kept as an alternative.
    Regenerate,
    /// Go on where the reply was cut; the stored reply becomes the whole text.
    Continue,
}

impl Engine {
    /// Runs the Regenerate or Continue `command` asks for; any other command is not one and
    /// does nothing (`None`).
    pub(super) async fn redo_command(
        &self,
        incoming: &Incoming,
        command: &Command,
        platform: &dyn Platform,
        cancel: &CancellationToken,
    ) -> Option<ReplyOutcome> {
        let (kind, target) = match command {
            Command::Regenerate(target) => (Redo::Regenerate, *target),
            Command::Continue(target) => (Redo::Continue, *target),
            _ => return None,
        };
        self.redo(incoming, kind, target, platform, cancel).await
    }

    /// Runs a Regenerate or Continue for the reply `target` names (the chat's last when
    /// `None`); a reply that is not the last, or a store failure, gets a short answer instead.
    async fn redo(
        &self,
        incoming: &Incoming,
        kind: Redo,
        target: Option<MessageRowId>,
        platform: &dyn Platform,
        cancel: &CancellationToken,
    ) -> Option<ReplyOutcome> {
        let result = self.try_redo(incoming, kind, target, platform, cancel);
        let result = result.await;
        // A press claimed its reply when it was queued (`Controls::claim`); it is done now.
        if let Some(target) = target {
            self.controls().release(target);
        }
        let refusal = match result {
            Ok(Ok(outcome)) => return Some(outcome),
            Ok(Err(refusal)) => refusal,
            Err(error) => {
                tracing::error!(error = %error.chain(), chat = %incoming.key, "redo failed in the store");
                STORE_TROUBLE
            }
        };
        let (key, reply_to) = (&incoming.key, incoming.reply_to.as_ref());
        self.notify(platform, key, reply_to, refusal).await;
        None
    }

    async fn try_redo(
        &self,
        incoming: &Incoming,
        kind: Redo,
        target: Option<MessageRowId>,
        platform: &dyn Platform,
        cancel: &CancellationToken,
    ) -> Result<Result<ReplyOutcome, &'static str>, StoreError> {
        let key = &incoming.key;
        let (context, last) =
            tokio::join!(self.store.turn_context(key), self.store.last_reply(key));
        let last = match (last?, target) {
            (None, _) => return Ok(Err(NOTHING)),
            (Some(last), Some(target)) if last.id != target => return Ok(Err(NOT_LAST)),
            (Some(last), _) => last,
        };
        if kind == Redo::Continue && !can_continue(&last) {
            return Ok(Err(NOT_CUT));
        }
        let Some(request) = self.redo_request(incoming, kind, context?) else {
            return Ok(Err(NOT_LAST));
        };
        // Invariant: the semaphore is never closed (see `answer`).
        let permit = self.completions.acquire().await.ok();
        let asked_at = Instant::now();
        let model = request.model.clone();
        self.store
            .reopen_reply(last.id, kind == Redo::Regenerate)
            .await?;
        // A regenerate adds an answer to the reply's set (its first is the old one). A continue
        // goes on with the answer shown, which stays where it is in the set.
        let set = self.store.alternatives(last.id).await?;
        let browse = match kind {
            Redo::Regenerate => {
                let count = set.len().max(1) + 1;
                Some((count - 1, count))
            }
            Redo::Continue => {
                let shown = set.iter().position(|answer| *answer == last.content);
                shown.map(|index| (index, set.len()))
            }
        };
        let stream = match kind {
            Redo::Regenerate => self.model.complete(request).await,
            // The cut reply's buttons go while the request leaves.
            Redo::Continue => match last.platform_messages.last() {
                Some(message) => {
                    let buttons_gone = self.take_buttons(platform, key, message);
                    tokio::join!(self.model.complete(request), buttons_gone).0
                }
                None => self.model.complete(request).await,
            },
        };
        let reuse: &[MessageRef] = match kind {
            Redo::Regenerate => &last.platform_messages,
            Redo::Continue => &[],
        };
        let streamed = Streamed {
            incoming,
            platform,
            cancel,
            reply: last.id,
            reply_to: None,
            reuse,
            before: (kind == Redo::Continue).then_some(&last),
            browse,
            stoppable: true,
            asked_at: Some(asked_at),
        };
        let outcome = self.stream_into(&streamed, permit, stream).await;
        let shown = browse.map(|(index, _)| index);
        self.record_redo((kind, shown), &last, &model, &outcome)
            .await?;
        Ok(Ok(outcome))
    }

    /// The request of a redo. Regenerate: the history before the reply and the message it
    /// answered, built as its turn built them, so the request is the same bytes. Continue: the
    /// history with the cut reply, and a request to go on. `None` when the history does not end
    /// with that reply.
    fn redo_request(
        &self,
        incoming: &Incoming,
        kind: Redo,
        mut context: TurnContext,
    ) -> Option<CompletionRequest> {
        let chosen = self.model_and_prompt(context.settings.clone());
        let history = &mut context.history;
        let new_message = match kind {
            Redo::Regenerate => {
                if history.last().is_some_and(|m| m.role == Role::Assistant) {
                    history.pop();
                }
                history.pop().filter(|m| m.role == Role::User)?
            }
            Redo::Continue => StoredMessage {
                role: Role::User,
                author_name: Some(incoming.author.display_name.clone()),
                content: CONTINUE_PROMPT.into(),
                files: Vec::new(),
            },
        };
        Some(self.request(incoming, &new_message, chosen, &context))
    }

    /// Records a redo. A regenerate that got no text keeps the old answer; a continue's reply
    /// is the cut text and the continuation, in all their messages, and so becomes the answer
    /// `shown` of its set, when it has one.
    async fn record_redo(
        &self,
        (kind, shown): (Redo, Option<usize>),
        last: &LastReply,
        model: &ModelName,
        outcome: &ReplyOutcome,
    ) -> Result<(), StoreError> {
        let got_text = !outcome.text.is_empty();
        let mut record = reply_record(outcome);
        if kind == Redo::Continue {
            record.content = format!("{}{}", last.content, outcome.text);
            record.platform_messages = [&last.platform_messages[..], &outcome.messages].concat();
        }
        if !got_text {
            record.content.clone_from(&last.content);
            record.status = last.status;
            record.finish_reason.clone_from(&last.finish_reason);
        }
        self.store.finish_reply(last.id, &record).await?;
        let finish = record.finish_reason.as_deref();
        match (kind, shown) {
            (Redo::Regenerate, _) if got_text => {
                let store = &self.store;
                store
                    .add_alternative(last.id, &record.content, finish)
                    .await?;
            }
            (Redo::Continue, Some(index)) if got_text => {
                let store = &self.store;
                store
                    .set_alternative(last.id, index, &record.content, finish)
                    .await?;
            }
            _ => {}
        }
        tracing::info!(
            reply = last.id.0,
            model = %model,
            control = ?kind,
            status = record.status.as_str(),
            "reply redone"
        );
        Ok(())
    }
}

/// True when a reply can be continued: `max_tokens` cut it, or it stopped part way.
fn can_continue(reply: &LastReply) -> bool {
    reply.finish_reason.as_deref() == Some(LENGTH) || reply.status == ReplyStatus::Partial
}
