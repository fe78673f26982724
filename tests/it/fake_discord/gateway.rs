//! The fake gateway: HELLO, IDENTIFY, READY, heartbeat ACKs, then the dispatches tests push.
//! Like Discord it honours IDENTIFY's `shard: [id, count]`: a session gets the events of the
//! guilds whose `(guild_id >> 22) % count` is its id, and DMs only on shard 0; a shard id outside
//! the count is closed with 4010 (Invalid shard).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message as Frame, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::{Shared, payload};

/// The pseudo-event that makes every session close (tests of reconnection).
pub const CLOSE: &str = "__CLOSE__";
/// Discord's close code for a session that timed out: the client must identify again.
const SESSION_TIMEOUT: u16 = 4009;
/// Discord's close code for an IDENTIFY with an impossible shard.
const INVALID_SHARD: u16 = 4010;

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
/// or `None` when the client went away.
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
            Some(2) => {
                note_identify(shared, &payload["d"]);
                let shard = &payload["d"]["shard"];
                let given = (shard[0].as_u64(), shard[1].as_u64());
                return match given {
                    (None, None) if shard.is_null() => Some([0, 1]),
                    (Some(id), Some(count)) if id < count => Some([id, count]),
                    _ => {
                        let frame = CloseFrame {
                            code: INVALID_SHARD,
                            reason: "Invalid shard.".into(),
                        };
                        let _ = socket.send(Frame::Close(Some(frame))).await;
                        None
                    }
                };
            }
            _ => {}
        }
    }
    None
}

/// Records an IDENTIFY, and when the first of the day came.
fn note_identify(shared: &Shared, d: &Value) {
    let mut state = shared.lock();
    state.identify.push(d.clone());
    let now = tokio::time::Instant::now();
    state.first_identify.get_or_insert(now);
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
                    let frame = CloseFrame { code: SESSION_TIMEOUT, reason: "session timed out".into() };
                    let _ = socket.send(Frame::Close(Some(frame))).await;
                    return;
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
