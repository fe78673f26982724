//! A fake Telegram Bot API: `POST /bot{token}/{method}` with case-insensitive method names and
//! JSON bodies, enforcing what the real one enforces.
//!
//! It checks the token (401), valid HTML of Telegram's subset (400 "can't parse entities", with
//! the same parser the bot uses), 1..4096 UTF-16 units after entity parsing, "message is not
//! modified", deleted messages, blocked chats (403), and the flood limits: a minimum gap between
//! two sends/edits/drafts in one chat, a rolling window per group and Telegram's bot-wide 30 per
//! second over all chats, answered with 429 and `retry_after`. Like the real server it holds a
//! getUpdates open for its whole `timeout` when there is nothing to deliver and answers at once
//! when an update arrives meanwhile; it can be put into an outage, where every method answers
//! 502 with an HTML page, as the proxy in front of the Bot API does. It notes when each user
//! message was handed to the bot by getUpdates (`delivered`) and how long it waited for a poll.
//! With a webhook set (`webhook.rs`) getUpdates answers 409 and updates are POSTed to the bot
//! instead, retried like the real server does; tests read every attempt (`deliveries`).
//! Users' photos, documents and voice messages are served through `getFile` and
//! `/file/bot<token>/<file_path>` with the 20 MB limit bots have (`files.rs`).
//! Tests push updates (`private_text`, `group_text`, `callback`), read what every
//! chat shows (`messages`, `drafts`) and every call made (`calls`).

#![allow(dead_code)]

mod files;
mod methods;
mod updates;
mod webhook;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::fake_net::{self, IDLE};

pub use files::Media;
pub use updates::{ChatRef, User, group, private};
pub use webhook::Delivery;

/// The token the fake accepts.
pub const FAKE_TOKEN: &str = "123456:fake-secret-token";
/// The bot's user id.
pub const BOT_ID: i64 = 777_000;
/// The bot's username.
pub const BOT_USERNAME: &str = "parley_bot";

/// Flood limits the fake enforces.
#[derive(Debug, Clone, Copy)]
pub struct FakeLimits {
    /// Shortest gap between two counted calls in one chat.
    pub min_gap: Duration,
    /// Counted calls allowed per `group_per` in a group.
    pub group_count: usize,
    /// The group window.
    pub group_per: Duration,
    /// Counted calls allowed in any one second over all chats (Telegram: about 30).
    pub global_per_second: usize,
}

impl Default for FakeLimits {
    fn default() -> Self {
        Self {
            min_gap: Duration::from_millis(35),
            group_count: 20,
            group_per: Duration::from_millis(900),
            global_per_second: 30,
        }
    }
}

/// One API call as the fake received it and answered it.
#[derive(Debug, Clone)]
pub struct Call {
    /// The method, lowercased.
    pub method: String,
    /// The JSON body.
    pub body: Value,
    /// When it arrived.
    pub at: Instant,
    /// `None` when it succeeded, else the error code.
    pub error: Option<i64>,
}

impl Call {
    /// The `chat_id` it addressed.
    pub fn chat(&self) -> Option<i64> {
        self.body["chat_id"].as_i64()
    }
}

/// A message the bot sent, as the chat shows it now.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Its id.
    pub id: i64,
    /// Its chat.
    pub chat: i64,
    /// The forum topic it is in.
    pub thread: Option<i64>,
    /// The message it replies to.
    pub reply_to: Option<i64>,
    /// The text as sent (HTML when `html`).
    pub raw: String,
    /// The text after entity parsing.
    pub text: String,
    /// Sent with `parse_mode: HTML`.
    pub html: bool,
    /// Its inline keyboard, if any.
    pub markup: Option<Value>,
    /// Edits it received.
    pub edits: u32,
}

