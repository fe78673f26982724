//! The platform-neutral commands' answers: who may run them, and what each says.

use super::Engine;
use super::notices::{STORE_TROUBLE, join_models};
use crate::engine::command::{Command, HELP, SystemAction};
use crate::engine::event::{ChatKey, Incoming};
use crate::engine::ports::{ModelName, Platform, StoreError, UsageTotals};

/// The answer to a settings command from someone who may not change settings.
pub const ADMINS_ONLY: &str = "Only admins can change this chat's settings here.";

impl Engine {
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
            // Turns of their own (`Engine::redo`); never answered here.
            Command::Regenerate(_) | Command::Continue(_) | Command::Show { .. } => HELP.into(),
            Command::N(Some(n @ 1..=4)) => {
                self.store.set_n(key, Some(*n)).await?;
                format!("Each message here now gets {n} answer(s); ◀ ▶ browse them.")
            }
            Command::N(Some(_)) => "Use /n 1 to /n 4.".into(),
            Command::N(None) => match self.store.settings(key).await?.n {
                Some(n) => format!("Each message here gets {n} answer(s); /n 1..4 changes it."),
                None => "This chat uses the configured number of answers (llm.n); /n 1..4 \
                         changes it."
                    .into(),
            },
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
