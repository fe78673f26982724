//! The fake's webhook, as Telegram's Bot API server runs one (telegram-bot-api's WebhookActor):
//! setWebhook/deleteWebhook/getWebhookInfo with the real checks and error texts; while a webhook
//! is set getUpdates answers 409 Conflict; each update is POSTed to the URL with the secret
//! header, one at a time per chat (the next one of a chat waits for the previous one's 2xx), up
//! to 40 requests at once over all chats; an update whose request fails, answers non-2xx or
//! times out is sent again: at once the first time (or after the `Retry-After` the answer
//! asked), then after 2, 4, 8... seconds, at most 60. The last failure shows in
//! getWebhookInfo. Like a local Bot API server (`--local`), the fake accepts http URLs on any
//! port; it resolves only 127.0.0.1 and localhost.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::{Answer, Shared, St};

/// Telegram's default `max_connections`.
const MAX_CONNECTIONS: usize = 40;
/// The longest wait between two attempts of one update.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);
/// What the real server answers getUpdates while a webhook is set.
pub const CONFLICT: &str = "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first";

/// One attempt to deliver an update to the webhook.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The update's id.
    pub update_id: i64,
    /// When it was sent.
    pub at: Instant,
    /// `Ok(status)` when the bot answered 2xx (and the fake saw it), else what went wrong.
    pub outcome: Result<u16, String>,
}

/// The webhook's state inside the fake's.
#[derive(Default)]
pub struct Hook {
    pub(super) secret: String,
    pub(super) allowed: Option<Vec<String>>,
    /// Bumped by every setWebhook and deleteWebhook: a deliverer of an older one stops.
    generation: u64,
    in_flight: HashSet<i64>,
    /// Per update id: failures so far, the current delay, when it may be sent again.
    retries: std::collections::HashMap<i64, (u32, Duration, Instant)>,
    pub(super) deliveries: Vec<Delivery>,
    last_error: Option<(i64, String)>,
    /// Test knob: this many 2xx answers are lost on the way back, so the update is sent again.
    pub(super) lose_answers: usize,
    /// How long a request may take before it counts as failed.
    pub(super) answer_timeout: Option<Duration>,
}

/// setWebhook, with the checks of the real server; starts delivering to the new URL.
pub(super) fn set(shared: &Arc<Shared>, body: &Value) -> Answer {
    let url = body["url"].as_str().unwrap_or("");
    let secret = body["secret_token"].as_str().unwrap_or("");
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if !secret.chars().all(allowed) {
        return bad("secret token contains unallowed characters");
    }
    if secret.len() > 256 {
        return bad("secret token is too long");
    }
    if url.is_empty() {
        return delete(shared, body);
    }
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return bad("bad webhook: Wrong HTTP URL specified");
    };
    if !matches!(parsed.scheme(), "http" | "https") {
        return bad("bad webhook: An HTTPS URL must be provided for webhook");
    }
    if !matches!(parsed.host_str(), Some("127.0.0.1" | "localhost")) {
        return bad("bad webhook: Failed to resolve host: Name or service not known");
    }
    let generation = {
        let mut st = shared.state.lock().unwrap();
        if body["drop_pending_updates"].as_bool() == Some(true) {
            st.updates.clear();
        }
        st.webhook = url.to_string();
        let hook = &mut st.hook;
        hook.secret = secret.to_string();
        if let Some(kinds) = body["allowed_updates"].as_array() {
            let kinds = kinds.iter().filter_map(|k| k.as_str().map(String::from));
            hook.allowed = Some(kinds.collect());
        }
        hook.generation += 1;
        hook.in_flight.clear();
        hook.retries.clear();
        hook.last_error = None;
        hook.generation
    };
    // A long poll running now ends with 409 (see `get_updates`).
    shared.new_update.notify_waiters();
    tokio::spawn(deliver(shared.clone(), generation));
    Ok(json!(true))
}

/// deleteWebhook: delivery stops; getUpdates works again.
pub(super) fn delete(shared: &Arc<Shared>, body: &Value) -> Answer {
    let mut st = shared.state.lock().unwrap();
    if body["drop_pending_updates"].as_bool() == Some(true) {
        st.updates.clear();
    }
    st.webhook.clear();
    st.hook.secret.clear();
    st.hook.generation += 1;
    st.hook.in_flight.clear();
    st.hook.retries.clear();
    st.hook.last_error = None;
    drop(st);
    shared.new_update.notify_waiters();
    Ok(json!(true))
}

/// getWebhookInfo.
pub(super) fn info(st: &St) -> Answer {
    let mut info = json!({ "url": st.webhook, "has_custom_certificate": false,
        "pending_update_count": st.updates.len() });
    if !st.webhook.is_empty() {
        info["max_connections"] = json!(MAX_CONNECTIONS);
        if let Some(allowed) = &st.hook.allowed {
            info["allowed_updates"] = json!(allowed);
        }
    }
    if let Some((date, message)) = &st.hook.last_error {
        info["last_error_date"] = json!(date);
        info["last_error_message"] = json!(message);
    }
    Ok(info)
}

fn bad(description: &str) -> Answer {
    Err((400, format!("Bad Request: {description}"), None))
}

/// The chat an update belongs to: updates of one chat are delivered one at a time, in order.
fn queue_of(update: &Value) -> i64 {
    let chat = update["message"]["chat"]["id"]
        .as_i64()
        .or_else(|| update["callback_query"]["message"]["chat"]["id"].as_i64())
        .or_else(|| update["callback_query"]["from"]["id"].as_i64())
        .or_else(|| update["stopped_message_generation"]["chat"]["id"].as_i64());
    chat.unwrap_or_else(|| i64::MIN + update["update_id"].as_i64().unwrap_or(0))
}