#[derive(Default)]
struct St {
    updates: Vec<Value>,
    next_update: i64,
    next_message: i64,
    messages: BTreeMap<(i64, i64), Sent>,
    user_messages: HashMap<(i64, i64), Value>,
    drafts: BTreeMap<(i64, i64), String>,
    calls: Vec<Call>,
    commands: Vec<Value>,
    webhook: String,
    admins: HashSet<(i64, i64)>,
    no_drafts: bool,
    limits: FakeLimits,
    floods: HashMap<i64, Instant>,
    recent: HashMap<i64, Vec<Instant>>,
    global: VecDeque<Instant>,
    delivered: HashMap<(i64, i64), Instant>,
    pushed: HashMap<(i64, i64), Instant>,
    waited: HashMap<(i64, i64), Duration>,
    outage: bool,
    deleted: HashSet<(i64, i64)>,
    blocked: HashSet<i64>,
    callbacks: HashMap<String, bool>,
    pressed_at: HashMap<String, Instant>,
    stoppable: HashSet<(i64, i64)>,
    too_many: usize,
    /// The 429s by the limit that met them: a chat's one a second, a group's 20 a minute, the
    /// bot-wide 30 a second (the real server does not say; the fake knows).
    too_many_by_limit: [usize; 3],
    reject_html: bool,
    broken_polls: usize,
    /// getUpdates calls so far: a poll overtaken by a newer one is ended with 409.
    polls: u64,
    /// Polls ended with 409 because another overtook them.
    poll_conflicts: usize,
    /// The newest update pushed, to deliver again.
    last_given: Option<Value>,
    files: HashMap<String, files::Stored>,
    downloads: Vec<String>,
    files_lost: bool,
    hook: webhook::Hook,
}

struct Shared {
    state: Mutex<St>,
    new_update: Notify,
    /// Cancelled when the fake is dropped: stops its webhook deliveries.
    stop: tokio_util::sync::CancellationToken,
}

/// A running fake Bot API; stops when dropped.
pub struct FakeTelegram {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl FakeTelegram {
    /// Starts the fake with the default limits.
    pub async fn start() -> Self {
        Self::start_with(FakeLimits::default()).await
    }

