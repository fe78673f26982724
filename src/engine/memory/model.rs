//! A scripted completion model: each request takes the next script, or echoes.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;

use crate::engine::ports::{CompletionRequest, Model, ModelError, StreamEvent, TokenStream, Usage};

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Script {
    /// Stream `text` in pieces of `chunk` characters, `gap` apart, then finish.
    Reply {
        /// The answer.
        text: String,
        /// Characters per chunk.
        chunk: usize,
        /// Pause between chunks.
        gap: Duration,
    },
    /// Stream `text`, then fail with `error`.
    FailAfter(String, ModelError),
    /// Refuse the request with `error`.
    Refuse(ModelError),
}

/// A `Model` that plays scripts in order and records every request.
#[derive(Default)]
pub struct ScriptedModel {
    scripts: Mutex<VecDeque<Script>>,
    requests: Mutex<Vec<CompletionRequest>>,
}

impl ScriptedModel {
    /// Queues the answer to a later request.
    pub fn push(&self, script: Script) {
        if let Ok(mut scripts) = self.scripts.lock() {
            scripts.push_back(script);
        }
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<CompletionRequest> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

fn chunks(text: &str, size: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(size.max(1))
        .map(|c| c.iter().collect())
        .collect()
}

/// Chunk `i` becomes available `(i + 1) * gap` after the call, whether or not the reader is
/// reading then, like tokens buffered by a socket.
fn paced(text: &str, chunk: usize, gap: Duration) -> TokenStream {
    let start = tokio::time::Instant::now();
    let events = chunks(text, chunk)
        .into_iter()
        .enumerate()
        .map(move |(i, c)| (start + gap * (i as u32 + 1), Ok(StreamEvent::Content(c))));
    TokenStream::new(
        futures_util::stream::iter(events).then(|(at, event)| async move {
            tokio::time::sleep_until(at).await;
            event
        }),
    )
}

#[async_trait]
impl Model for ScriptedModel {
    async fn complete(&self, request: CompletionRequest) -> Result<TokenStream, ModelError> {
        let last = request
            .messages
            .last()
            .map(|m| m.content.clone())
            .unwrap_or_default();
        if let Ok(mut requests) = self.requests.lock() {
            requests.push(request);
        }
        let script = self.scripts.lock().ok().and_then(|mut s| s.pop_front());
        let script = script.unwrap_or(Script::Reply {
            text: format!("echo: {last}"),
            chunk: 4,
            gap: Duration::from_millis(10),
        });
        Ok(match script {
            Script::Reply { text, chunk, gap } => {
                let usage = Usage {
                    prompt_tokens: 10,
                    completion_tokens: text.len() as u64 / 4,
                    cached_tokens: 5,
                    reasoning_tokens: 0,
                };
                let tail = futures_util::stream::iter([
                    Ok(StreamEvent::Finished("stop".into())),
                    Ok(StreamEvent::Usage(usage)),
                ]);
                TokenStream::new(paced(&text, chunk, gap).chain(tail))
            }
            Script::FailAfter(text, error) => TokenStream::new(
                paced(&text, 4, Duration::from_millis(10))
                    .chain(futures_util::stream::iter([Err(error)])),
            ),
            Script::Refuse(error) => return Err(error),
        })
    }
}
