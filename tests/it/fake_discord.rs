//! A fake Discord: REST under `/api/v10` and a `ws://` gateway, strict like the real one.
//!
//! `FakeDiscord::start().await` serves both on 127.0.0.1; `proxy_url()` is what
//! `discord.proxy_url` should be. The gateway sends HELLO, waits for IDENTIFY, sends READY (bot
//! user [`BOT_ID`], application [`APP_ID`]) and answers heartbeats; tests then push
//! MESSAGE_CREATE and INTERACTION_CREATE dispatches. REST checks the bot token (401), the
//! 2,000-character limit (400, code 50035), empty messages (400, 50006), the per-channel bucket
//! of create and edit calls (429 with a `Retry-After` header and `retry_after` in the body),
//! deleted messages (404, 10008), missing permissions (403, 50013), edits of messages the bot
//! did not write (403, 50005), interactions answered too late (404, 10062) and Discord's global
//! limit of 50 bot-token requests per second (429 with `global: true`; interaction routes are
//! exempt, as on Discord). Every call is recorded, with its JSON body; the gateway notes when it
//! delivered each MESSAGE_CREATE (`delivered`). The gateway honours IDENTIFY's shard, sending a
//! guild's events only to shard `(guild_id >> 22) % count` and DMs only to shard 0;
//! `GET /gateway/bot` answers the recommended shard count and the session start limit, which
//! the gateway enforces: one IDENTIFY per 5 s per rate-limit key (`shard % max_concurrency`),
//! refused beyond that with Invalid Session (op 9), and 1,000 a day, beyond which the token is
//! reset (sessions closed with 4004, REST answers 401). Attachments of user messages and of
//! `/ask` are served at signed CDN-style URLs on the same address (`cdn.rs`).

#![allow(dead_code)]

mod cdn;
mod gateway;
mod payload;
mod rest;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::fake_net::{self, IDLE};

pub use cdn::FakeFile;
pub use payload::{Press, SlashCommand, UserMessage};

/// Discord's global limit: bot-token requests in any one second.
pub const GLOBAL_PER_SECOND: usize = 50;

/// The token the fake accepts.
pub const FAKE_TOKEN: &str = "fake-bot-token.discord.test";
/// The bot user's id, as sent in READY.
pub const BOT_ID: &str = "1000";
/// The bot's application id, as sent in READY.
pub const APP_ID: &str = "2000";

/// One REST call as the fake received it, with the status it answered.
#[derive(Debug, Clone)]
pub struct Call {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path after `/api/v10`.
    pub path: String,
    /// The JSON body (`Null` when none).
    pub body: Value,
    /// The status answered.
    pub status: u16,
    /// When it arrived.
    pub at: Instant,
    /// The wait a 429 asked for.
    pub retry_after: Option<Duration>,
}

/// A message the fake stores: a user's, or one the bot (or an interaction) wrote.
#[derive(Debug, Clone)]
pub struct Message {
    /// The snowflake.
    pub id: String,
    /// The channel (or thread) it lives in.
    pub channel_id: String,
    /// Who wrote it.
    pub author_id: String,
    /// What it shows now.
    pub content: String,
    /// `allowed_mentions` of the last create or edit that set it.
    pub allowed_mentions: Option<Value>,
    /// The `message_reference` it was created with.
    pub reply_to: Option<String>,
    /// Message flags (64 = ephemeral).
    pub flags: u64,
    /// Accepted edits.
    pub edits: u32,
    /// Deleted by a user or the bot.
    pub deleted: bool,
    /// Its Attachment objects.
    pub attachments: Vec<Value>,
    /// Its components (action rows of buttons), as last set.
    pub components: Value,
}

impl Message {
    /// The `custom_id` of every button under the message.
    pub fn button_ids(&self) -> Vec<String> {
        let rows = self.components.as_array().cloned().unwrap_or_default();
        rows.iter()
            .flat_map(|r| r["components"].as_array().cloned().unwrap_or_default())
            .filter_map(|b| b["custom_id"].as_str().map(String::from))
            .collect()
    }
}

