//! The Telegram adapter end to end: the bot started as `parley run` starts it (`App::start`, a
//! SQLite file), against the fake Bot API and the fake completion server.

mod attachments;
mod commands;
mod controls;
mod groups;
mod redo;
mod run;
mod streaming;
mod webhook;

use std::collections::HashMap;
use std::time::Duration;

use parley::app::App;
use parley::engine::ports::Window;
use parley::platform::telegram::TelegramConfig;
use parley::settings::Config;
use serde_json::Value;

use crate::fake_llm::FakeLlm;
use crate::fake_telegram::{FAKE_TOKEN, FakeLimits, FakeTelegram};
use crate::support::{app_config, app_env};

/// How long replies get to finish when a test stops the bot.
const GRACE: Duration = Duration::from_secs(5);

/// The bot under test with its fakes; `start` and `stop` can be called again (a restart).
pub struct Harness {
    pub tg: FakeTelegram,
    pub llm: FakeLlm,
    _dir: tempfile::TempDir,
    env: HashMap<String, String>,
    app: Option<App>,
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
        let mut vars = app_env(&llm, &dir.path().join("parley.db"));
        let telegram = [
            ("LLM__RETRY__INITIAL_BACKOFF_MS", "10".to_string()),
            ("TELEGRAM__TOKEN", FAKE_TOKEN.into()),
            ("TELEGRAM__API_URL", tg.api_url()),
            ("TELEGRAM__EDIT_INTERVAL_MS", "50".into()),
        ];
        let extra = env.iter().map(|(k, v)| (*k, v.to_string()));
        for (key, value) in telegram.into_iter().chain(extra) {
            vars.insert(format!("PARLEY__{key}"), value);
        }
        Self {
            tg,
            llm,
            _dir: dir,
            env: vars,
            app: None,
        }
    }

    /// The configuration exactly as `parley run` parses it from the settings.
    pub fn parsed_config(&self) -> Config {
        app_config(&self.env)
    }

    /// The configuration the bot starts with: a one-second group window so tests stay short.
    pub fn config(&self) -> Config {
        self.config_with(|_| {})
    }

    /// [`Harness::config`] with the Telegram adapter's part changed by `change`.
    pub fn config_with(&self, change: impl FnOnce(&mut TelegramConfig)) -> Config {
        let mut config = self.parsed_config();
        let telegram = config.telegram.as_mut().expect("Telegram is configured");
        telegram.pace.group_window = Window {
            count: 20,
            per: Duration::from_secs(1),
        };
        change(telegram);
        config
    }

    /// Starts the bot on the same database, as `parley run` does.
    pub async fn start(&mut self) -> anyhow::Result<()> {
        self.start_with(self.config()).await
    }

    /// Starts with an adjusted configuration.
    pub async fn start_with(&mut self, config: Config) -> anyhow::Result<()> {
        self.app = Some(App::start(config).await?);
        Ok(())
    }

    /// Stops the bot as `parley run` does on SIGTERM: replies get [`GRACE`] to finish.
    pub async fn stop(&mut self) {
        if let Some(app) = self.app.take() {
            app.shutdown(GRACE).await;
        }
    }

    /// The running bot, if started.
    pub fn app(&self) -> Option<&App> {
        self.app.as_ref()
    }

    /// The database file the bot uses.
    pub fn db(&self) -> std::path::PathBuf {
        self._dir.path().join("parley.db")
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
    let config = harness.config_with(|telegram| {
        telegram.token = parley::settings::Secret::new("999:wrong-token");
    });
    let error = harness
        .start_with(config)
        .await
        .expect_err("a bad token fails");
    let text = format!("{error:#}");
    assert!(text.contains("telegram.token"), "{text}");
    assert!(!text.contains("wrong-token"), "the token leaks: {text}");
}
