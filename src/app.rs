//! Wiring: the running bot as a value. [`App::start`] opens the store, builds the client and the
//! engine, starts the dispatcher, the platforms and the health listener; [`App::shutdown`]
//! stops them in order. The only module that knows every other.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio_util::task::TaskTracker;

use crate::engine::dispatcher::{DispatchConfig, Dispatcher, Shutdown};
use crate::engine::event::PlatformKind;
use crate::engine::ports::{InterruptedReply, Store};
use crate::engine::turn::Engine;
use crate::health::Health;
use crate::http::HttpState;
use crate::instances::{Instance, InstanceConfig, OnAbandoned};
use crate::llm::OpenAiClient;
use crate::metrics;
use crate::platform::registry::Platforms;
use crate::platform::telegram::WebhookSlot;
use crate::settings::Config;
use crate::store::{Database, StoreConfig};

mod chat;
mod check;
mod healthcheck;
mod platforms;
mod recovery;
mod serve;
mod stop;

pub use chat::{ChatOptions, chat};
pub use check::{CheckReport, check};
pub use healthcheck::healthcheck;
pub use stop::{Stopped, stop_signal};

/// The running bot: what `parley run` runs, started by [`App::start`] and stopped by
/// [`App::shutdown`]. The integration tests start it the same way, against fakes.
pub struct App {
    runtime: Runtime,
    database: Database,
    http: serve::Listener,
    /// This process among other instances on the database (`instance.coordinate`).
    instance: Option<Instance>,
}

/// What every platform adapter is started with.
struct Runtime {
    /// The conversation engine.
    engine: Arc<Engine>,
    /// Where adapters queue inbound messages.
    dispatcher: Dispatcher,
    /// Owns every task; shutting down waits for it.
    tracker: TaskTracker,
    /// Stop signals: adapters stop polling on `intake`.
    shutdown: Shutdown,
    /// `/healthz`: each adapter registers its component and beats on every successful poll or
    /// heartbeat.
    health: Health,
    /// Each adapter registers its `Platform` once up, so replies a crash interrupted can be
    /// marked in the chat.
    platforms: Platforms,
    /// Where `/telegram/webhook` finds Telegram's receiver in webhook mode.
    telegram_webhook: WebhookSlot,
    /// Set when instances coordinate: adapters keep accepted events in the shared inbox.
    instance: Option<Instance>,
}

impl App {
    /// Starts everything `parley run` runs: opens and migrates the store, marks the replies the
    /// last stop interrupted as partial, builds the client and the engine, serves `/healthz` and
    /// `/metrics`, starts the dispatcher and each enabled platform (a refused token fails here,
    /// stopping what had started), then marks the interrupted replies in their chats.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        let metrics = install_metrics();
        metrics::register_known(&enabled_platforms(&config));
        let database = open_store(&config.store, config.instance.as_ref()).await?;
        let store = database.store();
        // With several instances, the heartbeat marks the replies of dead ones (and this id's
        // from an earlier run); another instance's streaming replies are left be.
        let interrupted = match config.instance {
            None => {
                recover_store(&*store, &[PlatformKind::Telegram, PlatformKind::Discord]).await?
            }
            Some(_) => Vec::new(),
        };
        let engine = build_engine(&config, store)?;
        let health = Health::new();
        let telegram_webhook = WebhookSlot::default();
        let state = HttpState {
            health: health.clone(),
            database: database.clone(),
            metrics,
            telegram_webhook: telegram_webhook.clone(),
        };
        let http = serve::start(config.listen, state).await?;
        let mut runtime = Runtime::start(engine, config.dispatch, health, telegram_webhook);
        if let Some(instance) = &config.instance {
            runtime.instance = Some(start_instance(instance, &database, &runtime).await?);
        }
        let app = Self {
            instance: runtime.instance.clone(),
            runtime,
            database,
            http,
        };
        if let Err(error) = platforms::start(&config, &app.runtime).await {
            stop::abandon(&app.runtime).await;
            if let Some(instance) = &app.instance {
                instance.stop(Duration::ZERO).await;
            }
            app.close().await;
            return Err(error);
        }
        recovery::spawn(&app.runtime, interrupted);
        Ok(app)
    }

    /// Stops as `parley run` does on SIGTERM: no new messages; replies get `grace` to finish,
    /// then the rest are interrupted and marked; then the listener and the store close.
    ///
    /// With several instances, the chats this one answers are handed over as it goes: at once
    /// for a chat with nothing running, else when its last turn ends, and every one by the end.
    pub async fn shutdown(self, grace: Duration) -> Stopped {
        let draining = stop::drain(&self.runtime, grace);
        let stopped = match &self.instance {
            Some(instance) => {
                let handing_over = instance.stop(grace + stop::MARKING_TIME);
                tokio::join!(draining, handing_over).0
            }
            None => draining.await,
        };
        self.close().await;
        tracing::info!("stopped");
        stopped
    }

    /// Where `/healthz` and `/metrics` are served (with the port the system chose when
    /// `http.listen` asks for port 0); `None` without a listener.
    pub fn http_address(&self) -> Option<SocketAddr> {
        self.http.address()
    }

    /// The database the bot records conversations in.
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// The conversation engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.runtime.engine
    }

    /// The components `/healthz` reports on.
    pub fn health(&self) -> &Health {
        &self.runtime.health
    }

    /// Stops the listener and closes the store, once every task has stopped.
    async fn close(self) {
        self.http.stop().await;
        self.database.close().await;
    }
}

