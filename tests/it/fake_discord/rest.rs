//! The fake REST API under `/api/v10`, with Discord's checks and error shapes.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{APP_ID, BOT_ID, Call, FAKE_TOKEN, Message, Shared, State, payload};

/// The longest message content Discord accepts, in characters.
const MAX_CONTENT: usize = 2000;
/// How long an interaction may wait for its callback.
const CALLBACK_WITHIN: Duration = Duration::from_secs(3);

/// What one call answers.
struct Reply {
    status: u16,
    body: Option<Value>,
    headers: Vec<(&'static str, String)>,
}

fn ok(body: Value) -> Reply {
    Reply {
        status: 200,
        body: Some(body),
        headers: Vec::new(),
    }
}

fn no_content() -> Reply {
    Reply {
        status: 204,
        body: None,
        headers: Vec::new(),
    }
}

fn error(status: u16, code: u64, message: &str) -> Reply {
    Reply {
        status,
        body: Some(json!({ "code": code, "message": message })),
        headers: Vec::new(),
    }
}

fn rate_limited(wait: Duration) -> Reply {
    let secs = wait.as_secs_f64();
    Reply {
        status: 429,
        body: Some(
            json!({ "message": "You are being rate limited.", "retry_after": secs,
            "global": false }),
        ),
        headers: vec![
            ("retry-after", (secs.ceil() as u64).max(1).to_string()),
            ("x-ratelimit-limit", "5".into()),
            ("x-ratelimit-remaining", "0".into()),
            ("x-ratelimit-reset-after", format!("{secs:.3}")),
            ("x-ratelimit-scope", "user".into()),
        ],
    }
}

/// A 429 of the global limit, as Discord shapes it.
fn global_limited(wait: Duration) -> Reply {
    let mut reply = rate_limited(wait);
    if let Some(body) = &mut reply.body {
        body["global"] = json!(true);
    }
    reply.headers.push(("x-ratelimit-global", "true".into()));
    reply
        .headers
        .retain(|(name, _)| *name != "x-ratelimit-scope");
    reply.headers.push(("x-ratelimit-scope", "global".into()));
    reply
}

/// Every REST route, as one fallback handler.
pub fn routes(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let path = uri.path();
    let path = path.strip_prefix("/api/v10").unwrap_or(path).to_string();
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let reply = {
        let mut state = shared.lock();
        let reply = route(&shared, &mut state, method.as_str(), &path, &headers, &body);
        state.calls.push(Call {
            method: method.to_string(),
            path,
            body,
            status: reply.status,
            at: Instant::now(),
            retry_after: reply
                .body
                .as_ref()
                .and_then(|b| b["retry_after"].as_f64())
                .map(Duration::from_secs_f64),
        });
        reply
    };
    let mut response = Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        response = response.header(*name, value);
    }
    match reply.body {
        Some(body) => response
            .header("content-type", "application/json")
            .body(Body::from(body.to_string())),
        None => response.body(Body::empty()),
    }
    .unwrap()
}

fn route(
    shared: &Shared,
    state: &mut State,
    method: &str,
    path: &str,
    headers: &HeaderMap,
    body: &Value,
) -> Reply {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let tokened = matches!(segments.first(), Some(&("webhooks" | "interactions")));
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    let refused = auth != Some(format!("Bot {FAKE_TOKEN}").as_str()) || state.token_reset;
    if !tokened && refused {
        return error(401, 0, "401: Unauthorized");
    }
    if !tokened && let Some(wait) = state.take_global() {
        return global_limited(wait);
    }
    let bucket = shared.bucket;
    match (method, segments.as_slice()) {
        ("GET", ["gateway"]) => ok(json!({ "url": format!("ws://{}/gw", shared.addr) })),
        ("GET", ["gateway", "bot"]) => ok(gateway_bot(shared, state)),
        ("GET", ["users", "@me"]) => ok(payload::bot_user()),
        ("POST", ["channels", _, "typing"]) => no_content(),
        ("POST", ["channels", c, "messages"]) => state.create(bucket, c, c, body),
        ("PATCH", ["channels", c, "messages", m]) => state.edit(bucket, c, c, m, body),
        ("DELETE", ["channels", _, "messages", m]) => state.remove(m),
        ("POST", ["interactions", _, token, "callback"]) => state.callback(token, body),
        ("PATCH", ["webhooks", app, token, "messages", m]) if *app == APP_ID => {
            state.webhook_edit(bucket, token, m, body)
        }
        ("POST", ["webhooks", app, token]) if *app == APP_ID => {
            state.follow_up(bucket, token, body)
        }
        ("PUT", ["applications", app, "commands"]) if *app == APP_ID => register(None, body),
        ("PUT", ["applications", app, "guilds", guild, "commands"]) if *app == APP_ID => {
            register(Some(guild), body)
        }
        _ => error(404, 0, "404: Not Found"),
    }
}

