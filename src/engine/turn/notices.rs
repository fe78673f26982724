//! Short answers: a model error in words, and notices ("busy", a store failure) sent through the
//! one delivery path.

use super::Engine;
use crate::engine::deliver::{self, Policy};
use crate::engine::event::{ChatKey, MessageRef};
use crate::engine::ports::{ModelError, ModelName, Platform};

/// Shown when the database fails; the details go to the log.
pub(super) const STORE_TROUBLE: &str =
    "Sorry — I could not reach my database. Please try again in a moment.";

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

pub(super) fn join_models(models: &[ModelName]) -> String {
    models
        .iter()
        .map(ModelName::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Engine {
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
    pub(super) async fn deliver(
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
