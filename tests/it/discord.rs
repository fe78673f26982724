//! The Discord adapter end to end: the real engine, a real SQLite file, the fake completion
//! server and the fake Discord (REST and gateway).

mod bench;
mod commands;
mod lifecycle;
mod limits;
mod messages;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parley::app;
use parley::engine::dispatcher::{Dispatcher, Shutdown};
use parley::platform::discord;
use parley::settings::{Config, Purpose, Settings};
use parley::store::SqliteStore;
use serde_json::{Value, json};
use tokio_util::task::TaskTracker;

use crate::fake_discord::{FAKE_TOKEN, FakeDiscord};
use crate::fake_llm::{FAKE_KEY, FakeLlm};

/// The guild and channels the scenarios use.
const GUILD: &str = "1";
const CHANNEL: &str = "10";
const USER: &str = "42";

/// A running bot: the adapter started in-process against both fakes.
struct Bot {
    discord: FakeDiscord,
    llm: FakeLlm,
    _dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    running: Option<Running>,
    starts: usize,
}

struct Running {
    tracker: TaskTracker,
    shutdown: Shutdown,
    store: Arc<SqliteStore>,
}

impl Bot {
    /// A bot with fast pacing (50 ms, 5 per 500 ms) and a fake with the same bucket.
    async fn start() -> Self {
        Self::start_with(
            FakeDiscord::with_bucket(5, Duration::from_millis(500)).await,
            &[],
        )
        .await
    }

    /// A bot against `discord`, with extra `PARLEY__...` settings.
    async fn start_with(discord: FakeDiscord, extra: &[(&str, &str)]) -> Self {
        let mut bot = Self::new(discord, extra).await;
        bot.launch().await.expect("the Discord adapter starts");
        bot
    }

    async fn new(discord: FakeDiscord, extra: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let llm = FakeLlm::start().await;
        let db = dir.path().join("parley.db");
        let mut env = vec![
            ("PARLEY__LLM__API_KEY".to_string(), FAKE_KEY.to_string()),
            ("PARLEY__LLM__BASE_URL".into(), llm.base_url()),
            (
                "PARLEY__STORE__DATABASE_URL".into(),
                format!("sqlite://{}", db.display()),
            ),
            ("PARLEY__REPLY__THINKING_AFTER_SECS".into(), "0".into()),
            ("PARLEY__DISCORD__TOKEN".into(), FAKE_TOKEN.into()),
            ("PARLEY__DISCORD__PROXY_URL".into(), discord.proxy_url()),
            ("PARLEY__DISCORD__EDIT_INTERVAL_MS".into(), "50".into()),
            ("PARLEY__DISCORD__BUCKET_SIZE".into(), "5".into()),
            ("PARLEY__DISCORD__BUCKET_WINDOW_MS".into(), "500".into()),
        ];
        for (key, value) in extra {
            env.retain(|(k, _)| k != key);
            env.push((key.to_string(), value.to_string()));
        }
        Self {
            discord,
            llm,
            _dir: dir,
            env,
            running: None,
            starts: 0,
        }
    }

    fn settings(&self) -> Config {
        let env: HashMap<String, String> = self.env.iter().cloned().collect();
        let settings = Settings::load_from(None, Some(env)).expect("valid test settings");
        Config::from_settings(&settings, Purpose::Run).expect("valid test settings")
    }

    /// Opens the store, starts the engine, dispatcher and adapter, and waits for READY.
    async fn launch(&mut self) -> Result<(), discord::DiscordError> {
        let settings = self.settings();
        let store = app::open_store(&settings.database_url).await.unwrap();
        let engine = app::build_engine(&settings, store.clone()).unwrap();
        let tracker = TaskTracker::new();
        let shutdown = Shutdown::default();
        let config = settings.dispatch;
        let dispatcher =
            Dispatcher::start(engine.clone(), config, tracker.clone(), shutdown.clone());
        let intake = shutdown.intake.clone();
        let health = parley::health::Health::new().register("discord");
        let adapter = settings.discord.expect("Discord is configured");
        discord::start(adapter, engine, dispatcher, &tracker, intake, health).await?;
        self.starts += 1;
        self.discord.wait_ready(self.starts).await;
        self.running = Some(Running {
            tracker,
            shutdown,
            store,
        });
        Ok(())
    }

    /// Stops the adapter and the engine as `parley run` does, and closes the store.
    async fn stop(&mut self) {
        let Some(running) = self.running.take() else {
            return;
        };
        running.shutdown.intake.cancel();
        running.tracker.close();
        let wait = tokio::time::timeout(Duration::from_secs(10), running.tracker.wait());
        wait.await.expect("the adapter stops");
        running.store.close().await;
    }

    /// Waits until `check` holds, failing the test after 10 s.
    async fn until(&self, what: &str, check: impl Fn(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !check(self) {
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out waiting until {what}; calls: {:#?}",
                    self.discord.calls()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the bot's messages in `channel` read `texts`.
    async fn until_texts(&self, channel: &str, texts: &[String]) {
        self.until("the messages show the final texts", |bot| {
            bot.discord.texts(channel) == texts
        })
        .await;
    }

    /// The conversation header of every completion request, in order.
    fn headers(&self) -> Vec<String> {
        let requests = self.llm.requests().into_iter();
        requests
            .map(|r| r.header("x-conversation-id").unwrap_or("").to_string())
            .collect()
    }

    /// The messages of the last completion request.
    fn last_request(&self) -> Value {
        self.llm
            .requests()
            .last()
            .expect("a completion request")
            .body
            .clone()
    }
}

/// The fake model's answer to a guild message from [`USER`] (guild prompts carry the name).
fn echo(text: &str) -> String {
    format!("echo: user{USER}: {text}")
}

/// `allowed_mentions` that ping nobody.
fn no_pings() -> Value {
    json!({ "parse": [], "replied_user": false })
}