/// One download of an attachment URL.
#[derive(Debug, Clone)]
pub struct Download {
    /// The URL's path.
    pub path: String,
    /// It carried an `Authorization` header.
    pub authorized: bool,
}

/// An interaction the fake dispatched.
#[derive(Debug, Clone)]
struct Interaction {
    channel_id: String,
    dispatched_at: Instant,
    /// A component interaction (a button press), which may also be answered with 6 or 7.
    component: bool,
    /// The callback body, once answered.
    callback: Option<Value>,
    /// The original response message, once it has content.
    original: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    messages: Vec<Message>,
    calls: Vec<Call>,
    buckets: HashMap<String, VecDeque<Instant>>,
    global: VecDeque<Instant>,
    delivered: HashMap<String, Instant>,
    rate_limited: usize,
    /// Of those, the ones the bot-wide limit met.
    rate_limited_global: usize,
    forbidden: HashSet<String>,
    interactions: HashMap<String, Interaction>,
    identify: Vec<Value>,
    /// When the first IDENTIFY of the day's session start limit came.
    first_identify: Option<Instant>,
    /// `session_start_limit.max_concurrency`: how many rate-limit keys identify at once.
    max_concurrency: u64,
    /// `session_start_limit.total`: IDENTIFYs allowed in a day.
    session_total: u64,
    /// The accepted IDENTIFYs of each rate-limit key within the last window.
    identify_windows: HashMap<u64, Vec<Instant>>,
    /// IDENTIFYs refused with Invalid Session for coming too fast.
    invalid_sessions: usize,
    /// The sessions started: shard id and when its IDENTIFY was accepted.
    started: Vec<(u64, Instant)>,
    /// The token was reset for starting too many sessions: nothing accepts it any more.
    token_reset: bool,
    sessions: usize,
    files: HashMap<String, (String, Vec<u8>)>,
    downloads: Vec<Download>,
    recommended_shards: u64,
}

struct Shared {
    addr: SocketAddr,
    bucket: (usize, Duration),
    state: Mutex<State>,
    dispatch: broadcast::Sender<(String, Value)>,
    ready: watch::Sender<usize>,
}

/// A running fake Discord; stops when dropped.
pub struct FakeDiscord {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl FakeDiscord {
    /// Starts a fake with Discord's real bucket: 5 message creates or edits per 5 s per channel.
    pub async fn start() -> Self {
        Self::with_bucket(5, Duration::from_secs(5)).await
    }

    /// Starts a fake allowing `count` message creates or edits per `per` in each channel.
    pub async fn with_bucket(count: usize, per: Duration) -> Self {
        Self::with_bucket_closing_idle(count, per, IDLE).await
    }

