//! Queues work per conversation: turns of one conversation run in order, different
//! conversations run concurrently (the engine caps concurrent completions). Every queue is
//! bounded; a full one gets a polite "busy" answer, never a silent drop.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::event::{ChatKey, Incoming};
use super::meter::meter;
use super::ports::{Platform, Receipt, Started};
use super::turn::Engine;

/// Shown when a queue is full.
pub const BUSY: &str = "I'm busy with other messages right now — please try again in a moment.";

/// How long a conversation's worker waits for more work before it is retired.
const WORKER_IDLE: Duration = Duration::from_secs(60);

/// A chat is told it is busy at most once in this long; later messages turned away meanwhile
/// are logged at debug level only.
pub const BUSY_EVERY: Duration = Duration::from_secs(10);

/// Queue sizes.
#[derive(Debug, Clone, Copy)]
pub struct DispatchConfig {
    /// Messages waiting over all conversations.
    pub queue_capacity: usize,
    /// Messages waiting in one conversation.
    pub per_conversation: usize,
}

/// Why a message was not queued (the user has been told).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The queue is full.
    #[error("the bot is busy")]
    Busy,
    /// The bot is shutting down.
    #[error("the bot is shutting down")]
    Closed,
}

struct Job {
    incoming: Incoming,
    platform: Arc<dyn Platform>,
    /// Where the message was kept before it was queued (the inbox of coordinated instances).
    receipt: Option<Box<dyn Receipt>>,
}

impl Job {
    /// Tells where the message was kept that its turn starts (or that it was answered busy).
    async fn started(&self) {
        if let Some(receipt) = &self.receipt {
            receipt.started().await;
        }
    }
}

tokio::task_local! {
    /// The receipt of the kept event an adapter is handling, for the message it queues.
    static RECEIPT: RefCell<Option<Box<dyn Receipt>>>;
}

/// Runs `handling` (an adapter handling one event it kept, as the inbox of coordinated
/// instances does) so that the message it queues, if any, carries `receipt` to its turn.
/// Returns the receipt when nothing took it: the event was answered on the spot (a notice, a
/// button press) or ignored.
pub async fn with_receipt<F: Future>(
    receipt: Box<dyn Receipt>,
    handling: F,
) -> (F::Output, Option<Box<dyn Receipt>>) {
    let kept = RefCell::new(Some(receipt));
    RECEIPT
        .scope(kept, async move {
            let output = handling.await;
            let left = RECEIPT.with(|r| r.borrow_mut().take());
            (output, left)
        })
        .await
}

/// Cancellation for the two stages of shutdown.
#[derive(Clone, Default)]
pub struct Shutdown {
    /// Stop taking new messages.
    pub intake: CancellationToken,
    /// Interrupt replies still streaming (after the grace period).
    pub abort: CancellationToken,
}

/// The handle adapters push messages into; cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    queue: mpsc::Sender<Job>,
    busy: Arc<Busy>,
}

struct Router {
    busy: Arc<Busy>,
    engine: Arc<Engine>,
    config: DispatchConfig,
    tracker: TaskTracker,
    shutdown: Shutdown,
    workers: HashMap<ChatKey, WorkerHandle>,
    idle_tx: mpsc::Sender<Idle>,
}

/// The router's side of a conversation's worker.
struct WorkerHandle {
    queue: mpsc::Sender<Job>,
    /// Jobs handed to this worker so far.
    routed: u64,
}

/// A worker saying it waited [`WORKER_IDLE`] with nothing to do after `done` jobs.
struct Idle {
    key: ChatKey,
    done: u64,
}

impl Dispatcher {
    /// Starts the router; its tasks are owned by `tracker` and stop with `shutdown`.
    pub fn start(
        engine: Arc<Engine>,
        config: DispatchConfig,
        tracker: TaskTracker,
        shutdown: Shutdown,
    ) -> Self {
        let (queue, inbox) = mpsc::channel(config.queue_capacity.max(1));
        let (idle_tx, idle_rx) = mpsc::channel(64);
        let busy = Arc::new(Busy {
            engine: engine.clone(),
            tracker: tracker.clone(),
            told: Mutex::default(),
        });
        let router = Router {
            busy: busy.clone(),
            engine: engine.clone(),
            config,
            tracker: tracker.clone(),
            shutdown,
            workers: HashMap::new(),
            idle_tx,
        };
        tracker.spawn(router.run(inbox, idle_rx));
        Self { queue, busy }
    }

    /// Queues a message for its conversation without waiting. When the queue is full the user
    /// is told the bot is busy.
    pub fn submit(
        &self,
        incoming: Incoming,
        platform: Arc<dyn Platform>,
    ) -> Result<(), SubmitError> {
        meter().incoming(incoming.key.platform);
        let receipt = RECEIPT.try_with(|r| r.borrow_mut().take()).ok().flatten();
        let job = Job {
            incoming,
            platform,
            receipt,
        };
        let sent = self.queue.try_send(job);
        meter().queue_depth(self.queue_depth());
        match sent {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(job)) => {
                self.busy.turn_away(job);
                Err(SubmitError::Busy)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SubmitError::Closed),
        }
    }

    /// Messages waiting in the shared queue.
    pub fn queue_depth(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }
}

