//! Several instances on one database: each instance's heartbeat, the leases that let one
//! instance at a time talk to a chat (or poll Telegram), and the shared inbox of accepted
//! events that the holder of each chat's lease answers in order. Off unless instances
//! coordinate (`instance.coordinate`); then [`Instance`] runs beside the dispatcher.

mod inbox;
mod local;
mod port;
mod share;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::engine::event::{ChatKey, PlatformKind};
use crate::engine::ports::InterruptedReply;
use crate::engine::turn::Engine;

pub use port::{
    Acquired, Coordination, InboxEvent, InstanceId, Scope, Waiting, decode_recent, encode_recent,
};
pub use share::Share;

/// How long started events (and dead instances) are remembered: a platform may deliver an
/// event again within this long (Telegram keeps updates for 24 hours).
const KEEP: Duration = Duration::from_secs(24 * 3600);

/// How long a chat taken over from another instance stays quiet after that instance last spoke
/// there: the pacing of one instance does not know the other's last calls, and Telegram allows
/// about one message a second in a chat (Discord five in five seconds).
const HANDOVER: Duration = Duration::from_secs(1);

/// A chat lease unused for this long is released (the dispatcher retires an idle chat's
/// worker after the same time).
const IDLE: Duration = Duration::from_secs(60);

/// Heartbeats between two prunes of what [`KEEP`] lets go.
const PRUNE_EVERY: u32 = 600;

/// What an instance is started with.
#[derive(Debug, Clone)]
pub struct InstanceConfig {
    /// `instance.id`.
    pub id: InstanceId,
    /// `telegram.failover_secs`: an instance without a heartbeat for this long is dead, and
    /// its leases are free.
    pub failover: Duration,
}

/// Answers the events of one platform that the inbox hands over, as its adapter answers an
/// event that just arrived.
#[async_trait]
pub trait InboxHandler: Send + Sync {
    /// Handles the event `payload` (the platform's own form of it) now.
    async fn deliver(&self, payload: &str);

    /// Tells the sender of `payload` that it waited too long to be answered and should be sent
    /// again.
    async fn too_old(&self, payload: &str);
}

/// An event an adapter accepted, for [`Instance::accept_all`].
#[derive(Debug, Clone, Copy)]
pub struct Accepted<'a> {
    /// The scope whose lease holder answers it.
    pub scope: &'a Scope,
    /// The platform's id of the event.
    pub event_id: &'a str,
    /// The event as the platform sent it.
    pub payload: &'a str,
}

/// Called with the replies of dead instances that this instance marked interrupted, to show
/// the marker in their chats.
/// It returns the task marking each reply, by chat.
pub type OnAbandoned = Arc<dyn Fn(Vec<InterruptedReply>) -> Vec<(ChatKey, Marking)> + Send + Sync>;

/// The task marking one interrupted reply in its chat.
pub type Marking = JoinHandle<()>;

/// How long a chat taken from a dead instance waits for the markers of that instance's replies
/// there before its next event is answered anyway.
const MARKING_WAIT: Duration = Duration::from_secs(30);

/// This process as one of several instances on one database; cheap to clone.
#[derive(Clone)]
pub struct Instance {
    shared: Arc<Shared>,
}

struct Shared {
    config: InstanceConfig,
    store: Arc<dyn Coordination>,
    handlers: Mutex<HashMap<PlatformKind, Arc<dyn InboxHandler>>>,
    local: Mutex<Local>,
    /// Wakes the inbox pump (an event for a scope this instance holds was just stored).
    wake: Notify,
    /// A turn ended (its receipt dropped): a stopping instance may release its chat.
    ended: Notify,
    /// Stops the heartbeat, once the leases are given up.
    beating: CancellationToken,
    /// The heartbeat task, awaited when stopping.
    heart: Mutex<Option<JoinHandle<()>>>,
    /// Cancelled once the pump stopped handing events over.
    pumped: CancellationToken,
    /// Set when a graceful stop begins: no lease is taken any more.
    stopping: CancellationToken,
    /// Shows the marker in the chats of dead instances' interrupted replies.
    on_abandoned: OnAbandoned,
    /// Whose pacers a chat's recent calls are read from when it is handed over, and told of
    /// the calls another instance made in a chat taken over.
    engine: Arc<Engine>,
    /// This instance's part of each platform's bot-wide budget.
    shares: Mutex<HashMap<PlatformKind, Share>>,
}

