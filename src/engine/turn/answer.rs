//! One turn: build the request, start the turn (the request leaves while its rows are written),
//! stream the reply, record how it ended.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::SemaphorePermit;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Engine;
use crate::engine::attachment::StoredFile;
use crate::engine::attachment::read::read_all;
use crate::engine::controls::{Stopper, stop_button};
use crate::engine::conversation::{Shape, build_messages};
use crate::engine::deliver::{Delivery, Policy};
use crate::engine::event::{ChatKey, Incoming, MessageRef};
use crate::engine::pace::Urgency;
use crate::engine::ports::{
    CompletionRequest, LastReply, MessageRowId, ModelError, ModelName, Platform, ReplyRecord, Role,
    Started, Store, StoreError, StoredMessage, TokenStream, TurnContext, TurnRows, TurnStart,
};
use crate::engine::reply::{ReplyContext, ReplyObserver, ReplyOutcome, StopControl, stream_reply};

/// How long the removal of an older reply's buttons waits for a slot. The chat's next turn
/// waits for it, and while the bot's budget is saturated a cosmetic call starves behind every
/// text (1,000 Telegram chats at once: the next message of a chat waited 43 s at p50 for it);
/// buttons left in place still answer a press, saying the reply is no longer the last.
const BUTTONS_WAIT: Duration = Duration::from_secs(5);

/// One streamed answer: for whom, where, as which stored reply, written into which messages.
pub(super) struct Streamed<'a> {
    /// The message (or press) that asked.
    pub incoming: &'a Incoming,
    /// Where the answer shows.
    pub platform: &'a dyn Platform,
    /// Shutdown.
    pub cancel: &'a CancellationToken,
    /// The stored reply it becomes.
    pub reply: MessageRowId,
    /// The message its first message answers.
    pub reply_to: Option<&'a MessageRef>,
    /// Messages of an earlier answer to write into (a regenerate).
    pub reuse: &'a [MessageRef],
    /// The reply this answer goes on from (a continue): stored before the new text.
    pub before: Option<&'a LastReply>,
    /// With several answers, which one this is and how many there are.
    pub browse: Option<(usize, usize)>,
    /// Whether a Stop button shows while it streams (not for an answer shown again).
    pub stoppable: bool,
    /// When the model was asked; `None` for a stored answer shown again.
    pub asked_at: Option<Instant>,
}

/// Records the platform messages of a streaming reply as they appear, and gives back the
/// completion permit once the model's stream has ended.
struct StoreObserver<'a> {
    store: &'a dyn Store,
    reply: MessageRowId,
    permit: std::sync::Mutex<Option<SemaphorePermit<'a>>>,
    /// A continued reply: what it held before, kept in front of the new text and messages.
    before: Option<&'a LastReply>,
}

#[async_trait]
impl ReplyObserver for StoreObserver<'_> {
    async fn messages_changed(&self, messages: &[MessageRef]) {
        let before = self.before.map_or(&[][..], |b| &b.platform_messages[..]);
        let messages = [before, messages].concat();
        if let Err(error) = self.store.set_reply_messages(self.reply, &messages).await {
            tracing::warn!(error = %error.chain(), "could not record the reply's platform messages");
        }
    }

    async fn text_so_far(&self, text: &str) {
        let before = self.before.map_or("", |b| b.content.as_str());
        let text = format!("{before}{text}");
        if let Err(error) = self.store.set_reply_text(self.reply, &text).await {
            tracing::warn!(error = %error.chain(), "could not record the reply's text so far");
        }
    }

    /// The permit caps concurrent completions, not replies waiting for the platform.
    fn stream_ended(&self) {
        let mut permit = self.permit.lock().unwrap_or_else(|p| p.into_inner());
        permit.take();
    }
}

