//! One turn of a conversation: store the message, build the request, stream the reply and
//! record how it ended; and the platform-neutral commands.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::command::{Command, HELP, SystemAction};
use super::conversation::build_messages;
use super::deliver::{self, Policy};
use super::event::{ChatKey, Content, Incoming, MessageRef, PlatformKind};
use super::pace::Pacer;
use super::ports::{
    ChatSettings, CompletionRequest, MessageRowId, Model, ModelError, ModelName, Platform,
    ReplyRecord, Role, Store, StoreError, StoredMessage, TurnContext, TurnStart, UsageTotals,
};
use super::reply::{ReplyContext, ReplyObserver, ReplyOptions, ReplyOutcome, stream_reply};

/// What the engine needs to know from the configuration.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Models users may choose.
    pub models: Vec<ModelName>,
    /// The model of chats that did not choose one.
    pub default_model: ModelName,
    /// The default system prompt.
    pub system_prompt: Option<String>,
    /// Estimated tokens of history per request.
    pub history_budget: usize,
    /// Completions in flight at once.
    pub max_concurrent: usize,
    /// When a "thinking…" placeholder shows.
    pub thinking_after: Option<Duration>,
}

/// The conversation engine, shared by every platform and conversation.
pub struct Engine {
    store: Arc<dyn Store>,
    model: Arc<dyn Model>,
    config: EngineConfig,
    completions: Semaphore,
    pacers: HashMap<PlatformKind, Pacer>,
    reply_options: ReplyOptions,
}

/// Shown when the database fails; the details go to the log.
const STORE_TROUBLE: &str = "Sorry — I could not reach my database. Please try again in a moment.";

/// The answer to a settings command from someone who may not change settings.
pub const ADMINS_ONLY: &str = "Only admins can change this chat's settings here.";

/// The chat text for a model error; unknown models list the valid ones.
pub fn describe_error(error: &ModelError, models: &[ModelName]) -> String {
    match error {
        ModelError::UnknownModel(name) => format!(
            "Unknown model `{name}` — valid ones: {}. Switch with /model NAME.",
            join_models(models)
        ),
        other => other.user_message(),
    }
}