    /// Like [`FakeDiscord::with_bucket`], closing an HTTP connection once it has been idle for
    /// `idle` (gateway sessions stay open while they heartbeat).
    pub async fn with_bucket_closing_idle(count: usize, per: Duration, idle: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            addr,
            bucket: (count, per),
            state: Mutex::new(State {
                next_id: 100_000,
                max_concurrency: 1,
                session_total: 1000,
                ..State::default()
            }),
            dispatch: broadcast::channel(256).0,
            ready: watch::channel(0).0,
        });
        let app: Router = rest::routes(shared.clone())
            .merge(gateway::routes(shared.clone()))
            .merge(cdn::routes(shared.clone()));
        let task = tokio::spawn(async move {
            fake_net::serve(listener, app, idle).await;
        });
        Self { shared, task }
    }

    /// What `discord.proxy_url` should be.
    pub fn proxy_url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// Waits until `count` gateway sessions have received READY.
    pub async fn wait_ready(&self, count: usize) {
        let mut ready = self.shared.ready.subscribe();
        let wait = ready.wait_for(|sessions| *sessions >= count);
        // Generous: a refused IDENTIFY is tried again 5 s later.
        if tokio::time::timeout(Duration::from_secs(60), wait)
            .await
            .is_err()
        {
            let state = self.lock();
            let (identifies, refused) = (state.identify.len(), state.invalid_sessions);
            panic!(
                "the bot did not connect to the gateway: {identifies} IDENTIFYs, {refused} refused \
                 as too fast, sessions started {:?}",
                state.started
            );
        }
    }

    /// Makes `GET /gateway/bot` recommend `shards` shards.
    pub fn recommend_shards(&self, shards: u64) {
        self.lock().recommended_shards = shards;
    }

    /// Every IDENTIFY payload received.
    pub fn identifies(&self) -> Vec<Value> {
        self.lock().identify.clone()
    }

    /// Makes `session_start_limit.max_concurrency` `n` (Discord's large-bot programme).
    pub fn set_max_concurrency(&self, n: u64) {
        self.lock().max_concurrency = n;
    }

    /// Allows `total` IDENTIFYs a day instead of 1,000.
    pub fn limit_sessions(&self, total: u64) {
        self.lock().session_total = total;
    }

    /// IDENTIFYs refused with Invalid Session (op 9) for coming too fast.
    pub fn invalid_sessions(&self) -> usize {
        self.lock().invalid_sessions
    }

    /// The sessions started, in order: shard id and when its IDENTIFY was accepted.
    pub fn session_starts(&self) -> Vec<(u64, Instant)> {
        self.lock().started.clone()
    }

    /// True once the token was reset for starting too many sessions in a day.
    pub fn token_reset(&self) -> bool {
        self.lock().token_reset
    }

    /// Sends a user's message through the gateway (MESSAGE_CREATE) and returns its id.
    pub fn user_message(&self, message: UserMessage) -> String {
        let id = self.lock().new_id();
        let reply_to = message.reply_to.clone();
        let addr = self.shared.addr.to_string();
        let attachments: Vec<Value> = message
            .files
            .iter()
            .map(|file| self.lock().attach(&addr, &message.channel_id, file))
            .collect();
        self.lock().messages.push(Message {
            id: id.clone(),
            channel_id: message.channel_id.clone(),
            author_id: message.author_id.clone(),
            content: message.content.clone(),
            allowed_mentions: None,
            reply_to,
            flags: 0,
            edits: 0,
            deleted: false,
            attachments: attachments.clone(),
            components: Value::Null,
        });
        let referenced = message.reply_to.as_ref().and_then(|r| self.message(r));
        let d = payload::message_create(&id, &message, &attachments, referenced.as_ref());
        self.dispatch("MESSAGE_CREATE", d);
        id
    }

    /// Dispatches the user message `id` (written as `message`) again, with the same id, as the
    /// gateway replays the events a resumed session missed.
    pub fn deliver_again(&self, id: &str, message: &UserMessage) {
        let stored = self.message(id).expect("the message was delivered before");
        let referenced = message.reply_to.as_ref().and_then(|r| self.message(r));
        let d = payload::message_create(id, message, &stored.attachments, referenced.as_ref());
        self.dispatch("MESSAGE_CREATE", d);
    }

    /// Dispatches a slash command (INTERACTION_CREATE) and returns its token.
    pub fn slash_command(&self, command: SlashCommand) -> String {
        let addr = self.shared.addr.to_string();
        let (id, token, attachment) = {
            let mut state = self.lock();
            let file = command.attachment.as_ref();
            let attachment = file.map(|f| state.attach(&addr, &command.channel_id, f));
            let id = state.new_id();
            let token = format!("itoken-{id}");
            state.interactions.insert(
                token.clone(),
                Interaction {
                    channel_id: command.channel_id.clone(),
                    component: false,
                    dispatched_at: Instant::now(),
                    callback: None,
                    original: None,
                },
            );
            (id, token, attachment)
        };
        self.dispatch(
            "INTERACTION_CREATE",
            payload::interaction(&id, &token, &command, attachment.as_ref()),
        );
        token
    }

    /// A user presses the button `custom_id` under the bot's message `message` (an
    /// INTERACTION_CREATE of type 3); returns the interaction's token. In a guild when `guild`
    /// is given; `manager` gives the member the Manage Server permission.
    pub fn press(&self, press: Press<'_>) -> String {
        let found = self
            .message(press.message)
            .expect("the pressed message exists");
        let (id, token) = {
            let mut state = self.lock();
            let id = state.new_id();
            let token = format!("itoken-{id}");
            let interaction = Interaction {
                channel_id: found.channel_id.clone(),
                component: true,
                dispatched_at: Instant::now(),
                callback: None,
                original: None,
            };
            state.interactions.insert(token.clone(), interaction);
            (id, token)
        };
        let d = payload::component(&id, &token, &found, &press);
        self.dispatch("INTERACTION_CREATE", d);
        token
    }

    /// Closes every gateway session with code 4009, as Discord does when a session times out.
    pub fn close_sessions(&self) {
        self.dispatch(gateway::CLOSE, Value::Null);
    }

    /// Deletes a message, as a user or moderator would.
    pub fn delete(&self, id: &str) {
        if let Some(m) = self.lock().messages.iter_mut().find(|m| m.id == id) {
            m.deleted = true;
        }
    }

    /// Makes every later create or edit in `channel` fail with 403, code 50013.
    pub fn forbid(&self, channel: &str) {
        self.lock().forbidden.insert(channel.to_string());
    }

    /// Every REST call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// REST calls whose method and path match.
    pub fn calls_to(&self, method: &str, path_prefix: &str) -> Vec<Call> {
        let calls = self.calls().into_iter();
        calls
            .filter(|c| c.method == method && c.path.starts_with(path_prefix))
            .collect()
    }

    /// When the gateway first delivered the user message `id` (MESSAGE_CREATE).
    pub fn delivered(&self, id: &str) -> Option<Instant> {
        self.lock().delivered.get(id).copied()
    }

    /// Every download of an attachment URL so far.
    pub fn downloads(&self) -> Vec<Download> {
        self.lock().downloads.clone()
    }

    /// How many calls were answered 429.
    pub fn rate_limited(&self) -> usize {
        self.lock().rate_limited
    }

    /// How many of the 429s the bot-wide limit of 50 a second gave (the others a route's).
    pub fn rate_limited_global(&self) -> usize {
        self.lock().rate_limited_global
    }

    /// A stored message by id.
    pub fn message(&self, id: &str) -> Option<Message> {
        self.lock().messages.iter().find(|m| m.id == id).cloned()
    }

    /// The bot's live messages in `channel`, oldest first.
    pub fn bot_messages(&self, channel: &str) -> Vec<Message> {
        let state = self.lock();
        let mine = state.messages.iter().filter(|m| m.author_id == BOT_ID);
        mine.filter(|m| m.channel_id == channel && !m.deleted)
            .cloned()
            .collect()
    }

    /// The texts of the bot's live messages in `channel`, oldest first.
    pub fn texts(&self, channel: &str) -> Vec<String> {
        let messages = self.bot_messages(channel).into_iter();
        messages.map(|m| m.content).collect()
    }

    /// The callback body the interaction with `token` was answered with.
    pub fn interaction_callback(&self, token: &str) -> Option<Value> {
        self.lock().interactions.get(token)?.callback.clone()
    }

    /// The original response message of the interaction with `token`, once it exists.
    pub fn original(&self, token: &str) -> Option<Message> {
        let id = self.lock().interactions.get(token)?.original.clone()?;
        self.message(&id)
    }

    fn dispatch(&self, event: &str, d: Value) {
        let _ = self.shared.dispatch.send((event.to_string(), d));
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }
}

impl Drop for FakeDiscord {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
    fn new_id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }
}
