//! A fake OpenAI-compatible chat-completions server (xAI flavour), scripted per request.
//!
//! `FakeLlm::start().await` serves `POST /v1/chat/completions` on 127.0.0.1; `base_url()` is
//! what the client's `llm.base_url` should be. Each request takes the next [`Script`] pushed with
//! `push`; with none queued it streams `echo: <last user message>` in 4-character chunks with a
//! finish reason, usage (when asked) and `[DONE]`. Like the real API it checks the key (401),
//! the body (400 without `model` or `messages`), the model (404 for unknown names) and refuses
//! `presence_penalty`, `frequency_penalty` and `stop` for reasoning models (400, xAI shape).
//! Message contents must be a string or an array of OpenAI content parts (`content.rs`): text
//! parts, and image parts with a `data:` URL of a PNG, JPEG, WebP or GIF of at most 10 MiB, in
//! user messages of a model that reads images; anything else is refused with 400 and an
//! OpenAI-style error body, as the real API refuses it.
//! Every request is recorded with its lowercased headers and JSON body.

#![allow(dead_code)]

mod content;
mod render;
mod script;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use futures_util::stream;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::fake_net::{self, IDLE};
use render::{Counts, Read};
pub use script::{End, Gate, Script};

/// The key [`FakeLlm::start`] expects.
pub const FAKE_KEY: &str = "test-key";

/// The models the fake knows unless more are added.
pub const FAKE_MODELS: [&str; 4] = [
    "grok-3",
    "grok-4",
    "grok-4-fast-non-reasoning",
    "grok-4-fast-reasoning",
];

/// The largest request body the fake takes: several images of the API's 10 MiB limit.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// The models that read images unless changed ([`FakeLlm::set_image_models`]).
pub const FAKE_IMAGE_MODELS: [&str; 3] = [
    "grok-4",
    "grok-4-fast-non-reasoning",
    "grok-4-fast-reasoning",
];

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Headers with lowercased names.
    pub headers: HashMap<String, String>,
    /// The body parsed as JSON (`Null` when it was not JSON).
    pub body: Value,
    /// The body's exact bytes.
    pub raw: Vec<u8>,
    /// When it arrived.
    pub at: tokio::time::Instant,
}

impl Recorded {
    /// A header's value, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_lowercase()).map(String::as_str)
    }
}

struct Shared {
    key: String,
    models: Mutex<Vec<String>>,
    image_models: Mutex<Vec<String>>,
    scripts: Mutex<VecDeque<Script>>,
    requests: Mutex<Vec<Recorded>>,
    /// Streamed bodies the client dropped before their end (a closed connection).
    dropped: std::sync::atomic::AtomicUsize,
}

/// Counts a streamed body dropped before it was all sent: the client closed the connection.
struct Unfinished {
    shared: Arc<Shared>,
    done: bool,
}