/// Messages turned away because a queue is full, and which chats were told so lately.
struct Busy {
    engine: Arc<Engine>,
    tracker: TaskTracker,
    /// When each chat was last told it is busy.
    told: Mutex<HashMap<ChatKey, Instant>>,
}

impl Busy {
    /// Turns `job` away: its chat is told it is busy unless it was within [`BUSY_EVERY`], so a
    /// flood of messages costs one notice (and one task) per chat, not one per message.
    fn turn_away(&self, job: Job) {
        let key = &job.incoming.key;
        if !self.due(key) {
            tracing::debug!(chat = %key, "queue full; busy was said lately");
            if job.receipt.is_some() {
                self.tracker.spawn(async move { job.started().await });
            }
            return;
        }
        tracing::warn!(chat = %key, "queue full; answering busy");
        let engine = self.engine.clone();
        self.tracker.spawn(async move {
            job.started().await;
            let (platform, incoming) = (job.platform.as_ref(), &job.incoming);
            let reply_to = incoming.reply_to.as_ref();
            engine.notify(platform, &incoming.key, reply_to, BUSY).await;
        });
    }

    /// Whether `key` is due a busy notice; if so, notes that it gets one now.
    fn due(&self, key: &ChatKey) -> bool {
        let now = Instant::now();
        let mut told = self.told.lock().unwrap_or_else(|p| p.into_inner());
        if told.get(key).is_some_and(|at| now - *at < BUSY_EVERY) {
            return false;
        }
        if told.len() >= 1024 {
            told.retain(|_, at| now - *at < BUSY_EVERY);
        }
        told.insert(key.clone(), now);
        true
    }
}

impl Router {
    async fn run(mut self, mut inbox: mpsc::Receiver<Job>, mut idle: mpsc::Receiver<Idle>) {
        loop {
            tokio::select! {
                _ = self.shutdown.intake.cancelled() => break,
                Some(idle) = idle.recv() => self.retire(idle),
                job = inbox.recv() => match job {
                    Some(job) => {
                        meter().queue_depth(inbox.len());
                        self.route(job);
                    }
                    None => break,
                },
            }
        }
        inbox.close();
        tracing::debug!("dispatcher stopped taking messages");
    }

    fn route(&mut self, job: Job) {
        let key = job.incoming.key.clone();
        let Some(worker) = self.workers.get_mut(&key) else {
            return self.spawn_worker(key, job);
        };
        match worker.queue.try_send(job) {
            Ok(()) => worker.routed += 1,
            Err(mpsc::error::TrySendError::Full(job)) => self.busy.turn_away(job),
            Err(mpsc::error::TrySendError::Closed(job)) => {
                self.workers.remove(&key);
                self.spawn_worker(key, job);
            }
        }
    }

    fn spawn_worker(&mut self, key: ChatKey, first: Job) {
        let (queue, jobs) = mpsc::channel(self.config.per_conversation.max(1));
        // Invariant: a new channel has room for one job.
        let _ = queue.try_send(first);
        self.workers
            .insert(key.clone(), WorkerHandle { queue, routed: 1 });
        let worker = Worker {
            engine: self.engine.clone(),
            key,
            idle: self.idle_tx.clone(),
            abort: self.shutdown.abort.clone(),
        };
        self.tracker.spawn(worker.run(jobs));
    }

    /// Drops an idle worker's queue (ending it) when it has done every job it was given.
    fn retire(&mut self, idle: Idle) {
        if self
            .workers
            .get(&idle.key)
            .is_some_and(|w| w.routed == idle.done)
        {
            self.workers.remove(&idle.key);
        }
    }
}

/// Runs one conversation's turns in order.
struct Worker {
    engine: Arc<Engine>,
    key: ChatKey,
    idle: mpsc::Sender<Idle>,
    abort: CancellationToken,
}

impl Worker {
    async fn run(self, mut jobs: mpsc::Receiver<Job>) {
        let mut done = 0;
        loop {
            let next = tokio::select! {
                _ = self.abort.cancelled() => break,
                next = tokio::time::timeout(WORKER_IDLE, jobs.recv()) => next,
            };
            match next {
                Ok(Some(job)) => {
                    let started = Started::new(job.receipt.as_deref());
                    let (incoming, platform) = (&job.incoming, job.platform.as_ref());
                    self.engine
                        .handle(incoming, platform, &self.abort, &started)
                        .await;
                    started.now().await;
                    done += 1;
                }
                Ok(None) => break,
                Err(_elapsed) => {
                    let idle = Idle {
                        key: self.key.clone(),
                        done,
                    };
                    let _ = self.idle.try_send(idle);
                }
            }
        }
        let dropped = jobs.len();
        if dropped > 0 {
            tracing::warn!(chat = %self.key, dropped, "shutting down with messages still queued");
        }
    }
}

#[cfg(test)]
mod tests;
