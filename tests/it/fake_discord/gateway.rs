//! The fake gateway: HELLO, IDENTIFY, READY, heartbeat ACKs, then the dispatches tests push.
//! Like Discord it honours IDENTIFY's `shard: [id, count]`: a session gets the events of the
//! guilds whose `(guild_id >> 22) % count` is its id, and DMs only on shard 0; a shard id outside
//! the count is closed with 4010 (Invalid shard).
//!
//! And like Discord it limits session starts (the gateway docs, "Identifying", "Rate Limiting"
//! and "Max Concurrency"): one IDENTIFY per 5 seconds per rate-limit key
//! (`shard_id % max_concurrency`, so `max_concurrency` at once), answered beyond that with Invalid Session (op 9, `d: false`),
//! after which the client must disconnect and identify again later; and `total` IDENTIFYs a day
//! (1,000), beyond which every session of the bot is closed with 4004 (Authentication failed)
//! and the token stops working, as Discord resets a token that starts too many sessions.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message as Frame, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::{FAKE_TOKEN, Shared, payload};

/// The pseudo-event that makes every session close (tests of reconnection).
pub const CLOSE: &str = "__CLOSE__";
/// Discord's close code for a session that timed out: the client must identify again.
const SESSION_TIMEOUT: u16 = 4009;
/// Discord's close code for an IDENTIFY with an impossible shard.
const INVALID_SHARD: u16 = 4010;
/// The pseudo-event that closes every session with 4004: the token was reset.
pub const RESET: &str = "__RESET__";
/// Discord's close code for a token it does not accept (or no longer does).
const AUTHENTICATION_FAILED: u16 = 4004;
/// The window `max_concurrency` IDENTIFYs per rate-limit key are allowed in.
pub const IDENTIFY_WINDOW: Duration = Duration::from_secs(5);
/// How long a session refused with op 9 stays open for the client to close it.
const LINGER: Duration = Duration::from_secs(30);

/// The route `GET /api/v10/gateway` points at.
pub fn routes(shared: Arc<Shared>) -> Router {
    Router::new().route("/gw", get(upgrade)).with_state(shared)
}

async fn upgrade(State(shared): State<Arc<Shared>>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| session(socket, shared))
}

async fn send(socket: &mut WebSocket, value: Value) -> bool {
    socket
        .send(Frame::Text(value.to_string().into()))
        .await
        .is_ok()
}

/// Reads frames until IDENTIFY, answering heartbeats; its shard (`[0, 1]` when it names none),
/// or `None` when the client went away or the IDENTIFY was refused.
async fn identify(socket: &mut WebSocket, shared: &Shared) -> Option<[u64; 2]> {
    while let Some(Ok(frame)) = socket.recv().await {
        let Frame::Text(text) = frame else { continue };
        let Ok(payload) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        match payload["op"].as_u64() {
            Some(1) if !send(socket, json!({ "op": 11 })).await => return None,
            // RESUME: this fake keeps no sessions, so it is refused; the client identifies.
            Some(6) if !send(socket, json!({ "op": 9, "d": false })).await => return None,
            Some(2) => return admit(socket, shared, &payload["d"]).await,
            _ => {}
        }
    }
    None
}

/// What Discord makes of an IDENTIFY: its shard when a session starts, `None` when it closed
/// the connection (bad token, day's limit spent, impossible shard) or refused it with op 9.
async fn admit(socket: &mut WebSocket, shared: &Shared, d: &Value) -> Option<[u64; 2]> {
    let verdict = shared.lock().judge_identify(d);
    match verdict {
        Verdict::Start(shard) => Some(shard),
        Verdict::Close(code, reason) => {
            close(socket, code, reason).await;
            None
        }
        Verdict::TooFast => {
            if send(socket, json!({ "op": 9, "d": false })).await {
                linger(socket).await;
            }
            None
        }
        Verdict::Reset => {
            let _ = shared.dispatch.send((RESET.to_string(), Value::Null));
            close(socket, AUTHENTICATION_FAILED, "Authentication failed.").await;
            None
        }
    }
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = socket.send(Frame::Close(Some(frame))).await;
}

