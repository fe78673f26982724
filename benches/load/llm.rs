//! A lean fake completion server for the load benchmark: every request streams its
//! conversation's scripted reply after a configurable time to first token, at a configurable
//! token rate, and the server notes when the request arrived and when it sent the first and the
//! last content chunk.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use futures_util::stream;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

use crate::it::fake_net::{self, IDLE};

/// The key the fake accepts.
pub const KEY: &str = "load-key";

/// How replies stream.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Wait before the first content chunk.
    pub first_token: Duration,
    /// Tokens a second.
    pub tokens_per_sec: f64,
    /// Characters in one token (one chunk).
    pub token_chars: usize,
    /// Characters of every reply.
    pub reply_chars: usize,
}

/// When one request arrived and streamed.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// The request arrived.
    pub received: Instant,
    /// The first content chunk was handed to the connection.
    pub first: Option<Instant>,
    /// The last content chunk (with the finish reason and `[DONE]`) was handed over.
    pub last: Option<Instant>,
}

struct Shared {
    shape: Shape,
    timings: Mutex<HashMap<String, Timing>>,
}

/// A running fake; stops when dropped.
pub struct FakeLlm {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl FakeLlm {
    /// Serves replies of `shape` on 127.0.0.1.
    pub async fn start(shape: Shape) -> Self {
        let shared = Arc::new(Shared {
            shape,
            timings: Mutex::new(HashMap::new()),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(handle))
            .with_state(shared.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            fake_net::serve(listener, app, IDLE).await;
        });
        Self { addr, shared, task }
    }

    /// The API root for `llm.base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The timing of the request tagged `tag`, once it arrived.
    pub fn timing(&self, tag: &str) -> Option<Timing> {
        self.shared.timings.lock().unwrap().get(tag).copied()
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The reply of the conversation turn `tag` (`c12t0`): Markdown prose of exactly `chars`
/// characters that starts with a plain word, so its first chunk shows as typed.
pub fn reply_text(tag: &str, chars: usize) -> String {
    let blocks = [
        "Answer {tag}: here is what I found. ",
        "The **main point** is that streaming keeps the chat lively, and `pacing` keeps it \
         within the limits. ",
        "Each message is edited as tokens arrive, never faster than the platform allows.\n\n",
        "- first, the text grows in place;\n- then the final edit lands;\n- nothing is lost.\n\n",
        "A longer paragraph follows with *some emphasis* and plain words that carry on for a \
         while, so the reply reaches its full length without repeating itself too often. ",
    ];
    let mut text = String::new();
    let mut i = 0;
    while text.chars().count() < chars {
        text.push_str(&blocks[i % blocks.len()].replace("{tag}", tag));
        i += 1;
    }
    let mut text: String = text.chars().take(chars).collect();
    // A reply ending in a space or a cut emphasis renders differently from its source; end it
    // on a letter.
    while text.ends_with(|c: char| !c.is_alphanumeric()) {
        text.pop();
        text.push('x');
    }
    text
}

/// The tag in the last user message: the word `#c12t0#` the benchmark writes.
fn tag(body: &Value) -> String {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let last = messages.iter().rev().find(|m| m["role"] == "user");
    let text = last.and_then(|m| m["content"].as_str()).unwrap_or("");
    text.split('#').nth(1).unwrap_or("untagged").to_string()
}

async fn handle(State(shared): State<Arc<Shared>>, raw: Bytes) -> Response {
    let received = Instant::now();
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let tag = tag(&body);
    let timing = Timing {
        received,
        first: None,
        last: None,
    };
    shared.timings.lock().unwrap().insert(tag.clone(), timing);
    let usage = body["stream_options"]["include_usage"] == json!(true);
    let text = reply_text(&tag, shared.shape.reply_chars);
    let chunks = chunks(&text, shared.shape.token_chars, usage);
    Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(paced(shared, tag, chunks, received)))
        .unwrap()
}

/// The SSE reads of a reply: one per token, the last carrying the finish and `[DONE]`.
///
/// Written with `format!` around the escaped piece rather than built as JSON values: a thousand
/// requests arrive within a second, and the fake should not compete with the bot for the CPU
/// more than its real work (the writes) needs.
fn chunks(text: &str, token_chars: usize, usage: bool) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let pieces: Vec<String> = chars
        .chunks(token_chars.max(1))
        .map(|c| c.iter().collect())
        .collect();
    let count = pieces.len();
    let mut reads: Vec<String> = pieces
        .iter()
        .enumerate()
        .map(|(i, piece)| {
            let piece = serde_json::to_string(piece).unwrap_or_default();
            let role = if i == 0 { r#""role":"assistant","# } else { "" };
            event(&format!(
                r#"{{"index":0,"delta":{{{role}"content":{piece}}}}}"#
            ))
        })
        .collect();
    if let Some(last) = reads.get_mut(count.saturating_sub(1)) {
        last.push_str(&event(r#"{"index":0,"delta":{},"finish_reason":"stop"}"#));
        if usage {
            let total = 100 + count;
            last.push_str(&format!(
                "data: {{\"id\":\"load\",\"object\":\"chat.completion.chunk\",\"created\":0,\
                 \"model\":\"m\",\"choices\":[],\"usage\":{{\"prompt_tokens\":100,\
                 \"completion_tokens\":{count},\"total_tokens\":{total}}}}}\n\n"
            ));
        }
        last.push_str("data: [DONE]\n\n");
    }
    reads
}

/// One chunk event around `choice` (JSON text).
fn event(choice: &str) -> String {
    format!(
        "data: {{\"id\":\"load\",\"object\":\"chat.completion.chunk\",\"created\":0,\
         \"model\":\"m\",\"choices\":[{choice}]}}\n\n"
    )
}

/// Hands the reads over on an absolute schedule, noting the first and last.
fn paced(
    shared: Arc<Shared>,
    tag: String,
    reads: Vec<String>,
    start: Instant,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let shape = shared.shape;
    let gap = Duration::from_secs_f64(1.0 / shape.tokens_per_sec);
    let count = reads.len();
    stream::unfold(
        (reads.into_iter().enumerate(), shared, tag),
        move |(mut reads, shared, tag)| async move {
            let (i, read) = reads.next()?;
            sleep_until(start + shape.first_token + gap * i as u32).await;
            let now = Instant::now();
            if let Some(timing) = shared.timings.lock().unwrap().get_mut(&tag) {
                if i == 0 {
                    timing.first = Some(now);
                }
                if i + 1 == count {
                    timing.last = Some(now);
                }
            }
            Some((Ok(Bytes::from(read)), (reads, shared, tag)))
        },
    )
}