/// What this process knows about its leases and the events it handed to the dispatcher.
#[derive(Default)]
struct Local {
    /// Scopes whose lease this instance took.
    held: HashSet<Scope>,
    /// Events handed over and not seen started yet.
    handed: HashSet<i64>,
    /// Turns handed over and not ended, per scope.
    running: HashMap<Scope, usize>,
    /// Scopes taken over from another instance lately: their events wait until then.
    paused: HashMap<Scope, Instant>,
    /// Scopes whose dead holder's replies are being marked: their events wait for the markers
    /// (until the instant given), so the chat shows the marker before the next answer.
    marking: HashMap<Scope, (Vec<Marking>, Instant)>,
    /// When each held scope was last used (taken, or an event handed over).
    used: HashMap<Scope, Instant>,
    /// The [`Scope::receiving`] roles this instance holds for as long as it runs (taken again
    /// if the database failed when they were first asked for).
    receiving: HashSet<Scope>,
}

impl Instance {
    /// Registers `config.id` in the database and starts its heartbeat (which also finds the
    /// replies of dead instances and gives them to `on_abandoned`), the count of the instances
    /// answering beside it ([`Share`]) and the inbox pump, which stops taking events on `intake`. A chat handed over to or from this instance carries
    /// its recent calls between the pacers of `engine` and the other instance's.
    pub async fn start(
        config: InstanceConfig,
        store: Arc<dyn Coordination>,
        tracker: &TaskTracker,
        intake: CancellationToken,
        on_abandoned: OnAbandoned,
        engine: Arc<Engine>,
    ) -> Result<Self, crate::engine::ports::StoreError> {
        store.register(&config.id).await?;
        tracing::info!(instance = %config.id, failover_secs = config.failover.as_secs(),
            "coordinating with other instances on the database");
        let instance = Self {
            shared: Arc::new(Shared {
                config,
                store,
                handlers: Mutex::default(),
                local: Mutex::default(),
                wake: Notify::new(),
                ended: Notify::new(),
                beating: CancellationToken::new(),
                heart: Mutex::default(),
                pumped: CancellationToken::new(),
                stopping: CancellationToken::new(),
                on_abandoned,
                engine,
                shares: Mutex::default(),
            }),
        };
        // The heartbeat must outlive the dispatcher's drain (leases of chats still answering
        // stay held), so the tracker the drain waits for does not own it; `stop` ends it.
        let heart = tokio::spawn(instance.clone().heartbeat());
        *lock(&instance.shared.heart) = Some(heart);
        tokio::spawn(instance.clone().count_sharers_while_beating());
        tracker.spawn(instance.clone().pump(intake));
        Ok(instance)
    }

    /// This instance's id.
    pub fn id(&self) -> &InstanceId {
        &self.shared.config.id
    }

    /// The failover time: how long a dead instance's leases stay taken.
    pub fn failover(&self) -> Duration {
        self.shared.config.failover
    }

    /// Routes the inbox's events of `platform` to `handler`.
    pub fn serve(&self, platform: PlatformKind, handler: Arc<dyn InboxHandler>) {
        lock(&self.shared.handlers).insert(platform, handler);
        self.shared.wake.notify_one();
    }

    /// Takes `scope`'s lease (asking the database every time); true when this instance holds
    /// it now. A database failure counts as not holding it; a stopping instance takes none.
    pub async fn acquire(&self, scope: &Scope) -> bool {
        let shared = &self.shared;
        if shared.stopping.is_cancelled() {
            return false;
        }
        let id = &shared.config.id;
        match shared
            .store
            .acquire(id, scope, shared.config.failover)
            .await
        {
            Ok(acquired) => {
                if let Acquired::TakenOver { recent, .. } = &acquired
                    && let Some(chat) = scope.chat()
                {
                    shared.engine.pacer(chat.platform).seed(&chat, recent);
                }
                // A chat whose holder died: the replies it left streaming are marked first, so
                // the chat shows the marker before the next answer (the heartbeat's own sweep
                // may be a third of the failover time away).
                if let Acquired::TakenOver { since: None, .. } = &acquired {
                    self.sweep(None).await;
                }
                let held = acquired.held();
                let mut local = lock(&shared.local);
                if held {
                    local.held.insert(scope.clone());
                    local.used.insert(scope.clone(), Instant::now());
                } else {
                    local.held.remove(scope);
                    local.used.remove(scope);
                }
                if let Acquired::TakenOver { since, .. } = acquired {
                    let pause = HANDOVER.saturating_sub(since.unwrap_or_default());
                    local.paused.insert(scope.clone(), Instant::now() + pause);
                }
                crate::metrics::instance_leases(local.held.len());
                held
            }
            Err(error) => {
                tracing::warn!(%scope, error = %error.chain(), "could not take a lease");
                false
            }
        }
    }