/// After an Invalid Session the connection stays open, answering heartbeats, until the client
/// closes it (or [`LINGER`] passes); a new IDENTIFY on it is not answered.
async fn linger(socket: &mut WebSocket) {
    let until = tokio::time::Instant::now() + LINGER;
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(until, socket.recv()).await {
        let Frame::Text(text) = frame else {
            if matches!(frame, Frame::Close(_)) {
                return;
            }
            continue;
        };
        let op = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|p| p["op"].as_u64());
        if op == Some(1) && !send(socket, json!({ "op": 11 })).await {
            return;
        }
    }
}

/// What an IDENTIFY gets.
enum Verdict {
    /// A session starts on this shard.
    Start([u64; 2]),
    /// The connection is closed with this code.
    Close(u16, &'static str),
    /// Too soon after another IDENTIFY of its rate-limit key: op 9.
    TooFast,
    /// Past the day's limit: the token is reset and every session closed.
    Reset,
}

impl super::State {
    /// Counts an IDENTIFY against the day's limit and judges it as Discord does.
    fn judge_identify(&mut self, d: &Value) -> Verdict {
        let now = tokio::time::Instant::now();
        self.identify.push(d.clone());
        self.first_identify.get_or_insert(now);
        let token = d["token"].as_str().unwrap_or_default();
        let token = token.strip_prefix("Bot ").unwrap_or(token);
        if token != FAKE_TOKEN || self.token_reset {
            return Verdict::Close(AUTHENTICATION_FAILED, "Authentication failed.");
        }
        if self.identify.len() as u64 > self.session_total {
            self.token_reset = true;
            return Verdict::Reset;
        }
        let shard = &d["shard"];
        let shard = match (shard[0].as_u64(), shard[1].as_u64()) {
            (None, None) if shard.is_null() => [0, 1],
            (Some(id), Some(count)) if id < count => [id, count],
            _ => return Verdict::Close(INVALID_SHARD, "Invalid shard."),
        };
        let key = shard[0] % self.max_concurrency.max(1);
        let recent = self.identify_windows.entry(key).or_default();
        recent.retain(|at| now.duration_since(*at) < IDENTIFY_WINDOW);
        // Each key starts one session per window: `max_concurrency` keys, as many at once.
        if !recent.is_empty() {
            self.invalid_sessions += 1;
            return Verdict::TooFast;
        }
        recent.push(now);
        self.started.push((shard[0], now));
        Verdict::Start(shard)
    }
}

async fn session(mut socket: WebSocket, shared: Arc<Shared>) {
    let hello = json!({ "op": 10, "d": { "heartbeat_interval": 41_250 } });
    if !send(&mut socket, hello).await {
        return;
    }
    let Some(shard) = identify(&mut socket, &shared).await else {
        return;
    };
    let mut dispatches = shared.dispatch.subscribe();
    let mut seq = 1;
    let ready = payload::ready(&shared.addr.to_string(), shard);
    let frame = json!({ "op": 0, "s": seq, "t": "READY", "d": ready });
    if !send(&mut socket, frame).await {
        return;
    }
    shared.lock().sessions += 1;
    shared.ready.send_modify(|sessions| *sessions += 1);
    loop {
        tokio::select! {
            frame = socket.recv() => match frame {
                Some(Ok(Frame::Text(text))) => {
                    let op = serde_json::from_str::<Value>(&text).ok().and_then(|p| p["op"].as_u64());
                    if op == Some(1) && !send(&mut socket, json!({ "op": 11 })).await {
                        return;
                    }
                }
                Some(Ok(Frame::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
            event = dispatches.recv() => match event {
                Ok((t, _)) if t == CLOSE => {
                    return close(&mut socket, SESSION_TIMEOUT, "session timed out").await;
                }
                Ok((t, _)) if t == RESET => {
                    return close(&mut socket, AUTHENTICATION_FAILED, "Authentication failed.").await;
                }
                Ok((_, d)) if payload::shard_of(&d, shard[1]) != shard[0] => {}
                Ok((t, d)) => {
                    seq += 1;
                    let id = d["id"].as_str().map(str::to_string);
                    if !send(&mut socket, json!({ "op": 0, "s": seq, "t": t, "d": d })).await {
                        return;
                    }
                    if let Some(id) = id.filter(|_| t == "MESSAGE_CREATE") {
                        let now = tokio::time::Instant::now();
                        shared.lock().delivered.entry(id).or_insert(now);
                    }
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
        }
    }
}