fn join_models(models: &[ModelName]) -> String {
    models
        .iter()
        .map(ModelName::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Records the platform messages of a streaming reply as they appear, and gives back the
/// completion permit once the model's stream has ended.
struct StoreObserver<'a> {
    store: &'a dyn Store,
    reply: MessageRowId,
    permit: std::sync::Mutex<Option<SemaphorePermit<'a>>>,
}

#[async_trait]
impl ReplyObserver for StoreObserver<'_> {
    async fn messages_changed(&self, messages: &[MessageRef]) {
        if let Err(error) = self.store.set_reply_messages(self.reply, messages).await {
            tracing::warn!(error = %error.chain(), "could not record the reply's platform messages");
        }
    }

    async fn text_so_far(&self, text: &str) {
        if let Err(error) = self.store.set_reply_text(self.reply, text).await {
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
    /// An engine over a store and a model.
    pub fn new(store: Arc<dyn Store>, model: Arc<dyn Model>, config: EngineConfig) -> Self {
        let models = config.models.clone();
        let reply_options = ReplyOptions {
            thinking_after: config.thinking_after,
            error_text: Arc::new(move |error: &ModelError| describe_error(error, &models)),
        };
        let pacers = [
            PlatformKind::Console,
            PlatformKind::Telegram,
            PlatformKind::Discord,
        ]
        .into_iter()
        .map(|kind| (kind, Pacer::default()))
        .collect();
        Self {
            store,
            model,
            completions: Semaphore::new(config.max_concurrent.max(1)),
            config,
            pacers,
            reply_options,
        }
    }

    /// The store the engine writes to.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The pacer shared by every reply on `platform`.
    pub fn pacer(&self, platform: PlatformKind) -> &Pacer {
        // Invariant: `new` creates a pacer for every PlatformKind.
        &self.pacers[&platform]
    }

    /// Handles one inbound message: a command is answered, a prompt is answered by the model.
    pub async fn handle(
        &self,
        incoming: &Incoming,
        platform: &dyn Platform,
        cancel: &CancellationToken,
    ) -> Option<ReplyOutcome> {
        match &incoming.content {
            Content::Command(command) => {
                let answer = self.run_command(incoming, command, platform).await;
                let reply_to = incoming.reply_to.as_ref();
                self.deliver(platform, &incoming.key, reply_to, &answer, Policy::ANSWER)
                    .await;
                None
            }
            Content::Prompt(text) => match self.answer(incoming, text, platform, cancel).await {
                Ok(outcome) => Some(outcome),
                Err(error) => {
                    tracing::error!(error = %error.chain(), chat = %incoming.key, "turn failed in the store");
                    self.notify(
                        platform,
                        &incoming.key,
                        incoming.reply_to.as_ref(),
                        STORE_TROUBLE,
                    )
                    .await;
                    None
                }
            },
        }
    }

    /// The model a chat uses: its own choice while that is still offered, else the default;
    /// and its system prompt, else the configured one.
    fn model_and_prompt(&self, settings: ChatSettings) -> (ModelName, Option<String>) {
        let model = settings
            .model
            .filter(|m| self.config.models.contains(m))
            .unwrap_or_else(|| self.config.default_model.clone());
        let system = settings
            .system_prompt
            .or_else(|| self.config.system_prompt.clone());
        (model, system)
    }

    async fn chat_model(&self, key: &ChatKey) -> Result<(ModelName, Option<String>), StoreError> {
        Ok(self.model_and_prompt(self.store.settings(key).await?))
    }

    #[tracing::instrument(
        skip_all,
        fields(platform = %incoming.key.platform, chat = %incoming.key, conversation)
    )]
    async fn answer(
        &self,
        incoming: &Incoming,
        text: &str,
        platform: &dyn Platform,
        cancel: &CancellationToken,
    ) -> Result<ReplyOutcome, StoreError> {
        let key = &incoming.key;
        let TurnContext {
            conversation,
            new,
            settings,
            history,
        } = self.store.turn_context(key).await?;
        tracing::Span::current().record("conversation", tracing::field::display(conversation.id));
        tracing::debug!(text, "prompt");
        let (model, system) = self.model_and_prompt(settings);
        let new_message = StoredMessage {
            role: Role::User,
            author_name: Some(incoming.author.display_name.clone()),
            content: text.to_string(),
        };
        let request = CompletionRequest {
            conversation: conversation.id,
            model: model.clone(),
            messages: build_messages(
                system.as_deref(),
                &history,
                &new_message,
                incoming.private,
                self.config.history_budget,
            ),
        };
        // Invariant: the semaphore is never closed. Held until the stream ends (the observer
        // gives it back), not while the final text waits for the platform.
        let permit = self.completions.acquire().await.ok();
        let asked_at = Instant::now();
        // The request leaves while the user message and the reply row are written (with the
        // conversation, on a place's first turn); streaming starts once both are done (a failed
        // write still lets the stream close).
        let start = TurnStart {
            conversation: conversation.id,
            create_in: new.then_some(key),
            author: &incoming.author,
            content: text,
            model: &model,
        };
        let (rows, stream) =
            tokio::join!(self.store.start_turn(&start), self.model.complete(request));
        let rows = rows?;
        if rows.conversation != conversation.id {
            tracing::debug!(stored = %rows.conversation, "another turn created the conversation first");
        }
        let observer = StoreObserver {
            store: self.store.as_ref(),
            reply: rows.reply,
            permit: std::sync::Mutex::new(permit),
        };
        let context = ReplyContext {
            platform,
            pacer: self.pacer(key.platform),
            chat: key,
            reply_to: incoming.reply_to.as_ref(),
            options: &self.reply_options,
            observer: &observer,
            cancel,
            asked_at,
        };
        let outcome = stream_reply(&context, stream).await;
        let record = ReplyRecord {
            content: outcome.text.clone(),
            status: outcome.status,
            reason: outcome.reason.clone(),
            platform_messages: outcome.messages.clone(),
            usage: outcome.usage,
        };
        self.store.finish_reply(rows.reply, &record).await?;
        tracing::info!(
            chat = %key,
            conversation = %rows.conversation,
            model = %model,
            status = outcome.status.as_str(),
            chars = outcome.text.chars().count(),
            "reply finished"
        );
        Ok(outcome)
    }

    /// Runs a command and returns the answer to show; a settings command from someone not
    /// known to be allowed asks the platform whether they administer the chat.
    pub async fn run_command(
        &self,
        incoming: &Incoming,
        command: &Command,
        platform: &dyn Platform,
    ) -> String {
        if command.changes_settings()
            && !incoming.may_configure
            && !platform
                .is_chat_admin(&incoming.key, &incoming.author.id)
                .await
        {
            return ADMINS_ONLY.into();
        }
        match self.command_answer(&incoming.key, command).await {
            Ok(answer) => answer,
            Err(error) => {
                tracing::error!(error = %error.chain(), chat = %incoming.key, "command failed in the store");
                STORE_TROUBLE.into()
            }
        }
    }

    async fn command_answer(&self, key: &ChatKey, command: &Command) -> Result<String, StoreError> {
        Ok(match command {
            Command::Help => HELP.into(),
            Command::Reset => {
                self.store.reset(key).await?;
                "Started a new conversation: I have forgotten everything said before.".into()
            }
            Command::Model(None) => {
                let (model, _) = self.chat_model(key).await?;
                format!(
                    "Model: {model}\nAvailable: {}",
                    join_models(&self.config.models)
                )
            }
            Command::Model(Some(name)) => self.switch_model(key, name).await?,
            Command::System(action) => self.system_prompt(key, action).await?,
            Command::Usage => describe_usage(&self.store.chat_usage(key).await?),
        })
    }

    async fn switch_model(&self, key: &ChatKey, name: &str) -> Result<String, StoreError> {
        let model = ModelName::new(name);
        if !self.config.models.contains(&model) {
            return Ok(format!(
                "Unknown model `{name}` — valid ones: {}.",
                join_models(&self.config.models)
            ));
        }
        self.store.set_model(key, Some(&model)).await?;
        Ok(format!("Model for this chat: {model}"))
    }

    async fn system_prompt(
        &self,
        key: &ChatKey,
        action: &SystemAction,
    ) -> Result<String, StoreError> {
        Ok(match action {
            SystemAction::Show => match self.chat_model(key).await?.1 {
                Some(prompt) => format!("System prompt:\n{prompt}"),
                None => "No system prompt is set.".into(),
            },
            SystemAction::Set(prompt) => {
                self.store.set_system_prompt(key, Some(prompt)).await?;
                "System prompt set for this chat.".into()
            }
            SystemAction::Clear => {
                self.store.set_system_prompt(key, None).await?;
                "System prompt reset to the default.".into()
            }
        })
    }

    /// Sends a short message (an error, "busy"), cut to one message, paced like any other
    /// call; a failure is logged here.
    pub async fn notify(
        &self,
        platform: &dyn Platform,
        key: &ChatKey,
        reply_to: Option<&MessageRef>,
        text: &str,
    ) {
        self.deliver(platform, key, reply_to, text, Policy::NOTICE)
            .await;
    }

    /// Sends `text` to `key` through the one delivery path, as `policy` says.
    async fn deliver(
        &self,
        platform: &dyn Platform,
        key: &ChatKey,
        reply_to: Option<&MessageRef>,
        text: &str,
        policy: Policy,
    ) {
        let pacer = self.pacer(platform.kind());
        let sent = deliver::send(platform, pacer, key, reply_to, text, policy).await;
        if let Err(error) = sent {
            tracing::warn!(%error, chat = %key, "could not send a notice");
        }
    }
}

/// The answer to `/usage`.
pub fn describe_usage(totals: &UsageTotals) -> String {
    let u = &totals.usage;
    if totals.replies == 0 {
        return "No replies in this chat yet.".into();
    }
    let cached_share = if u.prompt_tokens == 0 {
        0.0
    } else {
        100.0 * u.cached_tokens as f64 / u.prompt_tokens as f64
    };
    format!(
        "Usage in this chat over {} replies: {} prompt tokens ({} cached, {cached_share:.0}%), {} completion tokens ({} reasoning).",
        totals.replies, u.prompt_tokens, u.cached_tokens, u.completion_tokens, u.reasoning_tokens
    )
}