/// The registered commands as Discord returns them.
fn register(guild: Option<&str>, body: &Value) -> Reply {
    let Some(commands) = body.as_array() else {
        return error(400, 50035, "Invalid Form Body");
    };
    let registered = commands.iter().enumerate().map(|(i, c)| {
        let mut c = c.clone();
        c["id"] = json!((4000 + i).to_string());
        c["application_id"] = json!(APP_ID);
        c["version"] = json!("1");
        c["guild_id"] = json!(guild);
        if c.get("type").is_none() {
            c["type"] = json!(1);
        }
        c
    });
    ok(Value::Array(registered.collect()))
}

/// Why a content field is refused, as Discord answers it.
fn check_content(body: &Value) -> Result<String, Reply> {
    let content = body["content"].as_str().unwrap_or("");
    if content.chars().count() > MAX_CONTENT {
        let mut reply = error(400, 50035, "Invalid Form Body");
        reply.body = Some(json!({ "code": 50035, "message": "Invalid Form Body",
            "errors": { "content": { "_errors": [{ "code": "BASE_TYPE_MAX_LENGTH",
                "message": "Must be 2000 or fewer in length." }] } } }));
        return Err(reply);
    }
    if content.trim().is_empty() {
        return Err(error(400, 50006, "Cannot send an empty message"));
    }
    Ok(content.to_string())
}

/// Discord's checks of `components`: action rows (type 1) of at most five buttons (type 2)
/// with a label of at most 80 characters and a `custom_id` of 1 to 100. `None` when absent.
fn check_components(body: &Value) -> Result<Option<Value>, Reply> {
    let Some(rows) = body.get("components") else {
        return Ok(None);
    };
    let invalid = || error(400, 50035, "Invalid Form Body");
    let rows_list = rows.as_array().ok_or_else(invalid)?;
    for row in rows_list {
        let buttons = row["components"].as_array().ok_or_else(invalid)?;
        if row["type"] != 1 || buttons.is_empty() || buttons.len() > 5 {
            return Err(invalid());
        }
        for button in buttons {
            let id = button["custom_id"].as_str().unwrap_or("");
            let label = button["label"].as_str().unwrap_or("");
            let style = button["style"].as_u64().unwrap_or(0);
            let sized = (1..=100).contains(&id.len()) && label.chars().count() <= 80;
            if button["type"] != 2 || !sized || !(1..=4).contains(&style) {
                return Err(invalid());
            }
        }
    }
    Ok(Some(rows.clone()))
}

impl State {
    /// Takes a slot of the bot-wide window, or says how long to wait.
    fn take_global(&mut self) -> Option<Duration> {
        let (now, second) = (Instant::now(), Duration::from_secs(1));
        while self.global.front().is_some_and(|&t| t + second <= now) {
            self.global.pop_front();
        }
        if self.global.len() >= super::GLOBAL_PER_SECOND {
            self.rate_limited += 1;
            self.rate_limited_global += 1;
            return Some(self.global[0] + second - now);
        }
        self.global.push_back(now);
        None
    }

    /// Takes a slot of `key`'s bucket, or says how long to wait.
    fn take(&mut self, (count, per): (usize, Duration), key: &str) -> Option<Duration> {
        let now = Instant::now();
        let calls = self.buckets.entry(key.to_string()).or_default();
        while calls.front().is_some_and(|&t| t + per <= now) {
            calls.pop_front();
        }
        if calls.len() >= count {
            self.rate_limited += 1;
            return Some(calls[0] + per - now);
        }
        calls.push_back(now);
        None
    }

    /// Permission and rate checks shared by creates and edits.
    fn admit(&mut self, bucket: (usize, Duration), key: &str, channel: &str) -> Option<Reply> {
        if self.forbidden.contains(channel) {
            return Some(error(403, 50013, "Missing Permissions"));
        }
        self.take(bucket, key).map(rate_limited)
    }

    fn create(
        &mut self,
        bucket: (usize, Duration),
        key: &str,
        channel: &str,
        body: &Value,
    ) -> Reply {
        if let Some(refusal) = self.admit(bucket, key, channel) {
            return refusal;
        }
        let content = match check_content(body) {
            Ok(content) => content,
            Err(reply) => return reply,
        };
        let components = match check_components(body) {
            Ok(components) => components.unwrap_or(Value::Null),
            Err(reply) => return reply,
        };
        let reply_to = body["message_reference"]["message_id"].as_str();
        let message = Message {
            id: self.new_id(),
            channel_id: channel.to_string(),
            author_id: BOT_ID.to_string(),
            content,
            allowed_mentions: body.get("allowed_mentions").cloned(),
            reply_to: reply_to.map(str::to_string),
            flags: body["flags"].as_u64().unwrap_or(0),
            edits: 0,
            deleted: false,
            attachments: Vec::new(),
            components,
        };
        let answer = payload::message(&message);
        self.messages.push(message);
        ok(answer)
    }