impl Runtime {
    /// Starts the dispatcher over `engine`; no platform yet.
    fn start(
        engine: Arc<Engine>,
        dispatch: DispatchConfig,
        health: Health,
        telegram_webhook: WebhookSlot,
    ) -> Self {
        let tracker = TaskTracker::new();
        let shutdown = Shutdown::default();
        let dispatcher =
            Dispatcher::start(engine.clone(), dispatch, tracker.clone(), shutdown.clone());
        Self {
            engine,
            dispatcher,
            tracker,
            shutdown,
            health,
            platforms: Platforms::new(),
            telegram_webhook,
            instance: None,
        }
    }
}

/// Opens and migrates the database `[store]` names (an error names `store.database_url`, its
/// password hidden); with `instance`, the replies it starts record that instance.
async fn open_store(
    config: &StoreConfig,
    instance: Option<&InstanceConfig>,
) -> anyhow::Result<Database> {
    let database = Database::open(config)
        .await
        .with_context(|| format!("store.database_url = {}", config.url))?;
    Ok(match instance {
        Some(instance) => database.for_instance(&instance.id),
        None => database,
    })
}

/// Registers this instance and starts its heartbeat and inbox pump on `runtime`; the replies
/// of dead instances it finds are marked in their chats.
async fn start_instance(
    config: &InstanceConfig,
    database: &Database,
    runtime: &Runtime,
) -> anyhow::Result<Instance> {
    let marker = recovery::Marker::of(runtime);
    let on_abandoned: OnAbandoned = Arc::new(move |replies| marker.spawn(replies));
    let coordination = database.coordination();
    let intake = runtime.shutdown.intake.clone();
    Instance::start(
        config.clone(),
        coordination,
        &runtime.tracker,
        intake,
        on_abandoned,
        runtime.engine.clone(),
    )
    .await
    .context("registering this instance in the database (instance.coordinate)")
}

/// Marks replies a crash left streaming on `platforms` as partial and returns them.
async fn recover_store(
    store: &dyn Store,
    platforms: &[PlatformKind],
) -> anyhow::Result<Vec<InterruptedReply>> {
    let mut interrupted = Vec::new();
    for platform in platforms {
        interrupted.extend(store.recover_interrupted(*platform).await?);
    }
    if !interrupted.is_empty() {
        tracing::warn!(
            count = interrupted.len(),
            "marked replies interrupted by the last stop as partial"
        );
    }
    Ok(interrupted)
}

/// Builds the completion client and the engine over an open store.
fn build_engine(config: &Config, store: Arc<dyn Store>) -> anyhow::Result<Arc<Engine>> {
    let client = OpenAiClient::new(config.client.clone()).context("building the HTTP client")?;
    let engine = Engine::new(store, Arc::new(client), config.engine.clone());
    Ok(Arc::new(engine))
}

/// The platforms `parley run` starts.
fn enabled_platforms(config: &Config) -> Vec<PlatformKind> {
    let telegram = config.telegram.as_ref().map(|_| PlatformKind::Telegram);
    let discord = config.discord.as_ref().map(|_| PlatformKind::Discord);
    telegram.into_iter().chain(discord).collect()
}

/// Installs the Prometheus recorder; a second install (tests) renders an empty registry.
fn install_metrics() -> PrometheusHandle {
    match metrics::install() {
        Ok(handle) => handle,
        Err(error) => {
            tracing::warn!(%error, "metrics recorder not installed; /metrics stays empty");
            let recorder =
                metrics::recorder().unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            recorder.handle()
        }
    }
}

/// Runtime threads on a small machine: at least this many, one a core on larger ones.
const MIN_WORKER_THREADS: usize = 4;

/// The async runtime Parley runs on. Tokio's default is one thread a core. On the one- and
/// two-core machines bots are usually hosted on, the kernel shares those cores with other
/// processes, and when 1,000 conversations started at once the two-thread runtime let messages
/// wait (ingest p99 28–48 ms with two threads, 13–15 ms with four, same CPU time; BENCHMARKS.md).
/// The likely cause is a runtime thread descheduled with tasks queued on it — the slot for the
/// task it woke last is not stolen by other threads. `TOKIO_WORKER_THREADS` still decides when
/// it is set.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        builder.worker_threads(worker_threads(cores));
    }
    builder.build()
}

/// Runtime threads for a machine with `cores` cores.
fn worker_threads(cores: usize) -> usize {
    cores.max(MIN_WORKER_THREADS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_machines_get_four_runtime_threads_and_larger_ones_one_a_core() {
        assert_eq!(worker_threads(1), 4);
        assert_eq!(worker_threads(2), 4);
        assert_eq!(worker_threads(4), 4);
        assert_eq!(worker_threads(16), 16);
    }
}
