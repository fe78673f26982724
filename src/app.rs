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
use crate::engine::dispatcher::{DispatchConfig, Dispatcher, Shutdown};
use crate::engine::event::{Author, ChatKey, Content, Incoming, PlatformKind, UserId};
use crate::engine::ports::{InterruptedReply, ModelName, Store};
use crate::engine::turn::{Engine, EngineConfig};
use crate::health::Health;
use crate::http::HttpState;
use crate::llm::{ClientConfig, OpenAiClient, RetryPolicy, Timeouts};
use crate::metrics;
use crate::platform::console::ConsolePlatform;
use crate::platform::registry::Platforms;
use crate::platform::{discord, telegram};
use crate::settings::Settings;
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

/// The completion client's configuration, from the settings.
pub fn client_config(settings: &Settings) -> ClientConfig {
    let llm = &settings.llm;
    ClientConfig {
        base_url: llm.base_url.clone(),
        api_key: llm.api_key.to_secret_string(),
        conversation_header: llm.conversation_header.clone(),
        stream: llm.stream,
        params: llm.params(),
        overrides: llm.overrides.clone(),
        timeouts: Timeouts {
            connect: Duration::from_secs(llm.timeouts.connect_secs),
            first_token: Duration::from_secs(llm.timeouts.first_token_secs),
            idle: Duration::from_secs(llm.timeouts.idle_secs),
            total: Duration::from_secs(llm.timeouts.total_secs),
        },
        retry: RetryPolicy {
            max_retries: llm.retry.max_retries,
            initial_backoff: Duration::from_millis(llm.retry.initial_backoff_ms),
            max_backoff: Duration::from_millis(llm.retry.max_backoff_ms),
        },
    }
}

/// The engine's configuration, from the settings.
pub fn engine_config(settings: &Settings) -> EngineConfig {
    let llm = &settings.llm;
    let prompt = llm.system_prompt.trim();
    EngineConfig {
        models: llm.models.iter().map(ModelName::new).collect(),
        default_model: ModelName::new(&llm.default_model),
        system_prompt: (!prompt.is_empty()).then(|| llm.system_prompt.clone()),
        history_budget: settings.history.budget_tokens,
        max_concurrent: settings.dispatch.max_concurrent,
        thinking_after: (settings.reply.thinking_after_secs > 0)
            .then(|| Duration::from_secs(settings.reply.thinking_after_secs)),
    }
}

/// Opens and migrates the database.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Arc<SqliteStore>> {
    let store = SqliteStore::open(&settings.store.database_url)
        .await
        .with_context(|| format!("store.database_url = {}", settings.store.database_url))?;
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

/// Builds the engine over an open store.
pub fn build_engine(settings: &Settings, store: Arc<SqliteStore>) -> anyhow::Result<Arc<Engine>> {
    let client = OpenAiClient::new(client_config(settings)).context("building the HTTP client")?;
    Ok(Arc::new(Engine::new(
        store,
        Arc::new(client),
        engine_config(settings),
    )))
}

/// The dispatcher's queue sizes, from the settings.
pub fn dispatch_config(settings: &Settings) -> DispatchConfig {
    DispatchConfig {
        queue_capacity: settings.dispatch.queue_capacity,
        per_conversation: settings.dispatch.per_conversation,
    }
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
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let metrics = install_metrics();
    metrics::register_known(&enabled_platforms(&settings));
    let store = open_store(&settings).await?;
    let interrupted =
        recover_store(&store, &[PlatformKind::Telegram, PlatformKind::Discord]).await?;
    let engine = build_engine(&settings, store.clone())?;
    let health = Health::new();
    let state = HttpState {
        health: health.clone(),
        store: store.clone(),
        metrics,
    };
    let http = serve::start(&settings.http.listen, state).await?;
    let tracker = TaskTracker::new();
    let shutdown = Shutdown::default();
    let dispatcher = Dispatcher::start(
        engine.clone(),
        dispatch_config(&settings),
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
    start_platforms(&settings, &runtime).await?;
    recovery::spawn(&runtime, interrupted);
    stop_signal().await;
    let grace = Duration::from_secs(settings.shutdown.grace_secs);
    stop(&shutdown, &tracker, grace).await;
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
fn enabled_platforms(settings: &Settings) -> Vec<PlatformKind> {
    let telegram = settings
        .telegram_enabled()
        .then_some(PlatformKind::Telegram);
    let discord = settings.discord_enabled().then_some(PlatformKind::Discord);
    telegram.into_iter().chain(discord).collect()
}

/// Starts each enabled platform's adapter; a bad token fails here, before anything else runs.
async fn start_platforms(settings: &Settings, runtime: &Runtime) -> anyhow::Result<()> {
    if settings.telegram_enabled() {
        let services = telegram::Services {
            engine: runtime.engine.clone(),
            dispatcher: runtime.dispatcher.clone(),
            tracker: runtime.tracker.clone(),
            stop: runtime.shutdown.intake.clone(),
            // A poll that keeps failing for longer than a quiet poll lasts: Telegram is down.
            health: runtime.health.register_with_grace(
                "telegram",
                Duration::from_secs(settings.telegram.poll_timeout_secs),
            ),
        };
        let health = services.health.clone();
        let config = telegram::TelegramConfig::from_settings(settings);
        let platform = telegram::start(config, services).await?;
        // getMe answered: connected, until a poll says otherwise.
        health.beat();
        runtime.platforms.register(platform);
    }
    if settings.discord_enabled() {
        let config = discord::DiscordConfig::from_settings(settings)?;
        let platform = discord::start(
            config,
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
pub async fn chat(settings: Settings, options: ChatOptions) -> anyhow::Result<()> {
    let store = open_store(&settings).await?;
    recover_store(&store, &[PlatformKind::Console]).await?;
    let engine = build_engine(&settings, store.clone())?;
    let key = ChatKey::new(PlatformKind::Console, &options.chat);
    if let Some(model) = &options.model {
        let known = settings.llm.models.contains(model);
        if !known {
            bail!(
                "--model {model} is not in llm.models; use one of: {}",
                settings.llm.models.join(", ")
            );
        }
        store.set_model(&key, Some(&ModelName::new(model))).await?;
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