    fn edit(
        &mut self,
        bucket: (usize, Duration),
        key: &str,
        channel: &str,
        id: &str,
        body: &Value,
    ) -> Reply {
        if let Some(refusal) = self.admit(bucket, key, channel) {
            return refusal;
        }
        let content = check_content(body);
        let components = match check_components(body) {
            Ok(components) => components,
            Err(reply) => return reply,
        };
        let found = self.messages.iter_mut().find(|m| m.id == id);
        let Some(message) = found.filter(|m| !m.deleted && m.channel_id == channel) else {
            return error(404, 10008, "Unknown Message");
        };
        if message.author_id != BOT_ID {
            return error(403, 50005, "Cannot edit a message authored by another user");
        }
        // As on Discord: an edit without `content` keeps the text.
        match content {
            Ok(content) => message.content = content,
            Err(_) if body.get("content").is_none() => {}
            Err(reply) => return reply,
        }
        if let Some(allowed) = body.get("allowed_mentions") {
            message.allowed_mentions = Some(allowed.clone());
        }
        // As on Discord: an edit without `components` keeps the buttons the message has.
        if let Some(components) = components {
            message.components = components;
        }
        message.edits += 1;
        ok(payload::message(message))
    }

    fn remove(&mut self, id: &str) -> Reply {
        match self.messages.iter_mut().find(|m| m.id == id && !m.deleted) {
            Some(message) => {
                message.deleted = true;
                no_content()
            }
            None => error(404, 10008, "Unknown Message"),
        }
    }

    /// `POST /interactions/{id}/{token}/callback`: within 3 s, once.
    fn callback(&mut self, token: &str, body: &Value) -> Reply {
        let Some(interaction) = self.interactions.get(token) else {
            return error(404, 10062, "Unknown interaction");
        };
        if interaction.dispatched_at.elapsed() > CALLBACK_WITHIN {
            return error(404, 10062, "Unknown interaction");
        }
        if interaction.callback.is_some() {
            return error(400, 40060, "Interaction has already been acknowledged.");
        }
        let channel = interaction.channel_id.clone();
        let kind = body["type"].as_u64();
        let component = interaction.component;
        match kind {
            Some(4 | 5) => {}
            // A deferred update of the pressed message: acknowledged, nothing shown.
            Some(6) if component => {
                if let Some(interaction) = self.interactions.get_mut(token) {
                    interaction.callback = Some(body.clone());
                }
                return no_content();
            }
            _ => return error(400, 50035, "Invalid Form Body"),
        }
        let id = self.new_id();
        self.messages.push(Message {
            id: id.clone(),
            channel_id: channel,
            author_id: BOT_ID.to_string(),
            content: body["data"]["content"].as_str().unwrap_or("").to_string(),
            allowed_mentions: body["data"].get("allowed_mentions").cloned(),
            reply_to: None,
            flags: body["data"]["flags"].as_u64().unwrap_or(0),
            edits: 0,
            deleted: false,
            attachments: Vec::new(),
            components: Value::Null,
        });
        if let Some(interaction) = self.interactions.get_mut(token) {
            interaction.callback = Some(body.clone());
            interaction.original = Some(id);
        }
        no_content()
    }

    /// `PATCH /webhooks/{app}/{token}/messages/{id or @original}`.
    fn webhook_edit(
        &mut self,
        bucket: (usize, Duration),
        token: &str,
        id: &str,
        body: &Value,
    ) -> Reply {
        let Some(interaction) = self.interactions.get(token) else {
            return error(404, 10015, "Unknown Webhook");
        };
        let (Some(original), channel) = (&interaction.original, interaction.channel_id.clone())
        else {
            return error(404, 10008, "Unknown Message");
        };
        let id = if id == "@original" {
            original.clone()
        } else {
            id.to_string()
        };
        self.edit(bucket, &format!("webhook:{token}"), &channel, &id, body)
    }

    /// `POST /webhooks/{app}/{token}`: a follow-up message of an answered interaction.
    fn follow_up(&mut self, bucket: (usize, Duration), token: &str, body: &Value) -> Reply {
        let Some(interaction) = self.interactions.get(token) else {
            return error(404, 10015, "Unknown Webhook");
        };
        if interaction.callback.is_none() {
            return error(404, 10015, "Unknown Webhook");
        }
        let channel = interaction.channel_id.clone();
        self.create(bucket, &format!("webhook:{token}"), &channel, body)
    }
}

/// `GET /gateway/bot`: the gateway URL, the shard count Discord recommends (one per 1,000
/// guilds, at least one; the fake has few) and the session start limit: 1,000 IDENTIFYs in the
/// 24 hours from the first, one at a time (`max_concurrency` 1, as for every bot outside the
/// large-bot programme), unless a test set other limits.
fn gateway_bot(shared: &Shared, state: &State) -> Value {
    const DAY_MS: u64 = 86_400_000;
    let used = state.identify.len() as u64;
    let since = state
        .first_identify
        .map_or(0, |at| at.elapsed().as_millis() as u64);
    json!({
        "url": format!("ws://{}/gw", shared.addr),
        "shards": state.recommended_shards.max(1),
        "session_start_limit": {
            "total": state.session_total,
            "remaining": state.session_total.saturating_sub(used),
            "reset_after": DAY_MS.saturating_sub(since),
            "max_concurrency": state.max_concurrency,
        },
    })
}
