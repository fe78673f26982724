//! The conversation engine: one inbound message is a command (answered in `commands`) or a
//! prompt (a turn, in `answer`: build the request, start the turn, stream the reply, record
//! it); short answers go out through `notices`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::attachment::read::{AttachmentLimits, ImageSupport};
use super::command::Command;
use super::controls::Controls;
use super::deliver::Policy;
use super::event::{ChatKey, Content, Incoming, PlatformKind};
use super::pace::Pacer;
use super::ports::{
    ChatSettings, MessageRowId, Model, ModelError, ModelName, Platform, Started, Store, StoreError,
};
use super::reply::{ReplyOptions, ReplyOutcome};

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
    /// The estimate an image counts for in the history budget.
    pub image_tokens: usize,
    /// Models that read images (`llm.image_models`).
    pub image_models: Vec<ModelName>,
    /// The largest attachments read, per kind.
    pub attachments: AttachmentLimits,
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
    controls: Controls,
}

mod answer;
mod commands;
mod notices;
mod redo;
mod show;

pub use commands::{ADMINS_ONLY, describe_usage};
use notices::STORE_TROUBLE;
pub use notices::describe_error;

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
            controls: Controls::default(),
        }
    }

    /// The store the engine writes to.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The replies streaming now, which the Stop controls act on.
    pub fn controls(&self) -> &Controls {
        &self.controls
    }

    /// True when `reply` is the newest reply of `key`'s current conversation, the only one its
    /// Regenerate and Continue act on (a failing store says no).
    pub async fn is_last_reply(&self, key: &ChatKey, reply: MessageRowId) -> bool {
        let last = self.store.last_reply(key).await;
        last.is_ok_and(|last| last.is_some_and(|l| l.id == reply))
    }

    /// The pacer shared by every reply on `platform`.
    pub fn pacer(&self, platform: PlatformKind) -> &Pacer {
        // Invariant: `new` creates a pacer for every PlatformKind.
        &self.pacers[&platform]
    }

    /// Handles one inbound message: a command is answered, a prompt is answered by the model.
    /// Says the turn `started` once a death would leave something to recover: a prompt's reply
    /// row is stored, a command at once.
    pub async fn handle(
        &self,
        incoming: &Incoming,
        platform: &dyn Platform,
        cancel: &CancellationToken,
        started: &Started<'_>,
    ) -> Option<ReplyOutcome> {
        if !matches!(incoming.content, Content::Prompt(_)) {
            started.now().await;
        }
        match &incoming.content {
            Content::Command(Command::Show {
                reply,
                index,
                press,
            }) => {
                let shown = (*reply, *index, *press);
                self.show(incoming, shown, platform, cancel).await
            }
            Content::Command(command @ (Command::Regenerate(_) | Command::Continue(_))) => {
                self.redo_command(incoming, command, platform, cancel).await
            }
            Content::Command(command) => {
                let answer = self.run_command(incoming, command, platform).await;
                let reply_to = incoming.reply_to.as_ref();
                self.deliver(platform, &incoming.key, reply_to, &answer, Policy::ANSWER)
                    .await;
                None
            }
            Content::Prompt(text) => {
                match self.answer(incoming, text, platform, cancel, started).await {
                    Ok(outcome) => outcome,
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
                }
            }
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

    /// Whether `model` reads images, and which model to suggest when it does not.
    fn image_support(&self, model: &ModelName) -> ImageSupport {
        let readers = &self.config.image_models;
        if readers.contains(model) {
            return ImageSupport::Reads;
        }
        let suggest = self.config.models.iter().find(|m| readers.contains(m));
        ImageSupport::Cannot {
            model: model.clone(),
            suggest: suggest.cloned(),
        }
    }

    async fn chat_model(&self, key: &ChatKey) -> Result<(ModelName, Option<String>), StoreError> {
        Ok(self.model_and_prompt(self.store.settings(key).await?))
    }
}