impl Unfinished {
    /// The body ended as scripted: its drop is no client closing the connection.
    fn finish(&mut self) {
        self.done = true;
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if !self.done {
            let dropped = &self.shared.dropped;
            dropped.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// A running fake completion server; stops when dropped.
pub struct FakeLlm {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl FakeLlm {
    /// How many streamed answers the client dropped before they were all sent (the
    /// connection closed under them).
    pub fn streams_dropped(&self) -> usize {
        self.shared
            .dropped
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Starts a fake that accepts the key [`FAKE_KEY`].
    pub async fn start() -> Self {
        Self::start_with_key(FAKE_KEY).await
    }

    /// Starts a fake that accepts only `key`.
    pub async fn start_with_key(key: &str) -> Self {
        Self::start_with(key, IDLE).await
    }

    /// Starts a fake that closes a connection once it has been idle for `idle`.
    pub async fn start_closing_idle(idle: Duration) -> Self {
        Self::start_with(FAKE_KEY, idle).await
    }

    async fn start_with(key: &str, idle: Duration) -> Self {
        let shared = Arc::new(Shared {
            key: key.to_string(),
            models: Mutex::new(FAKE_MODELS.iter().map(|m| m.to_string()).collect()),
            image_models: Mutex::new(FAKE_IMAGE_MODELS.iter().map(|m| m.to_string()).collect()),
            scripts: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
            dropped: Default::default(),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(handle))
            .route("/chat/completions", post(handle))
            // Image turns carry megabytes of base64: the API takes them (axum's default is 2 MB).
            .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
            .with_state(shared.clone());
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake");
        let addr = listener.local_addr().expect("the fake's address");
        let task = tokio::spawn(async move {
            fake_net::serve(listener, app, idle).await;
        });
        Self { addr, shared, task }
    }

    /// The API root to configure: `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The key this fake accepts.
    pub fn key(&self) -> &str {
        &self.shared.key
    }

    /// Queues the answer to a later request (first in, first out).
    pub fn push(&self, script: Script) {
        self.shared.scripts.lock().unwrap().push_back(script);
    }

    /// Makes the fake accept one more model name.
    pub fn add_model(&self, name: &str) {
        self.shared.models.lock().unwrap().push(name.to_string());
    }

    /// Makes exactly `models` read images.
    pub fn set_image_models(&self, models: &[&str]) {
        *self.shared.image_models.lock().unwrap() = models.iter().map(|m| m.to_string()).collect();
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(State(shared): State<Arc<Shared>>, headers: HeaderMap, raw: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    shared.requests.lock().unwrap().push(Recorded {
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: body.clone(),
        raw: raw.to_vec(),
        at: tokio::time::Instant::now(),
    });
    if let Some(refusal) = refuse(&shared, &headers, &body) {
        return refusal;
    }
    let script = shared.scripts.lock().unwrap().pop_front();
    let script = script.unwrap_or_else(|| Script::reply(format!("echo: {}", last_user(&body))));
    answer(&shared, &script, &body)
}

/// The text of the last user message: its string, or its text parts joined by blank lines.
fn last_user(body: &Value) -> String {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let last = messages.iter().rev().find(|m| m["role"] == "user");
    last.map(|m| content::text_of(&m["content"]))
        .unwrap_or_default()
}

/// The real API's own checks, before any script.
fn refuse(shared: &Shared, headers: &HeaderMap, body: &Value) -> Option<Response> {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(format!("Bearer {}", shared.key).as_str()) {
        let message = "Incorrect API key provided.";
        return Some(openai_error(401, message, "invalid_api_key"));
    }
    let (Some(model), Some(_)) = (body["model"].as_str(), body["messages"].as_array()) else {
        let message = "Missing required parameter: 'model' and 'messages' are required.";
        return Some(openai_error(400, message, "missing_required_parameter"));
    };
    if !shared.models.lock().unwrap().iter().any(|m| m == model) {
        let message =
            format!("The model `{model}` does not exist or you do not have access to it.");
        return Some(openai_error(404, &message, "model_not_found"));
    }
    let reads_images = shared
        .image_models
        .lock()
        .unwrap()
        .iter()
        .any(|m| m == model);
    if let Err(refusal) = content::check(body, model, reads_images) {
        return Some(respond(400, refusal.to_string(), "application/json", &[]));
    }
    let reasoning = model == "grok-4" || (model.contains("reasoning") && !model.contains("non-"));
    let refused = ["presence_penalty", "frequency_penalty", "stop"];
    let bad = refused.iter().find(|p| body.get(**p).is_some());
    match bad {
        Some(param) if reasoning => Some(respond(
            400,
            json!({ "code": "Client specified an invalid argument",
                "error": format!("Model {model} does not support parameter {param}.") })
            .to_string(),
            "application/json",
            &[],
        )),
        _ => None,
    }
}

fn openai_error(code: u16, message: &str, error_code: &str) -> Response {
    let body = json!({ "error": { "message": message, "type": "invalid_request_error",
        "param": null, "code": error_code } });
    respond(code, body.to_string(), "application/json", &[])
}

fn respond(code: u16, body: String, content_type: &str, headers: &[(String, String)]) -> Response {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(code).unwrap())
        .header("content-type", content_type);
    for (name, value) in headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder.body(Body::from(body)).unwrap()
}

fn answer(shared: &Arc<Shared>, script: &Script, body: &Value) -> Response {
    if let Some(status) = &script.status {
        return respond(
            status.code,
            status.body.clone(),
            status.content_type,
            &status.headers,
        );
    }
    let model = body["model"].as_str().unwrap_or("");
    let prompt = body["messages"].to_string().chars().count() as u64 / 4 + 1;
    if body["stream"] != json!(true) {
        let whole = render::whole(script, model, prompt);
        return respond(200, whole.to_string(), "application/json", &[]);
    }
    let counts = Counts {
        prompt,
        include_usage: body["stream_options"]["include_usage"] == json!(true),
        n: body["n"].as_u64().map_or(1, |n| n as usize),
    };
    let reads = render::stream(script, model, &counts);
    Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(body_stream(
            reads,
            (script.delay, script.gate.clone()),
            shared.clone(),
        )))
        .unwrap()
}

fn body_stream(
    reads: Vec<Read>,
    (delay, gate): (Duration, Option<Gate>),
    shared: Arc<Shared>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let guard = Unfinished {
        shared,
        done: false,
    };
    stream::unfold(
        (reads.into_iter(), true, guard),
        move |(mut reads, first, mut guard)| {
            let gate = gate.clone();
            async move {
                let Some(read) = reads.next() else {
                    guard.finish();
                    return None;
                };
                if let Some(gate) = gate.filter(|_| first) {
                    gate.passed().await;
                }
                if !first && !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                match read {
                    Read::Bytes(bytes) => Some((Ok(Bytes::from(bytes)), (reads, false, guard))),
                    Read::Stall => std::future::pending().await,
                    Read::Abort => {
                        guard.finish();
                        Some((Err(std::io::Error::other("cut")), (reads, false, guard)))
                    }
                }
            }
        },
    )
}
