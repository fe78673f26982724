//! The private JSON shapes of the chat-completions API: the request body and the answers.

use serde::{Deserialize, Serialize};

use super::config::Params;
use crate::engine::ports::{CompletionRequest, Usage};

/// The request body; field order is fixed so equal requests serialize to equal bytes.
#[derive(Serialize)]
pub(super) struct RequestBody<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f64>,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

impl<'a> RequestBody<'a> {
    /// The body for `request` with the parameters already resolved for its model.
    pub(super) fn new(request: &'a CompletionRequest, params: &'a Params, stream: bool) -> Self {
        let messages = request
            .messages
            .iter()
            .map(|m| WireMessage {
                role: m.role.as_str(),
                content: &m.content,
            })
            .collect();
        Self {
            model: request.model.as_str(),
            messages,
            temperature: params.temperature,
            top_p: params.top_p,
            n: params.n,
            stop: params.stop.as_deref(),
            max_tokens: params.max_tokens,
            presence_penalty: params.presence_penalty,
            frequency_penalty: params.frequency_penalty,
            stream,
            stream_options: stream.then_some(StreamOptions {
                include_usage: true,
            }),
        }
    }
}

/// One streamed `chat.completion.chunk` (or an error object sent instead of one).
#[derive(Deserialize)]
pub(super) struct Chunk {
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    pub usage: Option<WireUsage>,
    pub error: Option<serde_json::Value>,
}

/// One choice of a chunk.
#[derive(Deserialize)]
pub(super) struct ChunkChoice {
    #[serde(default)]
    pub index: u32,
    #[serde(default)]
    pub delta: Delta,
    pub finish_reason: Option<String>,
}

/// The new text of a chunk.
#[derive(Deserialize, Default)]
pub(super) struct Delta {
    pub content: Option<String>,
    pub reasoning_content: Option<String>,
}

/// A whole non-streamed `chat.completion`.
#[derive(Deserialize)]
pub(super) struct Completion {
    #[serde(default)]
    pub choices: Vec<CompletionChoice>,
    pub usage: Option<WireUsage>,
    pub error: Option<serde_json::Value>,
}

/// One choice of a whole completion.
#[derive(Deserialize)]
pub(super) struct CompletionChoice {
    #[serde(default)]
    pub message: Delta,
    pub finish_reason: Option<String>,
}

/// Token usage as the API reports it.
#[derive(Deserialize)]
pub(super) struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    prompt_tokens_details: Option<PromptDetails>,
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: u64,
}

#[derive(Deserialize)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: u64,
}

impl From<WireUsage> for Usage {
    fn from(wire: WireUsage) -> Self {
        Self {
            prompt_tokens: wire.prompt_tokens,
            completion_tokens: wire.completion_tokens,
            cached_tokens: wire.prompt_tokens_details.map_or(0, |d| d.cached_tokens),
            reasoning_tokens: wire
                .completion_tokens_details
                .map_or(0, |d| d.reasoning_tokens),
        }
    }
}
