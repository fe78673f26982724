//! The REST calls replies make (messages, typing, interaction responses), with Discord's error
//! shapes mapped onto [`RestError`].
//!
//! These calls go through reqwest rather than serenity's `Http`: with a proxy, serenity's
//! ratelimiter must be off and serenity then drops a 429's `retry_after`. Reading it here lets
//! the engine pause the channel for exactly as long as Discord asks, with or without a proxy.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

/// How long one REST call may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The wait assumed when a 429 carries no readable retry-after.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Discord's JSON error code for a message that no longer exists.
pub const UNKNOWN_MESSAGE: u64 = 10008;
/// Discord's JSON error code for missing permissions.
pub const MISSING_PERMISSIONS: u64 = 50013;

/// Why a REST call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestError {
    /// 429: wait this long before the next call in this bucket.
    #[error("rate limited for {0:?}")]
    RateLimited(Duration),
    /// Discord answered an error status with its JSON error code.
    #[error("Discord answered {status} (code {code}): {message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// Discord's JSON error code (0 when none).
        code: u64,
        /// Discord's message.
        message: String,
    },
    /// The request did not get an answer (connection, timeout) or the answer was unreadable.
    #[error("Discord unreachable: {0}")]
    Network(String),
}

/// A message as a REST answer carries it; only the id is needed.
#[derive(Debug, Deserialize)]
struct MessageId {
    id: String,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: u64,
    #[serde(default)]
    message: String,
    retry_after: Option<f64>,
}

/// A Discord REST client for the calls replies make; cheap to clone. Its `Debug` hides the
/// token.
#[derive(Clone)]
pub struct DiscordRest {
    client: reqwest::Client,
    base: Arc<str>,
    token: SecretString,
}

impl fmt::Debug for DiscordRest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscordRest")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// `allowed_mentions` that let nothing ping: no parsed mentions, no reply ping.
pub fn no_pings() -> Value {
    json!({ "parse": [], "replied_user": false })
}

impl DiscordRest {
    /// A client for `base` (`https://discord.com` or a proxy) with the bot's token.
    pub fn new(client: reqwest::Client, base: &str, token: SecretString) -> Self {
        let base = format!("{}/api/v10", base.trim_end_matches('/'));
        Self {
            client,
            base: base.into(),
            token,
        }
    }

    /// The reqwest client every Discord call shares, with timeouts.
    pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
        reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
    }

    /// The bot user's id (`GET /users/@me`); checks the token.
    pub async fn current_user(&self) -> Result<String, RestError> {
        let user = self.call(Method::GET, "/users/@me", None).await?;
        parse_id(user)
    }

    /// `GET /gateway/bot`: the shard count Discord recommends and the session start limit.
    pub async fn gateway_bot(&self) -> Result<Value, RestError> {
        self.call(Method::GET, "/gateway/bot", None).await
    }

    /// Posts a message; returns its id.
    pub async fn create_message(
        &self,
        channel: &str,
        reply_to: Option<&str>,
        content: &str,
        components: Option<Value>,
    ) -> Result<String, RestError> {
        let mut body = json!({ "content": content, "allowed_mentions": no_pings() });
        if let Some(id) = reply_to {
            body["message_reference"] = json!({ "message_id": id, "fail_if_not_exists": false });
        }
        if let Some(components) = components {
            body["components"] = components;
        }
        let path = format!("/channels/{channel}/messages");
        parse_id(self.call(Method::POST, &path, Some(body)).await?)
    }

    /// Replaces a message's content and its components (an empty list removes them: an edit
    /// without the field would keep them); returns its id.
    pub async fn edit_message(
        &self,
        channel: &str,
        message: &str,
        content: &str,
        components: Value,
    ) -> Result<String, RestError> {
        let body = json!({ "content": content, "allowed_mentions": no_pings(),
            "components": components });
        let path = format!("/channels/{channel}/messages/{message}");
        parse_id(self.call(Method::PATCH, &path, Some(body)).await?)
    }

    /// Replaces a message's components alone (its text stays).
    pub async fn edit_components(
        &self,
        channel: &str,
        message: &str,
        components: Value,
    ) -> Result<(), RestError> {
        let body = json!({ "components": components });
        let path = format!("/channels/{channel}/messages/{message}");
        self.call(Method::PATCH, &path, Some(body)).await.map(drop)
    }

    /// Deletes one of the bot's messages.
    pub async fn delete_message(&self, channel: &str, message: &str) -> Result<(), RestError> {
        let path = format!("/channels/{channel}/messages/{message}");
        self.call(Method::DELETE, &path, None).await.map(drop)
    }

    /// Shows the typing indicator for about 10 s.
    pub async fn typing(&self, channel: &str) -> Result<(), RestError> {
        let path = format!("/channels/{channel}/typing");
        self.call(Method::POST, &path, None).await.map(drop)
    }

    /// Acknowledges an interaction with a deferred answer ("thinking…"), ephemeral or not.
    pub async fn defer(&self, id: &str, token: &str, ephemeral: bool) -> Result<(), RestError> {
        let flags = if ephemeral { 64 } else { 0 };
        let body = json!({ "type": 5, "data": { "flags": flags } });
        let path = format!("/interactions/{id}/{token}/callback");
        self.call(Method::POST, &path, Some(body)).await.map(drop)
    }

    /// Answers a button press: `type` 6 acknowledges it without changing the message; 4 with
    /// flag 64 answers only the presser (ephemeral) with `content`.
    pub async fn answer_press(
        &self,
        id: &str,
        token: &str,
        private_answer: Option<&str>,
    ) -> Result<(), RestError> {
        let body = match private_answer {
            None => json!({ "type": 6 }),
            Some(content) => json!({ "type": 4, "data": { "content": content, "flags": 64,
                "allowed_mentions": no_pings() } }),
        };
        let path = format!("/interactions/{id}/{token}/callback");
        self.call(Method::POST, &path, Some(body)).await.map(drop)
    }

    /// Edits an interaction's message (`@original` or a follow-up id); returns its id.
    pub async fn edit_response(
        &self,
        app: &str,
        token: &str,
        message: &str,
        content: &str,
    ) -> Result<String, RestError> {
        let body = json!({ "content": content, "allowed_mentions": no_pings() });
        let path = format!("/webhooks/{app}/{token}/messages/{message}");
        parse_id(self.call(Method::PATCH, &path, Some(body)).await?)
    }

    /// Sends a follow-up message of an interaction (seen only by its user when `ephemeral`);
    /// returns its id.
    pub async fn follow_up(
        &self,
        app: &str,
        token: &str,
        content: &str,
        ephemeral: bool,
    ) -> Result<String, RestError> {
        let flags = if ephemeral { 64 } else { 0 };
        let body = json!({ "content": content, "allowed_mentions": no_pings(), "flags": flags });
        let path = format!("/webhooks/{app}/{token}?wait=true");
        parse_id(self.call(Method::POST, &path, Some(body)).await?)
    }

    /// One call; the answer's JSON on success (`Null` for 204).
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, RestError> {
        let auth = format!("Bot {}", self.token.expose_secret());
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("authorization", auth)
            .header("user-agent", "DiscordBot (https://github.com/parley, 0.1)");
        if let Some(body) = body {
            request = request.json(&body);
        }
        // Errors keep no URL: interaction paths carry a token.
        let response = request.send().await.map_err(network)?;
        let status = response.status();
        let retry_header = header_secs(&response, "retry-after");
        let bytes = response.bytes().await.map_err(network)?;
        if status.is_success() {
            return Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null));
        }
        Err(api_error(status, retry_header, &bytes))
    }
}

