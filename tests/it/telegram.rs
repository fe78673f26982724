//! The Telegram adapter end to end: the real engine, store (a SQLite file) and completion client
//! against the fake Bot API and the fake completion server.

mod commands;
mod groups;
mod run;
mod streaming;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parley::app;
use parley::engine::dispatcher::{Dispatcher, Shutdown};
use parley::engine::ports::Window;
use parley::platform::telegram::{self, Services, TelegramConfig};
use parley::settings::{Config, Purpose, Settings};
use parley::store::SqliteStore;
use serde_json::Value;
use tokio_util::task::TaskTracker;

use crate::fake_llm::{FAKE_KEY, FakeLlm};
use crate::fake_telegram::{FAKE_TOKEN, FakeLimits, FakeTelegram};

/// The bot under test with its fakes; `start` and `stop` can be called again (a restart).
pub struct Harness {
    pub tg: FakeTelegram,
    pub llm: FakeLlm,
    _dir: tempfile::TempDir,
    env: HashMap<String, String>,
    running: Option<Running>,
}

struct Running {
    tracker: TaskTracker,
    shutdown: Shutdown,
    store: Arc<SqliteStore>,
}

impl Harness {
    /// Fakes with the default limits; the bot paces at 50 ms per chat.
    pub async fn new() -> Self {
        Self::with_limits(FakeLimits::default(), &[]).await
    }

    /// Fakes with `limits`; `env` adds or overrides PARLEY__ settings.
    pub async fn with_limits(limits: FakeLimits, env: &[(&str, &str)]) -> Self {
        let mut harness = Self::unstarted(limits, env).await;
        harness.start().await.expect("the bot starts");
        harness
    }

    /// The fakes and settings, without the bot running yet.
    pub async fn unstarted(limits: FakeLimits, env: &[(&str, &str)]) -> Self {
        let tg = FakeTelegram::start_with(limits).await;
        let llm = FakeLlm::start().await;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("parley.db");
        let mut vars: HashMap<String, String> = [
            ("LLM__API_KEY", FAKE_KEY.to_string()),
            ("LLM__BASE_URL", llm.base_url()),
            ("LLM__RETRY__INITIAL_BACKOFF_MS", "10".into()),
            ("STORE__DATABASE_URL", format!("sqlite://{}", db.display())),
            ("REPLY__THINKING_AFTER_SECS", "0".into()),
            ("TELEGRAM__TOKEN", FAKE_TOKEN.into()),
            ("TELEGRAM__API_URL", tg.api_url()),
            ("TELEGRAM__EDIT_INTERVAL_MS", "50".into()),
        ]
        .into_iter()
        .map(|(k, v)| (format!("PARLEY__{k}"), v))
        .collect();
        for (key, value) in env {
            vars.insert(format!("PARLEY__{key}"), value.to_string());
        }
        Self {
            tg,
            llm,
            _dir: dir,
            env: vars,
            running: None,
        }
    }

    /// The configuration the bot runs with, parsed from the settings.
    pub fn settings(&self) -> Config {
        let settings = Settings::load_from(None, Some(self.env.clone())).expect("valid settings");
        Config::from_settings(&settings, Purpose::Run).expect("valid settings")
    }

    /// The adapter's configuration, with a one-second group window so tests stay short.
    pub fn config(&self) -> TelegramConfig {
        let mut config = self.settings().telegram.expect("Telegram is configured");
        config.pace.group_window = Window {
            count: 20,
            per: Duration::from_secs(1),
        };
        config
    }

    /// Starts the engine, dispatcher and adapter on the same database.
    pub async fn start(&mut self) -> Result<(), telegram::StartError> {
        self.start_with(self.config()).await
    }

    /// Starts with an adjusted configuration.
    pub async fn start_with(&mut self, config: TelegramConfig) -> Result<(), telegram::StartError> {
        let settings = self.settings();
        let store = app::open_store(&settings.database_url).await.unwrap();
        let engine = app::build_engine(&settings, store.clone()).unwrap();
        let tracker = TaskTracker::new();
        let shutdown = Shutdown::default();
        let dispatcher = Dispatcher::start(
            engine.clone(),
            settings.dispatch,
            tracker.clone(),
            shutdown.clone(),
        );
        let services = Services {
            engine,
            dispatcher,
            tracker: tracker.clone(),
            stop: shutdown.intake.clone(),
            health: parley::health::Health::new().register("telegram"),
        };
        telegram::start(config, services).await?;
        self.running = Some(Running {
            tracker,
            shutdown,
            store,
        });
        Ok(())
    }

    /// Stops polling, lets replies finish and closes the database.
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown.intake.cancel();
            running.tracker.close();
            let finished = tokio::time::timeout(Duration::from_secs(5), running.tracker.wait());
            if finished.await.is_err() {
                running.shutdown.abort.cancel();
                running.tracker.wait().await;
            }
            running.store.close().await;
        }
    }

    /// The conversation header of every completion request, in order.
    pub fn conversation_headers(&self) -> Vec<String> {
        let requests = self.llm.requests();
        let header =
            |r: &crate::fake_llm::Recorded| r.header("x-conversation-id").map(String::from);
        requests.iter().filter_map(header).collect()
    }

    /// The JSON bodies of the completion requests.
    pub fn llm_bodies(&self) -> Vec<Value> {
        self.llm.requests().into_iter().map(|r| r.body).collect()
    }

    /// Waits for `count` completion requests.
    pub async fn wait_for_requests(&self, count: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.llm.requests().len() < count {
            assert!(tokio::time::Instant::now() < deadline, "no request {count}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The user messages' contents of a completion request body.
pub fn user_contents(body: &Value) -> Vec<String> {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    messages
        .iter()
        .filter(|m| m["role"] == "user")
        .filter_map(|m| m["content"].as_str().map(String::from))
        .collect()
}

#[tokio::test]
async fn start_removes_the_webhook_and_registers_the_commands() {
    let mut harness = Harness::new().await;
    assert_eq!(harness.tg.webhook(), "");
    let names: Vec<String> = harness
        .tg
        .commands()
        .iter()
        .map(|c| {
            c["command"]
                .as_str()
                .unwrap_or("")
                .trim_start_matches('/')
                .to_string()
        })
        .collect();
    for name in ["ask", "model", "new", "reset", "system", "usage", "help"] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} registered: {names:?}"
        );
    }
    assert_eq!(harness.tg.calls_of("getMe").len(), 1);
    harness.stop().await;
}

#[tokio::test]
async fn a_bad_token_stops_start_up_naming_the_setting() {
    let mut harness = Harness::new().await;
    harness.stop().await;
    let mut config = harness.config();
    config.token = parley::settings::Secret::new("999:wrong-token");
    let error = harness
        .start_with(config)
        .await
        .expect_err("a bad token fails");
    let text = error.to_string();
    assert!(text.contains("telegram.token"), "{text}");
    assert!(!text.contains("wrong-token"), "the token leaks: {text}");
}