/// Delivers the pending updates of webhook `generation` until another setWebhook or a
/// deleteWebhook replaces it, or the fake stops.
async fn deliver(shared: Arc<Shared>, generation: u64) {
    let client = reqwest::Client::new();
    loop {
        let notified = shared.new_update.notified();
        let (ready, wake) = {
            let mut st = shared.state.lock().unwrap();
            if st.hook.generation != generation || shared.stop.is_cancelled() {
                return;
            }
            due(&mut st)
        };
        for update in ready {
            tokio::spawn(attempt(shared.clone(), client.clone(), generation, update));
        }
        let wake = wake.unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        tokio::select! {
            () = notified => {}
            () = tokio::time::sleep_until(wake) => {}
            () = shared.stop.cancelled() => return,
        }
    }
}

/// The updates to send now (marked in flight), and when the next waiting one is due.
fn due(st: &mut St) -> (Vec<Value>, Option<Instant>) {
    let now = Instant::now();
    if let Some(allowed) = st.hook.allowed.clone() {
        let kept = |u: &Value| allowed.iter().any(|k| u.get(k).is_some());
        st.updates.retain(kept);
    }
    let (mut ready, mut wake, mut blocked) = (Vec::new(), None::<Instant>, HashSet::new());
    for update in &st.updates {
        let queue = queue_of(update);
        if !blocked.insert(queue) || st.hook.in_flight.contains(&queue) {
            continue;
        }
        let id = update["update_id"].as_i64().unwrap_or(0);
        if let Some(&(_, _, at)) = st.hook.retries.get(&id).filter(|r| r.2 > now) {
            wake = Some(wake.map_or(at, |w| w.min(at)));
            continue;
        }
        if st.hook.in_flight.len() + ready.len() >= MAX_CONNECTIONS {
            break;
        }
        ready.push(update.clone());
    }
    for update in &ready {
        st.hook.in_flight.insert(queue_of(update));
    }
    (ready, wake)
}

/// Sends one update and notes the outcome.
async fn attempt(shared: Arc<Shared>, client: reqwest::Client, generation: u64, update: Value) {
    let (url, secret, timeout) = {
        let mut st = shared.state.lock().unwrap();
        note_sent(&mut st, &update);
        let timeout = st.hook.answer_timeout.unwrap_or(Duration::from_secs(60));
        (st.webhook.clone(), st.hook.secret.clone(), timeout)
    };
    let mut request = client.post(url).timeout(timeout).json(&update);
    if !secret.is_empty() {
        request = request.header("X-Telegram-Bot-Api-Secret-Token", secret);
    }
    let at = Instant::now();
    let sent = request.send().await;
    let mut st = shared.state.lock().unwrap();
    if st.hook.generation != generation {
        return;
    }
    let id = update["update_id"].as_i64().unwrap_or(0);
    let (outcome, retry_after) = outcome(&mut st, sent);
    st.hook.in_flight.remove(&queue_of(&update));
    st.hook.deliveries.push(Delivery {
        update_id: id,
        at,
        outcome: outcome.clone(),
    });
    match outcome {
        Ok(_) => {
            st.updates.retain(|u| u["update_id"].as_i64() != Some(id));
            st.hook.retries.remove(&id);
        }
        Err(error) => failed(&mut st, id, error, retry_after),
    }
    drop(st);
    shared.new_update.notify_waiters();
}

/// What the answer `sent` means: the status, or the error the real server would note, with the
/// `Retry-After` the answer asked for.
fn outcome(
    st: &mut St,
    sent: reqwest::Result<reqwest::Response>,
) -> (Result<u16, String>, Option<Duration>) {
    match sent {
        Ok(response) if response.status().is_success() && st.hook.lose_answers > 0 => {
            st.hook.lose_answers -= 1;
            (Err("Webhook connection closed".into()), None)
        }
        Ok(response) if response.status().is_success() => (Ok(response.status().as_u16()), None),
        Ok(response) => {
            let status = response.status();
            let retry = response.headers().get("retry-after");
            let retry = retry.and_then(|v| v.to_str().ok()?.parse().ok());
            let reason = status.canonical_reason().unwrap_or("");
            let error = format!(
                "Wrong response from the webhook: {} {reason}",
                status.as_u16()
            );
            (Err(error), retry.map(Duration::from_secs))
        }
        Err(error) if error.is_timeout() => (Err("Read timeout expired".into()), None),
        Err(error) if error.is_connect() => (Err("Connection refused".into()), None),
        Err(_) => (Err("Webhook connection closed".into()), None),
    }
}

/// Schedules the next attempt of update `id` after a failure, as the real server does.
fn failed(st: &mut St, id: i64, error: String, retry_after: Option<Duration>) {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    st.hook.last_error = Some((unix, error));
    let (fails, delay, _) =
        st.hook
            .retries
            .get(&id)
            .copied()
            .unwrap_or((0, Duration::from_secs(1), Instant::now()));
    let (delay, wait) = match (retry_after, fails) {
        (Some(asked), _) => (delay, asked),
        (None, 0) => (delay, Duration::ZERO),
        (None, _) => {
            let next = (delay * 2).min(MAX_RETRY_DELAY);
            (next, next)
        }
    };
    let entry = (fails + 1, delay, Instant::now() + wait);
    st.hook.retries.insert(id, entry);
}

/// Notes when a user message was first handed to the bot, as getUpdates does.
fn note_sent(st: &mut St, update: &Value) {
    let message = &update["message"];
    if let (Some(chat), Some(id)) = (
        message["chat"]["id"].as_i64(),
        message["message_id"].as_i64(),
    ) {
        st.delivered.entry((chat, id)).or_insert_with(Instant::now);
    }
}