    /// Gives up `scope`'s lease, with the calls this instance made in its chat lately, so the
    /// next holder goes on pacing the chat where this one left off.
    pub async fn release(&self, scope: &Scope) {
        let shared = &self.shared;
        let recent = scope
            .chat()
            .map(|chat| shared.engine.pacer(chat.platform).recent(&chat))
            .unwrap_or_default();
        if let Err(error) = shared
            .store
            .release(&shared.config.id, scope, &recent)
            .await
        {
            tracing::warn!(%scope, error = %error.chain(), "could not release a lease");
        }
        let mut local = lock(&shared.local);
        local.held.remove(scope);
        local.used.remove(scope);
        crate::metrics::instance_leases(local.held.len());
    }

    /// Holds `scope`'s lease before talking to its chat: at once when this instance holds it
    /// already, else as [`Instance::acquire`] takes it. For platforms whose events reach one
    /// instance only (Discord's shards), which answer them directly.
    pub async fn hold(&self, scope: &Scope) -> bool {
        {
            let mut local = lock(&self.shared.local);
            if local.held.contains(scope) && !self.shared.stopping.is_cancelled() {
                local.used.insert(scope.clone(), Instant::now());
                return true;
            }
        }
        self.acquire(scope).await
    }

    /// Releases the chats (not the roles) this instance held but has not used for [`IDLE`], so the lease table
    /// stays small and a chat whose events now reach another instance (its Discord shard moved)
    /// is free for it.
    async fn release_idle(&self) {
        let idle: Vec<Scope> = {
            let local = lock(&self.shared.local);
            let now = Instant::now();
            local
                .held
                .iter()
                .filter(|s| s.chat().is_some() && !local.running.contains_key(*s))
                .filter(|s| local.used.get(*s).is_none_or(|at| now - *at > IDLE))
                .cloned()
                .collect()
        };
        for scope in &idle {
            self.release(scope).await;
        }
    }

    /// Keeps an accepted event in the shared inbox, once per (platform, event id); false when
    /// it was kept before. When no live instance holds its scope this one takes it and answers
    /// at once; when another does, that one answers. Fails only when the database does: then
    /// the caller answers it itself.
    pub async fn accept(
        &self,
        platform: PlatformKind,
        scope: &Scope,
        event_id: &str,
        payload: &str,
    ) -> Result<bool, crate::engine::ports::StoreError> {
        let event = Accepted {
            scope,
            event_id,
            payload,
        };
        let kept = self.accept_all(platform, &[event]).await?;
        Ok(kept.first().copied().unwrap_or(false))
    }

