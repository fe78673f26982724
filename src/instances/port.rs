//! The `Coordination` port: what several instances on one database share through it (heartbeats,
//! chat leases, the inbox of accepted events), implemented by each store.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::engine::event::{ChatKey, PlatformKind};
use crate::engine::ports::{InterruptedReply, StoreError};

/// One running instance's id (`instance.id`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InstanceId(String);

impl InstanceId {
    /// The id as written.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a lease is on: a chat's pacing scope (`telegram:<chat>` for a Telegram chat with all
/// its topics, `discord:<channel>`), or a role on a platform such as [`Scope::TELEGRAM_POLL`]
/// or [`Scope::receiving`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope(String);

impl Scope {
    /// The lease of the one instance that polls Telegram.
    pub const TELEGRAM_POLL: &'static str = "telegram:poll";

    /// What a [`Scope::receiving`] role's name has after the platform.
    const RECEIVING: &'static str = "receiving:";

    /// The lease an instance holds for as long as it receives `platform`'s events itself
    /// (Telegram's webhook behind a load balancer, Discord's shards): from its start, before it
    /// holds any chat of the platform, the other instances count it among those answering there
    /// and split the bot-wide budget with it.
    pub fn receiving(platform: PlatformKind, me: &InstanceId) -> Self {
        Self(format!("{}:{}{me}", platform.as_str(), Self::RECEIVING))
    }

    /// The scope a conversation's calls are paced in: its chat, without thread or topic.
    pub fn of_chat(key: &ChatKey) -> Self {
        Self(format!("{}:{}", key.platform.as_str(), key.chat.as_str()))
    }

    /// The chat a chat's scope names (without thread or topic); `None` for a role such as
    /// [`Scope::TELEGRAM_POLL`].
    pub fn chat(&self) -> Option<ChatKey> {
        let (platform, chat) = self.0.split_once(':')?;
        let platform = PlatformKind::parse(platform)?;
        let role = self.0 == Self::TELEGRAM_POLL || chat.starts_with(Self::RECEIVING);
        (!role).then(|| ChatKey::new(platform, chat))
    }

    /// A scope by its stored name.
    pub fn named(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    /// The scope's name as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An inbound event an instance accepted, as the inbox stores it.
#[derive(Debug, Clone, Copy)]
pub struct InboxEvent<'a> {
    /// The scope whose lease holder answers it.
    pub scope: &'a Scope,
    /// Where it came from.
    pub platform: PlatformKind,
    /// The platform's id of the event (a Telegram `update_id`): stored once per platform.
    pub event_id: &'a str,
    /// The event as the platform sent it, for the adapter to read again.
    pub payload: &'a str,
    /// The instance that received it.
    pub received_by: &'a InstanceId,
}

/// An event waiting in the inbox for its turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// Its place in the inbox: events of one scope are taken in this order.
    pub seq: i64,
    /// Its scope.
    pub scope: Scope,
    /// Where it came from.
    pub platform: PlatformKind,
    /// The event as the platform sent it.
    pub payload: String,
    /// How long ago it was accepted, by the database's clock.
    pub age: Duration,
}

/// What taking a lease found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// Another live instance holds it.
    Refused,
    /// Held now: nobody held it before, or this instance did.
    Held,
    /// Held now, after another instance: it released the lease `since` ago, or (`None`) died
    /// holding it.
    TakenOver {
        /// How long ago the other instance let go.
        since: Option<Duration>,
        /// The calls the other instance made in the chat lately, as it wrote them when it
        /// released the lease: how long before now each was, newest first (empty when it died).
        recent: Vec<Duration>,
    },
}

impl Acquired {
    /// Whether the lease is held now.
    pub fn held(&self) -> bool {
        *self != Self::Refused
    }
}

/// Calls `recent` (how long before the release each was) as a lease row keeps them:
/// milliseconds, comma-separated; `None` when there are none.
pub fn encode_recent(recent: &[Duration]) -> Option<String> {
    let millis: Vec<String> = recent.iter().map(|d| d.as_millis().to_string()).collect();
    (!millis.is_empty()).then(|| millis.join(","))
}