fn network(error: reqwest::Error) -> RestError {
    RestError::Network(error.without_url().to_string())
}

fn parse_id(value: Value) -> Result<String, RestError> {
    serde_json::from_value::<MessageId>(value)
        .map(|m| m.id)
        .map_err(|e| RestError::Network(format!("unreadable answer: {e}")))
}

fn header_secs(response: &reqwest::Response, name: &str) -> Option<f64> {
    let value = response.headers().get(name)?.to_str().ok()?;
    value.trim().parse::<f64>().ok()
}

/// Maps an error answer; a 429's wait is the body's `retry_after`, else the header's.
fn api_error(status: StatusCode, retry_header: Option<f64>, bytes: &[u8]) -> RestError {
    let body: Option<ErrorBody> = serde_json::from_slice(bytes).ok();
    if status == StatusCode::TOO_MANY_REQUESTS {
        let secs = body.as_ref().and_then(|b| b.retry_after).or(retry_header);
        let wait = secs
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map_or(DEFAULT_RETRY_AFTER, Duration::from_secs_f64);
        return RestError::RateLimited(wait);
    }
    let (code, message) = body.map_or((0, String::new()), |b| (b.code, b.message));
    RestError::Api {
        status: status.as_u16(),
        code,
        message: if message.is_empty() {
            status.canonical_reason().unwrap_or("error").to_string()
        } else {
            message
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_429_waits_for_the_bodys_retry_after() {
        let body =
            br#"{"message":"You are being rate limited.","retry_after":0.25,"global":false}"#;
        let error = api_error(StatusCode::TOO_MANY_REQUESTS, Some(1.0), body);
        assert_eq!(error, RestError::RateLimited(Duration::from_millis(250)));
    }

    #[test]
    fn a_429_without_a_body_waits_for_the_header() {
        let error = api_error(StatusCode::TOO_MANY_REQUESTS, Some(2.0), b"<html>");
        assert_eq!(error, RestError::RateLimited(Duration::from_secs(2)));
    }

    #[test]
    fn error_answers_keep_discords_code() {
        let body = br#"{"code":50013,"message":"Missing Permissions"}"#;
        let error = api_error(StatusCode::FORBIDDEN, None, body);
        assert!(matches!(
            error,
            RestError::Api {
                status: 403,
                code: 50013,
                ..
            }
        ));
    }
}
