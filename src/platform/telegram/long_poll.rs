//! One `getUpdates` long poll, on an HTTP client of its own. teloxide's client gives every call
//! 17 s, less than a quiet 30-s poll lasts, and sleeps 10 s before it reads a 5xx answer; here
//! the request may take the poll's timeout plus [`MARGIN`], a 5xx is read at once, and each
//! update is decoded on its own, so one that does not decode is skipped instead of failing the
//! whole batch (and, with it, every later poll).

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use teloxide::types::{Update, UpdateKind};

use crate::platform::download;

/// How much longer than the poll's own timeout the request may take: the server answers a
/// quiet poll when its timeout ends, and the answer still has to travel.
pub const MARGIN: Duration = Duration::from_secs(10);
/// How long connecting to the Bot API may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Polls one bot's updates. Holds the bot token inside the URL: never printed (no `Debug`).
pub struct LongPoll {
    client: reqwest::Client,
    url: reqwest::Url,
}

/// Why a poll failed. Never carries the token: request errors are stripped of their URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PollError {
    /// The Bot API answered 429 and asked to wait this long.
    #[error("the Bot API asked to wait {0:?} (429)")]
    RetryAfter(Duration),
    /// The server failed (a 5xx, or an error page from a proxy in front of it).
    #[error("the Bot API answered {0}")]
    Server(u16),
    /// The request did not get an answer (connection refused or reset, timed out).
    #[error("network error: {0}")]
    Network(String),
    /// The Bot API refused the request (401 for a revoked token, 409 when another instance
    /// polls or a webhook is set).
    #[error("the Bot API refused getUpdates: {0}")]
    Refused(String),
    /// A 2xx answer that is not a Bot API envelope.
    #[error("the Bot API's answer could not be read: {0}")]
    Unreadable(String),
}

/// One update of a poll's answer: decoded, or skipped with the reason.
#[derive(Debug)]
pub struct Polled {
    /// Its `update_id`, when it has one.
    pub id: Option<i64>,
    /// The update, or why it could not be read.
    pub update: Result<Update, String>,
}

/// A Bot API answer. The updates stay raw text here: skipping over a value has no nesting
/// limit, so one update too deep or too odd for the decoder cannot fail the whole answer.
#[derive(Deserialize)]
struct Envelope {
    ok: bool,
    #[serde(default)]
    result: Option<Vec<Box<RawValue>>>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    error_code: u16,
    #[serde(default)]
    parameters: Option<Parameters>,
}

#[derive(Deserialize)]
struct Parameters {
    retry_after: Option<u64>,
}

/// What every update has, whatever else it holds.
#[derive(Deserialize)]
struct Head {
    update_id: i64,
}

impl LongPoll {
    /// A poller for the bot `token` on `api_url`.
    pub fn new(token: &str, api_url: &str) -> Result<Self, String> {
        let base = reqwest::Url::parse(api_url).map_err(|e| e.to_string())?;
        let url = base
            .join(&format!("/bot{token}/getUpdates"))
            .map_err(|_| "the API URL does not take a method path".to_string())?;
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| e.without_url().to_string())?;
        Ok(Self { client, url })
    }

    /// Asks for the updates from `offset` on, waiting up to `timeout` for the first; each update
    /// stays raw, for the intake to decode.
    pub async fn poll(
        &self,
        offset: i64,
        timeout: Duration,
    ) -> Result<Vec<Box<RawValue>>, PollError> {
        let body = json!({
            "offset": offset,
            "timeout": timeout.as_secs(),
            "allowed_updates": ALLOWED_UPDATES,
        });
        let request = self.client.post(self.url.clone()).timeout(timeout + MARGIN);
        let response = request.json(&body).send();
        let response = response.await.map_err(network)?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(network)?;
        answer(status, &text)
    }
}

fn network(error: reqwest::Error) -> PollError {
    let kind = download::failure(&error);
    let error = error.without_url();
    let cause = std::error::Error::source(&error).map_or(String::new(), |s| format!(": {s}"));
    PollError::Network(format!("{kind}{cause}"))
}

/// The updates of an answer with `status` and body `text`, or what went wrong.
fn answer(status: u16, text: &str) -> Result<Vec<Box<RawValue>>, PollError> {
    let Ok(envelope) = serde_json::from_str::<Envelope>(text) else {
        return Err(match status {
            500.. => PollError::Server(status),
            200..300 => PollError::Unreadable("not a Bot API answer".into()),
            _ => PollError::Refused(format!("{status} without a Bot API answer")),
        });
    };
    if envelope.ok {
        return envelope
            .result
            .ok_or_else(|| PollError::Unreadable("the answer has no result".into()));
    }
    let retry_after = envelope.parameters.and_then(|p| p.retry_after);
    Err(match (retry_after, envelope.error_code.max(status)) {
        (Some(secs), _) => PollError::RetryAfter(Duration::from_secs(secs)),
        (None, code @ 500..) => PollError::Server(code),
        (None, code) => PollError::Refused(format!("{code} {}", envelope.description)),
    })
}

/// The update a draft's own stop control sends (Bot API 9.5; teloxide does not know it).
pub const STOPPED_GENERATION: &str = "stopped_message_generation";

/// The kinds of update the bot asks for, polling or through the webhook.
pub const ALLOWED_UPDATES: [&str; 3] = ["message", "callback_query", STOPPED_GENERATION];

/// Decodes one update; one teloxide cannot read is kept as the reason, with its id. An update
/// of a kind newer than teloxide that the bot handles ([`STOPPED_GENERATION`]) is kept raw, as
/// `UpdateKind::Error` with the whole update.
pub(super) fn decode(raw: &RawValue) -> Polled {
    let id = serde_json::from_str::<Head>(raw.get())
        .ok()
        .map(|h| h.update_id);
    let update = match serde_json::from_str::<Update>(raw.get()) {
        Ok(update) if !matches!(update.kind, UpdateKind::Error(_)) => Ok(update),
        Ok(mut update) if raw.get().contains(STOPPED_GENERATION) => {
            let value = serde_json::from_str(raw.get()).unwrap_or_default();
            update.kind = UpdateKind::Error(value);
            Ok(update)
        }
        Ok(_) => Err("an update whose content does not decode".to_string()),
        Err(error) => {
            tracing::debug!(%error, "undecodable update");
            Err("an update that does not decode".to_string())
        }
    };
    Polled { id, update }
}

#[cfg(test)]
mod tests;