/// The calls a lease row keeps, `since` the release: how long before now each was. Whatever
/// does not read as a number is skipped (it only paces).
pub fn decode_recent(column: Option<&str>, since: Duration) -> Vec<Duration> {
    column
        .unwrap_or_default()
        .split(',')
        .filter_map(|ms| ms.trim().parse::<u64>().ok())
        .map(|ms| since + Duration::from_millis(ms))
        .collect()
}

/// How instances share one database.
///
/// Contract: every time is the database's clock. An instance is alive while it has not
/// retired and its last heartbeat is younger than `failover`; a lease is held while its
/// instance is alive, so a heartbeat renews every lease of its instance and a dead instance's
/// leases are free. Acquiring is atomic: of two instances racing for a free scope, one gets it.
/// `accept` stores an event once per (platform, event id), however often it is delivered, and
/// events accepted together in the order given.
/// `recover_abandoned` marks each reply at most once, whoever calls it.
#[async_trait]
pub trait Coordination: Send + Sync {
    /// Writes `me`'s row, alive from now (again, when the id ran before).
    async fn register(&self, me: &InstanceId) -> Result<(), StoreError>;

    /// Renews `me`'s heartbeat, and so its leases; writes its row again if it was removed.
    async fn heartbeat(&self, me: &InstanceId) -> Result<(), StoreError>;

    /// Takes `scope`'s lease when nobody holds it, `me` already does, its holder released it,
    /// or its holder is dead (no heartbeat within `failover`) or retired.
    async fn acquire(
        &self,
        me: &InstanceId,
        scope: &Scope,
        failover: Duration,
    ) -> Result<Acquired, StoreError>;

    /// Gives up `scope`'s lease when `me` holds it (its row remembers when, and the calls
    /// `recent`: how long before now each was, newest first, for the next holder's pacing).
    async fn release(
        &self,
        me: &InstanceId,
        scope: &Scope,
        recent: &[Duration],
    ) -> Result<(), StoreError>;

    /// Gives up every lease of `me` and marks it stopping: no longer alive.
    async fn retire(&self, me: &InstanceId) -> Result<(), StoreError>;

    /// Stores accepted events, in the order given (a scope's events are taken in that order):
    /// for each, false when its platform's event id was stored before (earlier in `events`
    /// too). All in one write, so a batch costs one round trip.
    async fn accept(&self, events: &[InboxEvent<'_>]) -> Result<Vec<bool>, StoreError>;

    /// Scopes with waiting events whose lease no live instance holds.
    async fn free_scopes(&self, failover: Duration) -> Result<Vec<Scope>, StoreError>;

    /// The waiting events of the scopes `me` holds, oldest first, at most `limit`.
    async fn waiting(&self, me: &InstanceId, limit: u32) -> Result<Vec<Waiting>, StoreError>;

    /// Notes that the event's turn started: it is never handed out again.
    async fn start_event(&self, seq: i64) -> Result<(), StoreError>;

    /// Marks as partial (interrupted) every reply still `streaming` on a chat platform whose
    /// instance is not alive (or unknown, or `also`: this instance's id in an earlier run) and
    /// returns them.
    async fn recover_abandoned(
        &self,
        also: Option<&InstanceId>,
        failover: Duration,
    ) -> Result<Vec<InterruptedReply>, StoreError>;

    /// Events waiting over all instances.
    async fn inbox_depth(&self) -> Result<u64, StoreError>;

    /// For each platform, how many live instances other than `me` hold the lease of one of its
    /// chats (a `<platform>:<chat>` scope; not a role such as [`Scope::TELEGRAM_POLL`]): the
    /// instances that spend the platform's bot-wide budget beside `me`.
    async fn others_active(
        &self,
        me: &InstanceId,
        failover: Duration,
    ) -> Result<Vec<(PlatformKind, u32)>, StoreError>;

    /// Forgets started events and dead instances older than `keep`.
    async fn prune(&self, keep: Duration) -> Result<(), StoreError>;
}
