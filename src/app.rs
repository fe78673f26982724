//! Wiring: open the store, build the client and the engine, start the platforms, shut down in
//! order. The only module that knows every other.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::engine::command::Command;
use crate::engine::dispatcher::{Dispatcher, Shutdown};
use crate::engine::event::{Author, ChatKey, Content, Incoming, PlatformKind, UserId};
use crate::engine::ports::{InterruptedReply, ModelName, Store};
use crate::engine::turn::Engine;
use crate::health::Health;
use crate::http::HttpState;
use crate::llm::OpenAiClient;
use crate::metrics;
use crate::platform::console::ConsolePlatform;
use crate::platform::registry::Platforms;
use crate::platform::{discord, telegram};
use crate::settings::Config;
use crate::store::SqliteStore;

mod check;
mod healthcheck;
mod recovery;
mod serve;

pub use check::{CheckReport, check};
pub use healthcheck::healthcheck;

/// Options of `parley chat`.
#[derive(Debug, Clone)]
pub struct ChatOptions {
    /// The console chat's name: each name is its own conversation.
    pub chat: String,
    /// Switch the chat to this model first.
    pub model: Option<String>,
}

/// Opens and migrates the database at `database_url`.
pub async fn open_store(database_url: &str) -> anyhow::Result<Arc<SqliteStore>> {
    let store = SqliteStore::open(database_url)
        .await
        .with_context(|| format!("store.database_url = {database_url}"))?;
    Ok(Arc::new(store))
}