    /// [`Instance::accept`] for several events of one platform at once, in the order given
    /// (the order their scopes' turns take them): the leases of their scopes are taken side by
    /// side and the events stored in one write, so a poll's batch of updates costs a few round
    /// trips to the database, not a few per update.
    pub async fn accept_all(
        &self,
        platform: PlatformKind,
        events: &[Accepted<'_>],
    ) -> Result<Vec<bool>, crate::engine::ports::StoreError> {
        let shared = &self.shared;
        // The leases first: a stored event of a scope nobody holds is free for any instance to
        // take, and the instance that received it answers it fastest.
        let unheld: HashSet<&Scope> = {
            let local = lock(&shared.local);
            let stopping = shared.stopping.is_cancelled();
            events
                .iter()
                .map(|e| e.scope)
                .filter(|s| stopping || !local.held.contains(*s))
                .collect()
        };
        futures_util::future::join_all(unheld.iter().map(|s| self.acquire(s))).await;
        let held = {
            let local = lock(&shared.local);
            events.iter().any(|e| local.held.contains(e.scope))
        };
        let stored: Vec<InboxEvent<'_>> = events
            .iter()
            .map(|e| InboxEvent {
                scope: e.scope,
                platform,
                event_id: e.event_id,
                payload: e.payload,
                received_by: &shared.config.id,
            })
            .collect();
        let kept = shared.store.accept(&stored).await?;
        for (event, new) in events.iter().zip(&kept) {
            if !new {
                let (scope, event_id) = (event.scope, event.event_id);
                tracing::info!(%scope, event_id, "an event delivered again; answered once already");
            }
        }
        if held {
            shared.wake.notify_one();
        }
        Ok(kept)
    }

    /// Stops as part of a graceful stop, within `within`: the pump has stopped taking events
    /// (on `intake`); the lease of every chat with no turn left running is released at once and
    /// the others as their turns end, so other instances take the chats over without waiting
    /// for the failover time; then this instance retires.
    pub async fn stop(&self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        self.shared.stopping.cancel();
        // Nothing is handed over any more once the pump has stopped.
        let _ = tokio::time::timeout(within, self.shared.pumped.cancelled()).await;
        loop {
            let ended = self.shared.ended.notified();
            let idle = self.idle_scopes();
            for scope in &idle {
                self.release(scope).await;
            }
            if lock(&self.shared.local).held.is_empty() {
                break;
            }
            tokio::select! {
                () = ended => {}
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        let shared = &self.shared;
        if let Err(error) = shared.store.retire(&shared.config.id).await {
            tracing::warn!(error = %error.chain(), "could not give up this instance's leases");
        }
        shared.beating.cancel();
        let heart = lock(&shared.heart).take();
        if let Some(heart) = heart {
            let _ = heart.await;
        }
        crate::metrics::instance_leases(0);
        tracing::info!(instance = %shared.config.id, "handed this instance's chats over");
    }

    /// Held scopes with no turn running here.
    fn idle_scopes(&self) -> Vec<Scope> {
        let local = lock(&self.shared.local);
        local
            .held
            .iter()
            .filter(|s| !local.running.contains_key(*s))
            .cloned()
            .collect()
    }

    /// Marks the replies of dead instances (and of `also`, this id in an earlier run)
    /// interrupted, and has them marked in their chats.
    async fn sweep(&self, also: Option<&InstanceId>) {
        let shared = &self.shared;
        match shared
            .store
            .recover_abandoned(also, shared.config.failover)
            .await
        {
            Ok(replies) if replies.is_empty() => {}
            Ok(replies) => {
                tracing::warn!(
                    count = replies.len(),
                    "marked replies of a stopped instance as interrupted"
                );
                let markings = (shared.on_abandoned)(replies);
                let until = Instant::now() + MARKING_WAIT;
                let mut local = lock(&shared.local);
                for (chat, marking) in markings {
                    let (tasks, _) = local
                        .marking
                        .entry(Scope::of_chat(&chat))
                        .or_insert_with(|| (Vec::new(), until));
                    tasks.push(marking);
                }
            }
            Err(error) => tracing::warn!(error = %error.chain(), "could not sweep replies"),
        }
    }

    /// Renews the heartbeat every third of the failover time; each time, marks the replies of
    /// dead instances interrupted and reports the inbox's depth.
    async fn heartbeat(self) {
        let shared = &self.shared;
        let (id, failover) = (&shared.config.id, shared.config.failover);
        let mut beats = 0u32;
        let mut first = true;
        loop {
            if let Err(error) = shared.store.heartbeat(id).await {
                tracing::warn!(error = %error.chain(), "could not renew the heartbeat");
            }
            // The first sweep also marks this id's replies from an earlier run.
            self.sweep(first.then_some(id)).await;
            first = false;
            self.release_idle().await;
            if let Ok(depth) = shared.store.inbox_depth().await {
                crate::metrics::inbox_depth(depth);
            }
            beats = beats.wrapping_add(1);
            if beats.is_multiple_of(PRUNE_EVERY)
                && let Err(error) = shared.store.prune(KEEP).await
            {
                tracing::warn!(error = %error.chain(), "could not prune the inbox");
            }
            tokio::select! {
                () = shared.beating.cancelled() => break,
                () = tokio::time::sleep(failover / 3) => {}
            }
        }
    }
}

/// A turn counted as running in its scope until dropped: a graceful stop keeps the scope's
/// lease meanwhile, and hears when it ends.
struct Running {
    shared: Arc<Shared>,
    scope: Scope,
}

impl Running {
    /// Counts a turn in `scope` (`local` is `shared`'s, locked by the caller).
    fn count(shared: &Arc<Shared>, local: &mut Local, scope: &Scope) -> Self {
        *local.running.entry(scope.clone()).or_default() += 1;
        Self {
            shared: shared.clone(),
            scope: scope.clone(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        {
            let mut local = lock(&self.shared.local);
            if let Some(count) = local.running.get_mut(&self.scope) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    local.running.remove(&self.scope);
                }
            }
        }
        self.shared.ended.notify_waiters();
    }
}

/// Locks `mutex`, whose data stays consistent even if a holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
