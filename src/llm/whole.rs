//! Turns a non-streamed `chat.completion` body into the same events a stream would give.

use super::error::{error_text, truncate};
use super::wire::Completion;
use crate::engine::ports::{ModelError, StreamEvent};

/// The events of a whole answer: thinking (if any), content, usage, then the finish reason.
pub(super) fn events(body: &[u8]) -> Result<Vec<StreamEvent>, ModelError> {
    let completion: Completion = serde_json::from_slice(body).map_err(|_| {
        ModelError::Unavailable("the model provider sent an unreadable answer".into())
    })?;
    if let Some(error) = completion.error {
        let text = error_text(&serde_json::json!({ "error": error }));
        return Err(ModelError::Upstream(truncate(&text.unwrap_or_default())));
    }
    let choice = completion
        .choices
        .into_iter()
        .next()
        .ok_or(ModelError::Incomplete)?;
    let mut events = Vec::with_capacity(4);
    if let Some(thinking) = choice.message.reasoning_content.filter(|t| !t.is_empty()) {
        events.push(StreamEvent::Thinking(thinking));
    }
    events.push(StreamEvent::Content(
        choice.message.content.unwrap_or_default(),
    ));
    if let Some(usage) = completion.usage {
        events.push(StreamEvent::Usage(usage.into()));
    }
    let reason = choice.finish_reason.unwrap_or_else(|| "stop".into());
    events.push(StreamEvent::Finished(reason));
    Ok(events)
}
