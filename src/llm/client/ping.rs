//! `parley check --online`: the smallest request that proves the URL, the key and the model.

use std::time::Duration;

use tokio::time::timeout;

use super::OpenAiClient;
use crate::engine::event::ConversationId;
use crate::engine::ports::{ModelError, ModelName, TimeoutKind};
use crate::llm::error;

/// The longest a ping waits for its answer.
const PING_WAIT: Duration = Duration::from_secs(30);

impl OpenAiClient {
    /// Asks `model` for one token, without streaming and without retries.
    pub async fn ping(&self, model: &ModelName) -> Result<(), ModelError> {
        let body = serde_json::json!({
            "model": model.as_str(),
            "messages": [{ "role": "user", "content": "ping" }],
            "max_tokens": 1,
            "stream": false,
        });
        let call = self.post(
            ConversationId::random().to_string(),
            "application/json",
            body.to_string().into_bytes().into(),
        );
        let response = match timeout(PING_WAIT, call).await {
            Ok(Ok(response)) => response,
            Ok(Err(error)) if super::connect_timed_out(&error) => {
                return Err(ModelError::Timeout(TimeoutKind::Connect));
            }
            Ok(Err(_)) => {
                let reason = "could not connect to the model provider";
                return Err(ModelError::Unavailable(reason.into()));
            }
            Err(_) => return Err(ModelError::Timeout(TimeoutKind::Total)),
        };
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let headers = response.headers().clone();
        let body = timeout(PING_WAIT, super::whole_body(response)).await;
        let body = body.ok().flatten().unwrap_or_default();
        let text = String::from_utf8_lossy(&body);
        Err(error::from_status(status, &headers, &text, model))
    }
}
