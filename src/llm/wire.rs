//! The private JSON shapes of the chat-completions API: the request body and the answers.

use base64::display::Base64Display;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize, Serializer};

use super::config::Params;
use crate::engine::ports::{ChatMessage, CompletionRequest, Part, Usage};

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
    content: Content<'a>,
}

/// A message's content: its text alone, or (with attachments) an array of content parts.
#[derive(Serialize)]
#[serde(untagged)]
enum Content<'a> {
    Text(&'a str),
    Parts(Vec<WirePart<'a>>),
}

/// One content part, OpenAI-style.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WirePart<'a> {
    Text { text: &'a str },
    ImageUrl { image_url: ImageUrl<'a> },
}

#[derive(Serialize)]
struct ImageUrl<'a> {
    url: DataUrl<'a>,
}

/// `data:MIME;base64,…`, written straight into the body: the same bytes give the same text.
struct DataUrl<'a> {
    mime: &'a str,
    data: &'a [u8],
}

impl Serialize for DataUrl<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let base64 = Base64Display::new(self.data, &STANDARD);
        serializer.collect_str(&format_args!("data:{};base64,{base64}", self.mime))
    }
}

impl WireMessage<'_> {
    /// About how many bytes this message serializes to.
    fn size_hint(&self) -> usize {
        const FRAMING: usize = 48;
        match &self.content {
            Content::Text(text) => text.len() + FRAMING,
            Content::Parts(parts) => parts
                .iter()
                .map(|part| match part {
                    WirePart::Text { text } => text.len() + FRAMING,
                    WirePart::ImageUrl { image_url } => {
                        image_url.url.data.len().div_ceil(3) * 4 + FRAMING * 2
                    }
                })
                .sum(),
        }
    }
}

impl<'a> WireMessage<'a> {
    /// The text first (when there is any), then each part in order.
    fn new(message: &'a ChatMessage) -> Self {
        let content = if message.parts.is_empty() {
            Content::Text(&message.content)
        } else {
            let text = (!message.content.is_empty()).then(|| WirePart::Text {
                text: &message.content,
            });
            let parts = message.parts.iter().map(|part| match part {
                Part::Text(text) => WirePart::Text { text },
                Part::Image { mime, data } => WirePart::ImageUrl {
                    image_url: ImageUrl {
                        url: DataUrl { mime, data },
                    },
                },
            });
            Content::Parts(text.into_iter().chain(parts).collect())
        };
        Self {
            role: message.role.as_str(),
            content,
        }
    }
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

impl<'a> RequestBody<'a> {
    /// The body for `request` with the parameters already resolved for its model.
    pub(super) fn new(request: &'a CompletionRequest, params: &'a Params, stream: bool) -> Self {
        let messages = request.messages.iter().map(WireMessage::new).collect();
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

impl RequestBody<'_> {
    /// About how many bytes the body serializes to, so a body of megabytes of images can be
    /// written into a buffer of its size instead of one copied as it doubles.
    pub(super) fn size_hint(&self) -> usize {
        let messages: usize = self.messages.iter().map(WireMessage::size_hint).sum();
        messages + 512
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

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::engine::event::ConversationId;
    use crate::engine::ports::{ModelName, Role};

    fn body(messages: Vec<ChatMessage>) -> serde_json::Value {
        let request = CompletionRequest {
            conversation: ConversationId::random(),
            model: ModelName::new("grok-4"),
            messages,
            n: None,
        };
        let params = Params::default();
        let bytes = serde_json::to_vec(&RequestBody::new(&request, &params, true)).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn a_message_without_parts_is_a_plain_string() {
        let json = body(vec![ChatMessage::text(Role::User, "hi")]);
        assert_eq!(json["messages"][0]["content"], "hi");
    }

    #[test]
    fn attachments_become_openai_content_parts_after_the_text() {
        let message = ChatMessage {
            role: Role::User,
            content: "what is this?".into(),
            parts: vec![
                Part::Image {
                    mime: "image/png",
                    data: Bytes::from_static(b"\x89PNG"),
                },
                Part::Text("a.txt:\n```\nx\n```".into()),
            ],
        };
        let json = body(vec![message]);
        assert_eq!(
            json["messages"][0]["content"],
            serde_json::json!([
                { "type": "text", "text": "what is this?" },
                { "type": "image_url", "image_url": { "url": "data:image/png;base64,iVBORw==" } },
                { "type": "text", "text": "a.txt:\n```\nx\n```" },
            ])
        );
    }

    #[test]
    fn the_size_hint_is_close_to_the_body_with_an_image() {
        let message = ChatMessage {
            role: Role::User,
            content: "see".into(),
            parts: vec![Part::Image {
                mime: "image/png",
                data: Bytes::from(vec![7u8; 300_000]),
            }],
        };
        let request = CompletionRequest {
            conversation: ConversationId::random(),
            model: ModelName::new("grok-4"),
            messages: vec![message],
            n: None,
        };
        let params = Params::default();
        let body = RequestBody::new(&request, &params, true);
        let written = serde_json::to_vec(&body).unwrap().len();
        let hint = body.size_hint();
        assert!(
            hint >= written && hint < written + 1024,
            "{hint} for {written}"
        );
    }

    #[test]
    fn an_image_without_text_has_no_empty_text_part() {
        let message = ChatMessage {
            role: Role::User,
            content: String::new(),
            parts: vec![Part::Image {
                mime: "image/jpeg",
                data: Bytes::from_static(b"\xff\xd8\xff"),
            }],
        };
        let json = body(vec![message]);
        let parts = json["messages"][0]["content"].as_array().unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0]["type"], "image_url");
    }
}
