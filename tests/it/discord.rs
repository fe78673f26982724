//! The Discord adapter end to end: the bot started as `parley run` starts it (`App::start`, a
//! SQLite file), against the fake completion server and the fake Discord (REST and gateway).

mod attachments;
mod bench;
mod commands;
mod controls;
mod handover;
mod instances;
mod lifecycle;
mod limits;
mod messages;
mod shards;

use std::collections::HashMap;
use std::time::Duration;

use parley::app::{App, Stopped};
use serde_json::{Value, json};

use crate::fake_discord::{FAKE_TOKEN, FakeDiscord};
use crate::fake_llm::FakeLlm;
use crate::support::{app_config, app_env};

/// The guild and channels the scenarios use.
const GUILD: &str = "1";
const CHANNEL: &str = "10";
const USER: &str = "42";

/// How long replies get to finish when a test stops the bot.
const GRACE: Duration = Duration::from_secs(10);

/// A running bot: started in-process as `parley run` starts it, against both fakes.
struct Bot {
    discord: FakeDiscord,
    llm: FakeLlm,
    _dir: tempfile::TempDir,
    env: HashMap<String, String>,
    app: Option<App>,
    starts: usize,
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
        let mut env = app_env(&llm, &dir.path().join("parley.db"));
        let settings = [
            ("PARLEY__DISCORD__TOKEN", FAKE_TOKEN.to_string()),
            ("PARLEY__DISCORD__PROXY_URL", discord.proxy_url()),
            ("PARLEY__DISCORD__EDIT_INTERVAL_MS", "50".into()),
            ("PARLEY__DISCORD__BUCKET_SIZE", "5".into()),
            ("PARLEY__DISCORD__BUCKET_WINDOW_MS", "500".into()),
        ];
        let extra = extra.iter().map(|(k, v)| (*k, v.to_string()));
        for (key, value) in settings.into_iter().chain(extra) {
            env.insert(key.to_string(), value);
        }
        Self {
            discord,
            llm,
            _dir: dir,
            env,
            app: None,
            starts: 0,
        }
    }

    /// Starts the bot as `parley run` does, and waits for READY.
    async fn launch(&mut self) -> anyhow::Result<()> {
        let app = App::start(app_config(&self.env)).await?;
        self.starts += 1;
        self.discord.wait_ready(self.starts).await;
        self.app = Some(app);
        Ok(())
    }

    /// Stops the bot as `parley run` does on SIGTERM; every reply must finish within [`GRACE`].
    async fn stop(&mut self) {
        let Some(app) = self.app.take() else {
            return;
        };
        let stopped = app.shutdown(GRACE).await;
        assert_eq!(stopped, Stopped::Drained, "the adapter stops");
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