    /// Starts the fake with these flood limits.
    pub async fn start_with(limits: FakeLimits) -> Self {
        let state = St {
            next_update: 1,
            next_message: 100,
            limits,
            webhook: "https://old.example/hook".into(),
            ..St::default()
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            new_update: Notify::new(),
            stop: tokio_util::sync::CancellationToken::new(),
        });
        let app = Router::new()
            .route("/{bot}/{method}", post(handle))
            .route("/file/{bot}/{*path}", axum::routing::get(files::download))
            .with_state(shared.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            fake_net::serve(listener, app, IDLE).await;
        });
        Self { addr, shared, task }
    }

    /// The Bot API root to configure as `telegram.api_url`.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn st(&self) -> MutexGuard<'_, St> {
        self.shared.state.lock().unwrap()
    }

    /// Queues an update (an object with one of `message`, `callback_query`); returns its id.
    pub fn push_update(&self, mut update: Value) -> i64 {
        let id = {
            let mut st = self.st();
            let id = st.next_update;
            st.next_update += 1;
            update["update_id"] = json!(id);
            st.last_given = Some(update.clone());
            st.updates.push(update);
            id
        };
        self.shared.new_update.notify_waiters();
        id
    }

    /// Delivers the newest update again, with the same id, as Telegram does when the instance
    /// that polled it did not confirm it (it died) or a webhook call was not answered in time.
    pub fn deliver_last_again(&self) {
        {
            let mut st = self.st();
            let update = st.last_given.clone().expect("an update pushed before");
            st.updates.push(update);
        }
        self.shared.new_update.notify_waiters();
    }

    /// A user writes `text` in `chat`; returns the message id.
    pub fn user_writes(&self, chat: &updates::ChatRef, from: &User, text: &str) -> i64 {
        self.user_message(chat, from, text, None)
    }

    /// A user replies to the bot's message `to` in `chat`; returns the message id.
    pub fn user_replies(&self, chat: &updates::ChatRef, from: &User, text: &str, to: i64) -> i64 {
        self.user_message(chat, from, text, Some(to))
    }

    fn user_message(
        &self,
        chat: &updates::ChatRef,
        from: &User,
        text: &str,
        to: Option<i64>,
    ) -> i64 {
        self.post(chat, |st, id| {
            let replied = to.and_then(|to| st.messages.get(&(chat.id, to)).cloned());
            updates::message(id, chat, from, text, replied.as_ref())
        })
    }

    /// Posts the user message `build` makes with its new id into `chat`; returns the id.
    fn post(&self, chat: &updates::ChatRef, build: impl FnOnce(&mut St, i64) -> Value) -> i64 {
        let (id, message) = {
            let mut st = self.st();
            let id = st.next_message;
            st.next_message += 1;
            let message = build(&mut st, id);
            st.user_messages.insert((chat.id, id), message.clone());
            st.pushed.insert((chat.id, id), Instant::now());
            (id, message)
        };
        self.push_update(json!({ "message": message }));
        id
    }

    /// A user presses an inline button with `data` under the bot's message `message`.
    pub fn press(&self, chat: &updates::ChatRef, from: &User, message: i64, data: &str) -> String {
        let (id, sent) = {
            let mut st = self.st();
            let id = format!("cb{}", st.next_update);
            st.callbacks.insert(id.clone(), false);
            st.pressed_at.insert(id.clone(), Instant::now());
            (id, st.messages.get(&(chat.id, message)).cloned())
        };
        let message = sent
            .map(|s| updates::bot_message(&s, chat))
            .unwrap_or(Value::Null);
        let query = json!({ "id": id, "from": from.json(), "chat_instance": "ci",
            "data": data, "message": message });
        self.push_update(json!({ "callback_query": query }));
        id
    }

    /// A user presses an inline button (see [`FakeTelegram::press`]); returns the answer the
    /// bot gave the press, once it gave one.
    pub async fn press_answered(
        &self,
        chat: &updates::ChatRef,
        from: &User,
        message: i64,
        data: &str,
    ) -> String {
        let press = self.press(chat, from, message, data);
        self.wait_for(10, "the callback answer", |tg| tg.callback_answered(&press))
            .await;
        self.callback_text(&press).unwrap_or_default()
    }

    /// The user presses the stop control of the newest draft sent with `can_stop` in the
    /// private `chat`: the draft goes and a `stopped_message_generation` update arrives. False
    /// (and nothing happens) when no draft there offered the control.
    pub fn stop_draft(&self, chat: &updates::ChatRef) -> bool {
        let draft = {
            let mut st = self.st();
            let draft = st
                .stoppable
                .iter()
                .filter(|(c, _)| *c == chat.id)
                .max()
                .copied();
            let Some((_, draft)) = draft else {
                return false;
            };
            st.stoppable.retain(|(c, _)| *c != chat.id);
            st.drafts.remove(&(chat.id, draft));
            draft
        };
        let chat_json = json!({ "id": chat.id, "type": "private", "first_name": "User" });
        let stopped = json!({ "chat": chat_json, "draft_id": draft });
        self.push_update(json!({ "stopped_message_generation": stopped }));
        true
    }

    /// The answer text of the callback query `id`, once answered.
    pub fn callback_text(&self, id: &str) -> Option<String> {
        let st = self.st();
        let call = st.calls.iter().rev().find(|c| {
            c.method == "answercallbackquery" && c.body["callback_query_id"] == json!(id)
        });
        call.map(|c| c.body["text"].as_str().unwrap_or("").to_string())
    }

    /// True once the callback query `id` was answered.
    pub fn callback_answered(&self, id: &str) -> bool {
        self.st().callbacks.get(id).copied().unwrap_or(false)
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.st().calls.clone()
    }

    /// The calls of `method` (any case) so far.
    pub fn calls_of(&self, method: &str) -> Vec<Call> {
        let method = method.to_ascii_lowercase();
        self.calls()
            .into_iter()
            .filter(|c| c.method == method)
            .collect()
    }

    /// The bot's messages in `chat`, oldest first.
    pub fn messages(&self, chat: i64) -> Vec<Sent> {
        let st = self.st();
        let chat_range = (chat, i64::MIN)..=(chat, i64::MAX);
        st.messages
            .range(chat_range)
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// When getUpdates first handed the user message `id` in `chat` to the bot.
    pub fn delivered(&self, chat: i64, id: i64) -> Option<Instant> {
        self.st().delivered.get(&(chat, id)).copied()
    }

    /// How long the user message `id` in `chat` waited for a getUpdates to ask for it: zero
    /// when a poll was open as it arrived.
    pub fn waited_for_poll(&self, chat: i64, id: i64) -> Option<Duration> {
        self.st().waited.get(&(chat, id)).copied()
    }

    /// The bot's message `id` in `chat`.
    pub fn message(&self, chat: i64, id: i64) -> Option<Sent> {
        self.st().messages.get(&(chat, id)).cloned()
    }

    /// The last draft text per draft id in `chat`.
    pub fn drafts(&self, chat: i64) -> Vec<String> {
        let st = self.st();
        st.drafts
            .iter()
            .filter(|((c, _), _)| *c == chat)
            .map(|(_, t)| t.clone())
            .collect()
    }

    /// The commands registered with setMyCommands.
    pub fn commands(&self) -> Vec<Value> {
        self.st().commands.clone()
    }

    /// The webhook URL now set ("" = none).
    pub fn webhook(&self) -> String {
        self.st().webhook.clone()
    }

    /// How many polls another getUpdates overtook (ended with 409).
    pub fn poll_conflicts(&self) -> usize {
        self.st().poll_conflicts
    }

    /// Every attempt to deliver an update to the webhook, in order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.st().hook.deliveries.clone()
    }

    /// The next `count` 2xx answers to webhook requests are lost on the way back (the
    /// connection drops): Telegram never sees them and sends those updates again.
    pub fn lose_webhook_answers(&self, count: usize) {
        self.st().hook.lose_answers = count;
    }

    /// How long a webhook request may take before Telegram counts it as failed (60 s).
    pub fn webhook_answer_timeout(&self, timeout: Duration) {
        self.st().hook.answer_timeout = Some(timeout);
    }

    /// How many 429s the fake answered.
    pub fn too_many_requests(&self) -> usize {
        self.st().too_many
    }

    /// The 429s by the limit that met them: (a chat's, a group's, the bot-wide).
    pub fn too_many_by_limit(&self) -> (usize, usize, usize) {
        let [chat, group, bot] = self.st().too_many_by_limit;
        (chat, group, bot)
    }

    /// Makes `user` an administrator of `chat`.
    pub fn make_admin(&self, chat: i64, user: i64) {
        self.st().admins.insert((chat, user));
    }

    /// Answers sendMessageDraft with 404, like a Bot API server older than 9.3.
    pub fn refuse_drafts(&self) {
        self.st().no_drafts = true;
    }

    /// Answers every HTML text with "can't parse entities", like a server with stricter rules.
    pub fn reject_html(&self) {
        self.st().reject_html = true;
    }

    /// Answers the next `count` getUpdates calls with 502 and an HTML page (a broken proxy).
    pub fn break_polls(&self, count: usize) {
        self.st().broken_polls = count;
    }

    /// Starts (`true`) or ends an outage: meanwhile every method answers 502 with an HTML page,
    /// as the reverse proxy in front of the Bot API does while the API is down.
    pub fn outage(&self, down: bool) {
        self.st().outage = down;
        self.shared.new_update.notify_waiters();
    }

    /// A user deletes their own message `id` in `chat`.
    pub fn user_deletes(&self, chat: i64, id: i64) {
        self.st().user_messages.remove(&(chat, id));
    }

    /// Floods `chat`: every counted call gets 429 until `wait` has passed.
    pub fn flood(&self, chat: i64, wait: Duration) {
        self.st().floods.insert(chat, Instant::now() + wait);
    }

    /// A user deletes the bot's message `id` in `chat`.
    pub fn delete(&self, chat: i64, id: i64) {
        let mut st = self.st();
        st.messages.remove(&(chat, id));
        st.deleted.insert((chat, id));
    }

    /// The user blocks the bot (private chat) or kicks it (group).
    pub fn block(&self, chat: i64) {
        self.st().blocked.insert(chat);
    }

    /// Waits until `check` holds, or panics after `secs` seconds with `what`.
    pub async fn wait_for(&self, secs: u64, what: &str, check: impl Fn(&FakeTelegram) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !check(self) {
            if Instant::now() >= deadline {
                for call in self.calls().iter().filter(|c| c.method != "getupdates") {
                    eprintln!("{} {} -> {:?}", call.method, call.body, call.error);
                }
                panic!("timed out waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        self.shared.stop.cancel();
        self.task.abort();
    }
}

/// An API answer: the result or an error with its code and description.
pub(crate) type Answer = Result<Value, (i64, String, Option<u64>)>;

async fn handle(
    State(shared): State<Arc<Shared>>,
    Path((bot, method)): Path<(String, String)>,
    raw: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&raw).unwrap_or(json!({}));
    let method = method.to_ascii_lowercase();
    if bot.strip_prefix("bot") != Some(FAKE_TOKEN) {
        return reply(Err((401, "Unauthorized".into(), None)));
    }
    if matches!(method.as_str(), "setwebhook" | "deletewebhook")
        && !shared.state.lock().unwrap().outage
    {
        let answer = match method.as_str() {
            "setwebhook" => webhook::set(&shared, &body),
            _ => webhook::delete(&shared, &body),
        };
        let error = answer.as_ref().err().map(|e| e.0);
        let call = Call {
            method,
            body,
            at: Instant::now(),
            error,
        };
        shared.state.lock().unwrap().calls.push(call);
        return reply(answer);
    }
    if method == "getupdates" {
        let conflict = {
            let st = shared.state.lock().unwrap();
            !st.webhook.is_empty() && !st.outage
        };
        if conflict {
            let call = Call {
                method,
                body,
                at: Instant::now(),
                error: Some(409),
            };
            shared.state.lock().unwrap().calls.push(call);
            return reply(Err((409, webhook::CONFLICT.into(), None)));
        }
        let broken = {
            let mut st = shared.state.lock().unwrap();
            let broken = st.broken_polls > 0 || st.outage;
            st.broken_polls = st.broken_polls.saturating_sub(1);
            let error = broken.then_some(502);
            let at = Instant::now();
            st.calls.push(Call {
                method,
                body: body.clone(),
                at,
                error,
            });
            broken
        };
        if broken {
            return bad_gateway();
        }
        return match methods::get_updates(&shared, &body).await {
            Err((502, _, _)) => bad_gateway(),
            answer => reply(answer),
        };
    }
    let answer = {
        let mut st = shared.state.lock().unwrap();
        let answer = match st.outage {
            true => Err((502, "Bad Gateway".into(), None)),
            false => methods::dispatch(&mut st, &method, &body),
        };
        if matches!(answer, Err((429, _, _))) {
            st.too_many += 1;
        }
        let error = answer.as_ref().err().map(|e| e.0);
        st.calls.push(Call {
            method,
            body,
            at: Instant::now(),
            error,
        });
        answer
    };
    match answer {
        Err((502, _, _)) => bad_gateway(),
        answer => reply(answer),
    }
}

/// What nginx in front of the Bot API answers while the API is down.
fn bad_gateway() -> Response {
    let page = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
        <center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";
    let html = [(axum::http::header::CONTENT_TYPE, "text/html")];
    (StatusCode::BAD_GATEWAY, html, page).into_response()
}

fn reply(answer: Answer) -> Response {
    let (status, body) = match answer {
        Ok(result) => (200, json!({ "ok": true, "result": result })),
        Err((code, description, retry)) => {
            let mut body = json!({ "ok": false, "error_code": code, "description": description });
            if let Some(secs) = retry {
                body["parameters"] = json!({ "retry_after": secs });
            }
            (code as u16, body)
        }
    };
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}