impl Engine {
    /// Answers the prompt `text` and the files its attachments hold with the model: a turn of
    /// the chat's conversation. Attachments that cannot be read get one short line each first;
    /// with nothing left to answer there is no turn (`None`).
    #[tracing::instrument(
        skip_all,
        fields(platform = %incoming.key.platform, chat = %incoming.key, conversation)
    )]
    pub(super) async fn answer(
        &self,
        incoming: &Incoming,
        text: &str,
        platform: &dyn Platform,
        cancel: &CancellationToken,
        started: &Started<'_>,
    ) -> Result<Option<ReplyOutcome>, StoreError> {
        let (context, previous) = tokio::join!(
            self.store.turn_context(&incoming.key),
            self.store.last_reply(&incoming.key)
        );
        let context = context?;
        // Only the previous reply's last message is needed (its buttons go at the end): its
        // text is not held while this reply streams.
        let previous = previous?.and_then(|last| last.platform_messages.last().cloned());
        let conversation = context.conversation.id;
        tracing::Span::current().record("conversation", tracing::field::display(conversation));
        tracing::debug!(text, attachments = incoming.attachments.len(), "prompt");
        let new = context.new;
        let (model, system) = self.model_and_prompt(context.settings.clone());
        let files = self.read_files(incoming, &model, platform).await;
        if text.is_empty() && files.is_empty() {
            return Ok(None);
        }
        let new_message = StoredMessage {
            role: Role::User,
            author_name: Some(incoming.author.display_name.clone()),
            content: text.to_string(),
            files,
        };
        let request = self.request(incoming, &new_message, (model, system), &context);
        // Invariant: the semaphore is never closed. Held until the stream ends (the observer
        // gives it back), not while the final text waits for the platform.
        let permit = self.completions.acquire().await.ok();
        let asked_at = Instant::now();
        let model = request.model.clone();
        let start = TurnStart {
            conversation,
            create_in: new.then_some(&incoming.key),
            author: &incoming.author,
            content: text,
            files: &new_message.files,
            model: &model,
        };
        let (rows, stream) = self.start(&start, request).await;
        let rows = rows?;
        // The reply row is stored: from now on a death leaves a streaming reply to be marked.
        started.now().await;
        if rows.conversation != conversation {
            tracing::debug!(stored = %rows.conversation, "another turn created the conversation first");
        }
        let streamed = Streamed {
            incoming,
            platform,
            cancel,
            reply: rows.reply,
            reply_to: incoming.reply_to.as_ref(),
            reuse: &[],
            before: None,
            browse: None,
            stoppable: true,
            asked_at: Some(asked_at),
        };
        let outcome = self.stream_into(&streamed, permit, stream).await;
        self.record(rows, &model, &outcome).await?;
        self.keep_choices(rows.reply, &outcome).await?;
        if let Some(previous) = previous {
            self.take_buttons(platform, &incoming.key, &previous).await;
        }
        Ok(Some(outcome))
    }

    /// Streams the model's answer into the chat as the stored reply `turn.reply`, with a Stop
    /// button while it streams and the finished reply's buttons after; gives the completion
    /// permit back once the stream ends.
    pub(super) async fn stream_into(
        &self,
        turn: &Streamed<'_>,
        permit: Option<SemaphorePermit<'_>>,
        stream: Result<TokenStream, ModelError>,
    ) -> ReplyOutcome {
        let (key, reply) = (&turn.incoming.key, turn.reply);
        let stopper = Arc::new(Stopper::under(turn.cancel));
        let button = stop_button(reply);
        let asker = &turn.incoming.author.id;
        let _listed = self.controls.list(reply, key, asker, stopper.clone());
        let observer = StoreObserver {
            store: self.store.as_ref(),
            reply,
            permit: std::sync::Mutex::new(permit),
            before: turn.before,
        };
        let context = ReplyContext {
            platform: turn.platform,
            pacer: self.pacer(key.platform),
            chat: key,
            reply_to: turn.reply_to,
            options: &self.reply_options,
            observer: &observer,
            cancel: turn.cancel,
            stop: turn.stoppable.then_some(StopControl {
                button: &button,
                stopper: &stopper,
            }),
            row: Some(reply),
            reuse: turn.reuse,
            browse: turn.browse,
            asked_at: turn.asked_at,
        };
        stream_reply(&context, stream).await
    }

    /// With several choices (`llm.n` above 1), the reply's set of answers: the one shown first,
    /// then the others in index order, for ◀ and ▶.
    async fn keep_choices(
        &self,
        reply: MessageRowId,
        outcome: &ReplyOutcome,
    ) -> Result<(), StoreError> {
        if outcome.others.is_empty() || outcome.text.is_empty() {
            return Ok(());
        }
        let first = (outcome.text.as_str(), outcome.finish_reason.as_deref());
        let others = outcome
            .others
            .iter()
            .map(|(t, f)| (t.as_str(), f.as_deref()));
        for (text, finish_reason) in std::iter::once(first).chain(others) {
            self.store
                .add_alternative(reply, text, finish_reason)
                .await?;
        }
        Ok(())
    }

    /// Removes the buttons of a reply that is no longer the chat's last (one paced edit of
    /// `message`, its last message), unless no slot comes within [`BUTTONS_WAIT`]; a failure
    /// is logged, nothing else depends on it.
    pub(super) async fn take_buttons(
        &self,
        platform: &dyn Platform,
        key: &ChatKey,
        message: &MessageRef,
    ) {
        let limits = platform.limits(key);
        let pacer = self.pacer(key.platform);
        // Cosmetic: it yields the budget to every first and final text, like a preview.
        let delivery = Delivery::new(pacer, key, limits, Urgency::Preview, Policy::NOTICE);
        let removal = delivery.run(|| platform.set_buttons(key, message, &[]));
        match tokio::time::timeout(BUTTONS_WAIT, removal).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, chat = %key, "could not remove the buttons of an older reply");
            }
            Err(_) => {
                tracing::debug!(chat = %key, "left an older reply's buttons: no slot came in time");
            }
        }
    }

    /// Reads the message's attachments for `model`; what could not be read is told in one
    /// notice before the turn.
    async fn read_files(
        &self,
        incoming: &Incoming,
        model: &ModelName,
        platform: &dyn Platform,
    ) -> Vec<StoredFile> {
        if incoming.attachments.is_empty() {
            return Vec::new();
        }
        let images = self.image_support(model);
        let limits = self.config.attachments;
        let read = read_all(&incoming.attachments, platform, limits, &images).await;
        if !read.problems.is_empty() {
            let (key, reply_to) = (&incoming.key, incoming.reply_to.as_ref());
            self.notify(platform, key, reply_to, &read.problems.join("\n"))
                .await;
        }
        read.files
    }

    /// The turn's request: the system prompt, the history within its budget, the new message.
    pub(super) fn request(
        &self,
        incoming: &Incoming,
        new_message: &StoredMessage,
        (model, system): (ModelName, Option<String>),
        context: &TurnContext,
    ) -> CompletionRequest {
        let shape = Shape {
            private: incoming.private,
            budget: self.config.history_budget,
            image_tokens: self.config.image_tokens,
            images: self.config.image_models.contains(&model),
        };
        CompletionRequest {
            conversation: context.conversation.id,
            model,
            messages: build_messages(system.as_deref(), &context.history, new_message, shape),
            n: context.settings.n,
        }
    }

    /// Starts the turn: the request leaves while the user message and the reply row are
    /// written (with the conversation, on a place's first turn). Streaming starts once both are
    /// done; a failed write still lets the stream close.
    async fn start(
        &self,
        start: &TurnStart<'_>,
        request: CompletionRequest,
    ) -> (
        Result<TurnRows, StoreError>,
        Result<TokenStream, ModelError>,
    ) {
        tokio::join!(self.store.start_turn(start), self.model.complete(request))
    }

    /// Records how the reply ended.
    async fn record(
        &self,
        rows: TurnRows,
        model: &ModelName,
        outcome: &ReplyOutcome,
    ) -> Result<(), StoreError> {
        let record = reply_record(outcome);
        self.store.finish_reply(rows.reply, &record).await?;
        tracing::info!(
            conversation = %rows.conversation,
            model = %model,
            status = outcome.status.as_str(),
            chars = outcome.text.chars().count(),
            "reply finished"
        );
        Ok(())
    }
}

/// What the store records of how a reply ended.
pub(super) fn reply_record(outcome: &ReplyOutcome) -> ReplyRecord {
    ReplyRecord {
        content: outcome.text.clone(),
        status: outcome.status,
        reason: outcome.reason.clone(),
        platform_messages: outcome.messages.clone(),
        usage: outcome.usage,
        finish_reason: outcome.finish_reason.clone(),
    }
}