/// Marks replies a crash left streaming on `platforms` as partial and returns them.
pub async fn recover_store(
    store: &SqliteStore,
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
pub fn build_engine(config: &Config, store: Arc<SqliteStore>) -> anyhow::Result<Arc<Engine>> {
    let client = OpenAiClient::new(config.client.clone()).context("building the HTTP client")?;
    let engine = Engine::new(store, Arc::new(client), config.engine.clone());
    Ok(Arc::new(engine))
}

/// What every platform adapter is started with.
pub struct Runtime {
    /// The conversation engine.
    pub engine: Arc<Engine>,
    /// Where adapters queue inbound messages.
    pub dispatcher: Dispatcher,
    /// Owns every task; `run` waits for it on shutdown.
    pub tracker: TaskTracker,
    /// Stop signals: adapters stop polling on `intake`.
    pub shutdown: Shutdown,
    /// `/healthz`: each adapter registers its component and beats on every successful poll or
    /// heartbeat.
    pub health: Health,
    /// Each adapter registers its `Platform` once up, so replies a crash interrupted can be
    /// marked in the chat.
    pub platforms: Platforms,
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

/// How long interrupted replies get to show their marker after the grace period.
const MARKING_TIME: Duration = Duration::from_secs(1);

/// `parley run`: every enabled platform until SIGINT/SIGTERM, then an orderly stop.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let metrics = install_metrics();
    metrics::register_known(&enabled_platforms(&config));
    let store = open_store(&config.database_url).await?;
    let interrupted =
        recover_store(&store, &[PlatformKind::Telegram, PlatformKind::Discord]).await?;
    let engine = build_engine(&config, store.clone())?;
    let health = Health::new();
    let state = HttpState {
        health: health.clone(),
        store: store.clone(),
        metrics,
    };
    let http = serve::start(config.listen, state).await?;
    let tracker = TaskTracker::new();
    let shutdown = Shutdown::default();
    let dispatcher = Dispatcher::start(
        engine.clone(),
        config.dispatch,
        tracker.clone(),
        shutdown.clone(),
    );
    let runtime = Runtime {
        engine,
        dispatcher,
        tracker: tracker.clone(),
        shutdown: shutdown.clone(),
        health,
        platforms: Platforms::new(),
    };
    start_platforms(&config, &runtime).await?;
    recovery::spawn(&runtime, interrupted);
    stop_signal().await;
    stop(&shutdown, &tracker, config.grace).await;
    http.stop().await;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Stops taking messages, lets replies finish for `grace`, then interrupts the rest (the reply
/// engine marks them "⚠️ reply interrupted: the bot restarted" and they are stored partial).
async fn stop(shutdown: &Shutdown, tracker: &TaskTracker, grace: Duration) {
    tracing::info!(
        grace_secs = grace.as_secs(),
        "stopping: no new messages; letting replies finish"
    );
    shutdown.intake.cancel();
    tracker.close();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!("interrupting replies still streaming");
        shutdown.abort.cancel();
        // Marking a reply interrupted is one more platform call; a platform that no longer
        // answers must not hold the process past Docker's stop timeout. A reply left behind
        // stays `streaming` in the database and is marked on the next start.
        if tokio::time::timeout(MARKING_TIME, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("some replies could not be marked interrupted; the next start will");
        }
    }
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

/// The platforms `parley run` starts.
fn enabled_platforms(config: &Config) -> Vec<PlatformKind> {
    let telegram = config.telegram.as_ref().map(|_| PlatformKind::Telegram);
    let discord = config.discord.as_ref().map(|_| PlatformKind::Discord);
    telegram.into_iter().chain(discord).collect()
}

/// Starts each enabled platform's adapter; a bad token fails here, before anything else runs.
async fn start_platforms(config: &Config, runtime: &Runtime) -> anyhow::Result<()> {
    if let Some(config) = &config.telegram {
        let services = telegram::Services {
            engine: runtime.engine.clone(),
            dispatcher: runtime.dispatcher.clone(),
            tracker: runtime.tracker.clone(),
            stop: runtime.shutdown.intake.clone(),
            // A poll that keeps failing for longer than a quiet poll lasts: Telegram is down.
            health: runtime
                .health
                .register_with_grace("telegram", config.poll_timeout),
        };
        let health = services.health.clone();
        let platform = telegram::start(config.clone(), services).await?;
        // getMe answered: connected, until a poll says otherwise.
        health.beat();
        runtime.platforms.register(platform);
    }
    if let Some(config) = &config.discord {
        let platform = discord::start(
            config.clone(),
            runtime.engine.clone(),
            runtime.dispatcher.clone(),
            &runtime.tracker,
            runtime.shutdown.intake.clone(),
            runtime.health.register("discord"),
        )
        .await?;
        runtime.platforms.register(platform);
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn stop_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// `parley chat`: a conversation in the terminal, stored like any other.
pub async fn chat(config: Config, options: ChatOptions) -> anyhow::Result<()> {
    let store = open_store(&config.database_url).await?;
    recover_store(&store, &[PlatformKind::Console]).await?;
    let engine = build_engine(&config, store.clone())?;
    let key = ChatKey::new(PlatformKind::Console, &options.chat);
    if let Some(model) = &options.model {
        let model = ModelName::new(model);
        let models = &config.engine.models;
        if !models.contains(&model) {
            let names: Vec<&str> = models.iter().map(ModelName::as_str).collect();
            bail!(
                "--model {model} is not in llm.models; use one of: {}",
                names.join(", ")
            );
        }
        store.set_model(&key, Some(&model)).await?;
    }
    let conversation = store.conversation(&key).await?;
    eprintln!(
        "Parley chat `{}` (conversation {}). Type a message; /help for commands; Ctrl-D to quit.",
        options.chat, conversation.id
    );
    let console = ConsolePlatform::stdout();
    let cancel = CancellationToken::new();
    let interrupt = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            interrupt.cancel();
        }
    });
    let author = Author {
        id: UserId::new("local"),
        display_name: std::env::var("USER").unwrap_or_else(|_| "you".into()),
    };
    let prompt = std::io::stdin().is_terminal();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        if prompt {
            eprint!("> ");
        }
        let line = tokio::select! {
            _ = cancel.cancelled() => break,
            line = lines.next_line() => line.context("reading stdin")?,
        };
        let Some(line) = line else { break };
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let content = match Command::parse(text) {
            Some(command) => Content::Command(command),
            None if text.starts_with('/') => {
                println!("Unknown command {text}; /help lists the commands.");
                continue;
            }
            None => Content::Prompt(text.to_string()),
        };
        let incoming = Incoming {
            key: key.clone(),
            author: author.clone(),
            content,
            private: true,
            may_configure: true,
            reply_to: None,
            received_at: std::time::Instant::now(),
        };
        engine.handle(&incoming, &console, &cancel).await;
        if cancel.is_cancelled() {
            break;
        }
    }
    store.close().await;
    Ok(())
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
