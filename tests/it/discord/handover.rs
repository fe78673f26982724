//! Discord messages among several instances on one database: kept in the shared inbox and
//! answered by the instance holding the channel, so a message queued on an instance that is
//! killed is answered by the one taking the channel over (which needs only REST for it), a
//! graceful stop keeps the channel until its turns end, and a message the gateway delivers
//! twice is answered once.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use parley::app::{App, Stopped};
use parley::store::INTERRUPTED;
use tokio::process::{Child, Command};

use super::{CHANNEL, GUILD, USER, echo};
use crate::fake_discord::{BOT_ID, FAKE_TOKEN, FakeDiscord, SlashCommand, UserMessage};
use crate::fake_llm::{FakeLlm, Script};
use crate::fake_telegram::{FAKE_TOKEN as TG_TOKEN, FakeTelegram};
use crate::instances::wait_until;
use crate::support::{MARKER, slow_answer};
use crate::support::{app_config, app_env, db_url, parley_command};

/// How long replies get to finish when a test stops an instance.
const GRACE: Duration = Duration::from_secs(30);

/// One fake Discord, one fake completion server, one database, and the instances on it.
struct Cluster {
    discord: FakeDiscord,
    llm: FakeLlm,
    dir: tempfile::TempDir,
    failover_secs: u64,
    /// `store.database_url`: an SQLite file in `dir`, or a database on the test server.
    url: String,
}

impl Cluster {
    /// The fakes and an empty SQLite database; instances count as dead after `failover_secs`.
    async fn new(failover_secs: u64) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = db_url(&dir.path().join("parley.db"));
        Self::with_url(failover_secs, dir, url).await
    }

    /// The same on a new database of the tests' PostgreSQL server; `None` when there is none.
    async fn on_postgres(failover_secs: u64) -> Option<Self> {
        let url = crate::support::postgres::database().await?;
        let dir = tempfile::tempdir().expect("temp dir");
        Some(Self::with_url(failover_secs, dir, url).await)
    }

    async fn with_url(failover_secs: u64, dir: tempfile::TempDir, url: String) -> Self {
        Self {
            discord: FakeDiscord::with_bucket(5, Duration::from_millis(500)).await,
            llm: FakeLlm::start().await,
            dir,
            failover_secs,
            url,
        }
    }

    /// The `PARLEY__...` settings of instance `id`, running `shards` of two (all when `None`).
    fn env(&self, id: &str, shards: Option<&str>) -> HashMap<String, String> {
        let mut env = app_env(&self.llm, &self.dir.path().join("parley.db"));
        let mut more = vec![
            ("DISCORD__TOKEN", FAKE_TOKEN.to_string()),
            ("DISCORD__PROXY_URL", self.discord.proxy_url()),
            ("DISCORD__EDIT_INTERVAL_MS", "50".into()),
            ("DISCORD__BUCKET_SIZE", "5".into()),
            ("DISCORD__BUCKET_WINDOW_MS", "500".into()),
            ("TELEGRAM__FAILOVER_SECS", self.failover_secs.to_string()),
            ("LLM__RETRY__INITIAL_BACKOFF_MS", "10".into()),
            ("INSTANCE__COORDINATE", "true".into()),
            ("INSTANCE__ID", id.into()),
            ("STORE__DATABASE_URL", self.url.clone()),
        ];
        if let Some(shards) = shards {
            more.push(("DISCORD__SHARDS", shards.into()));
            more.push(("DISCORD__SHARD_COUNT", "2".into()));
        }
        for (key, value) in more {
            env.insert(format!("PARLEY__{key}"), value);
        }
        env
    }

    /// Starts instance `id` in this process, as `parley run` starts, and waits until it is the
    /// `sessions`th gateway session.
    async fn start(&self, id: &str, shards: Option<&str>, sessions: usize) -> App {
        let app = App::start(app_config(&self.env(id, shards)))
            .await
            .expect("the instance starts");
        self.discord.wait_ready(sessions).await;
        app
    }

    /// Starts instance `id` as a `parley run` process of its own; its log goes to a file.
    fn spawn(&self, id: &str, shards: Option<&str>) -> Child {
        let db = self.dir.path().join("parley.db");
        let mut command: Command = parley_command(&["run"], &self.llm, &db);
        for (key, value) in self.env(id, shards) {
            command.env(key, value);
        }
        let log = std::fs::File::create(self.dir.path().join(format!("{id}.log"))).expect("log");
        command.stdout(Stdio::null()).stderr(Stdio::from(log));
        command.spawn().expect("parley run starts")
    }

    /// The log of a spawned instance so far.
    fn log(&self, id: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{id}.log"))).unwrap_or_default()
    }

    /// Rows of `sql` (one text column) in the database.
    async fn texts(&self, sql: &'static str) -> Vec<String> {
        if self.url.starts_with("postgres") {
            let pool = sqlx::PgPool::connect(&self.url).await.expect("connects");
            let rows = sqlx::query_scalar(sql).fetch_all(&pool).await;
            pool.close().await;
            return rows.expect("the database answers");
        }
        let pool = sqlx::SqlitePool::connect(&self.url).await.expect("opens");
        let rows = sqlx::query_scalar(sql).fetch_all(&pool).await;
        pool.close().await;
        rows.expect("the database answers")
    }

    /// Waits until the bot's messages in [`CHANNEL`] pass `check`, or panics after `secs`
    /// seconds naming `what` and showing the messages, the inbox and the leases.
    async fn wait_for_channel(&self, secs: u64, what: &str, check: impl Fn(&[String]) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while !check(&self.discord.texts(CHANNEL)) {
            if tokio::time::Instant::now() >= deadline {
                let inbox = "SELECT seq || ' ' || event_id || ' by ' || received_by || ' ' \
                     || COALESCE('started ' || started_at, 'waiting') FROM inbox ORDER BY seq";
                let leases = "SELECT scope || ' ' || instance || \
                     COALESCE(' released ' || released_at, '') FROM chat_leases";
                eprintln!("inbox: {:#?}", self.texts(inbox).await);
                eprintln!("leases: {:#?}", self.texts(leases).await);
                panic!(
                    "timed out waiting for {what}; the channel shows {:#?}",
                    self.discord.texts(CHANNEL)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Status, failure reason and instance of every reply, in order.
    async fn replies(&self) -> Vec<String> {
        self.texts(
            "SELECT status || ' ' || COALESCE(failure_reason, '') || ' ' || COALESCE(instance, '-') \
             FROM messages WHERE role = 'assistant' ORDER BY id",
        )
        .await
    }
}

/// A message in [`CHANNEL`] of [`GUILD`] (on shard 0 of 2) that mentions the bot.
fn ask(text: &str) -> UserMessage {
    UserMessage::mention(GUILD, CHANNEL, USER, text)
}

/// A reply of instance `a` streaming, with text shown in the channel.
const STREAMING_ON_A: &str = "SELECT content FROM messages WHERE role = 'assistant' \
     AND status = 'streaming' AND instance = 'a' AND content != '' AND platform_messages != '[]'";

#[tokio::test]
async fn messages_queued_on_a_killed_instance_are_answered_in_order_by_the_one_that_takes_the_channel()
 {
    answered_after_a_kill(Cluster::new(2).await).await;
}

#[tokio::test]
async fn on_postgres_messages_queued_on_a_killed_instance_are_answered_by_the_one_taking_over() {
    if let Some(cluster) = Cluster::on_postgres(2).await {
        answered_after_a_kill(cluster).await;
    }
}

/// Instance a runs the channel's shard, b the other one: b never receives the channel's
/// events, and answers what a had kept through REST alone.
async fn answered_after_a_kill(cluster: Cluster) {
    let discord = &cluster.discord;
    cluster
        .llm
        .push(Script::reply(slow_answer()).delay(Duration::from_millis(100)));
    let mut a = cluster.spawn("a", Some("0"));
    discord.wait_ready(1).await;
    let b = cluster.start("b", Some("1"), 2).await;
    discord.user_message(ask("first"));
    wait_until(20, "a streaming the first reply", || async {
        !cluster.texts(STREAMING_ON_A).await.is_empty()
    })
    .await;
    // One after the other, as people write: messages arriving in the same instant are ordered
    // within a window only (see platform/discord/arrivals.rs and its test).
    let queued = "SELECT received_by FROM inbox WHERE started_at IS NULL";
    for (text, kept) in [("second", 1), ("third", 2)] {
        discord.user_message(ask(text));
        wait_until(20, "a keeping the message, queued", || async {
            cluster.texts(queued).await.len() == kept
        })
        .await;
    }
    assert_eq!(cluster.texts(queued).await, ["a", "a"]);

    a.start_kill().expect("kill -9");
    a.wait().await.expect("killed");
    let (second, third) = (echo("second"), echo("third"));
    cluster
        .wait_for_channel(30, "the marker and the queued answers", |texts| {
            texts.len() == 3
                && texts[0].ends_with(MARKER)
                && texts[1..] == [second.as_str(), third.as_str()]
        })
        .await;
    let streamed = discord.texts(CHANNEL)[0].clone();
    let streamed = streamed.trim_end_matches(MARKER).trim_end();
    assert!(slow_answer().starts_with(streamed), "{streamed}");
    assert_eq!(
        cluster.replies().await,
        [
            format!("partial {INTERRUPTED} a"),
            "complete  b".to_string(),
            "complete  b".to_string()
        ]
    );
    // Nothing more comes: each message was answered once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(discord.texts(CHANNEL).len(), 3);
    assert_eq!(
        cluster.llm.requests().len(),
        3,
        "the model was asked once each"
    );
    assert_eq!(discord.rate_limited(), 0, "no 429 from Discord");
    let stopped = b.shutdown(GRACE).await;
    assert_eq!(stopped, Stopped::Drained);
    let log = cluster.log("a");
    assert!(!log.contains("panicked"), "{log}");
}

#[tokio::test]
async fn a_graceful_stop_keeps_a_streaming_channel_until_its_reply_ends_then_the_other_instance_answers()
 {
    handed_over_after_the_reply(Cluster::new(60).await).await;
}

#[tokio::test]
async fn on_postgres_a_graceful_stop_hands_a_streaming_channel_over_when_its_reply_ends() {
    if let Some(cluster) = Cluster::on_postgres(60).await {
        handed_over_after_the_reply(cluster).await;
    }
}

/// Both instances run every shard (as when a new instance comes up beside the one it
/// replaces), so both receive every message; a failover far longer than the test waits.
async fn handed_over_after_the_reply(cluster: Cluster) {
    let discord = &cluster.discord;
    let a = cluster.start("a", None, 1).await;
    discord.user_message(ask("hello"));
    cluster
        .wait_for_channel(10, "a's first answer", |texts| texts == [echo("hello")])
        .await;
    let b = cluster.start("b", None, 2).await;
    // Seven seconds of answer: 4 characters every 25 ms.
    let long = slow_answer();
    cluster
        .llm
        .push(Script::reply(long.clone()).delay(Duration::from_millis(25)));
    let asked = discord.user_message(ask("a long one"));
    wait_until(10, "a streaming the long reply", || async {
        !cluster.texts(STREAMING_ON_A).await.is_empty()
    })
    .await;

    let stopping = tokio::spawn(a.shutdown(GRACE));
    let next = discord.user_message(ask("and then?"));
    let stopped = stopping.await.expect("a stopped");
    assert_eq!(stopped, Stopped::Drained, "the long reply finished on a");
    let texts = [echo("hello"), long.clone(), echo("and then?")];
    cluster
        .wait_for_channel(20, "the long reply, then b's answer", |shown| {
            shown == texts
        })
        .await;
    assert_eq!(
        cluster.replies().await,
        ["complete  a", "complete  a", "complete  b"]
    );
    // b spoke in the channel only after a's last edit of the long reply's text (b then
    // takes the buttons off it: only the last reply has them).
    let calls = discord.calls();
    let replying_to = |id: &str| {
        calls.iter().position(|c| {
            c.method == "POST" && c.body["message_reference"]["message_id"].as_str() == Some(id)
        })
    };
    let long_reply = &calls[replying_to(&asked).expect("the long reply was sent")];
    let long_id = discord
        .bot_messages(CHANNEL)
        .into_iter()
        .find(|m| m.reply_to.as_deref() == Some(asked.as_str()))
        .expect("the long reply")
        .id;
    let last_edit = calls
        .iter()
        .rposition(|c| {
            c.method == "PATCH"
                && c.path.ends_with(&format!("/messages/{long_id}"))
                && c.body.get("content").is_some()
        })
        .expect("the long reply's text was edited");
    let answer = replying_to(&next).expect("the next message was answered");
    assert!(
        answer > last_edit,
        "b answered (call {answer}) before a's last edit (call {last_edit}); {long_reply:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(discord.texts(CHANNEL), texts, "each message answered once");
    assert_eq!(
        cluster.llm.requests().len(),
        3,
        "the model was asked once each"
    );
    assert_eq!(discord.rate_limited(), 0, "no 429 from Discord");
    assert_eq!(b.shutdown(GRACE).await, Stopped::Drained);
}

#[tokio::test]
async fn a_message_the_gateway_delivers_again_is_answered_once() {
    let cluster = Cluster::new(60).await;
    let discord = &cluster.discord;
    let app = cluster.start("a", None, 1).await;
    let once = ask("once");
    let id = discord.user_message(once.clone());
    cluster
        .wait_for_channel(10, "the answer", |texts| texts == [echo("once")])
        .await;
    // A resumed session replays what it missed: the same MESSAGE_CREATE, the same id.
    discord.deliver_again(&id, &once);
    discord.user_message(ask("after"));
    cluster
        .wait_for_channel(10, "the next answer", |texts| texts.len() >= 2)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(discord.texts(CHANNEL), [echo("once"), echo("after")]);
    assert_eq!(
        cluster.llm.requests().len(),
        2,
        "the model was asked twice, not three times"
    );
    let kept = cluster
        .texts("SELECT event_id FROM inbox ORDER BY seq")
        .await;
    assert_eq!(kept.len(), 2, "the inbox holds each message once: {kept:?}");
    assert_eq!(kept[0], id);
    assert_eq!(app.shutdown(GRACE).await, Stopped::Drained);
}

#[tokio::test]
async fn a_graceful_stop_keeps_the_channel_of_a_streaming_slash_ask_until_it_ends() {
    let cluster = Cluster::new(60).await;
    let discord = &cluster.discord;
    let a = cluster.start("a", None, 1).await;
    let long = slow_answer();
    cluster
        .llm
        .push(Script::reply(long.clone()).delay(Duration::from_millis(25)));
    let ask_slash = SlashCommand::guild(GUILD, CHANNEL, USER, "ask").option("prompt", "go on");
    let token = discord.slash_command(ask_slash);
    wait_until(10, "a streaming the /ask answer", || async {
        !cluster.texts(STREAMING_ON_A).await.is_empty()
    })
    .await;
    // b comes up beside a (every shard, as a) once the interaction went to a.
    let b = cluster.start("b", None, 2).await;

    let stopping = tokio::spawn(a.shutdown(GRACE));
    let next = discord.user_message(ask("and then?"));
    assert_eq!(stopping.await.expect("a stopped"), Stopped::Drained);
    let texts = [long.clone(), echo("and then?")];
    cluster
        .wait_for_channel(20, "the /ask answer, then b's answer", |shown| {
            shown == texts
        })
        .await;
    assert_eq!(cluster.replies().await, ["complete  a", "complete  b"]);
    let calls = discord.calls();
    // The response's first edit names it `@original`, the later ones by its id.
    let response = format!("/webhooks/2000/{token}/messages/");
    let last_edit = calls
        .iter()
        .rposition(|c| {
            c.method == "PATCH" && c.path.starts_with(&response) && c.body.get("content").is_some()
        })
        .expect("the /ask answer was written");
    let answer = calls
        .iter()
        .position(|c| {
            c.method == "POST" && c.body["message_reference"]["message_id"].as_str() == Some(&next)
        })
        .expect("the next message was answered");
    assert!(
        answer > last_edit,
        "b answered (call {answer}) before a's last edit of the /ask answer (call {last_edit})"
    );
    assert_eq!(discord.rate_limited(), 0, "no 429 from Discord");
    assert_eq!(b.shutdown(GRACE).await, Stopped::Drained);
}

/// An addressed message of [`USER`] in [`CHANNEL`] as an instance keeps it in the inbox.
fn kept_message(id: &str, text: &str) -> String {
    serde_json::json!({
        "message": {
            "id": id, "channel_id": CHANNEL, "guild_id": GUILD,
            "author": { "id": USER, "username": format!("user{USER}"), "discriminator": "0" },
            "content": format!("<@{BOT_ID}> {text}"), "timestamp": "2026-01-01T00:00:00+00:00",
            "tts": false, "mention_everyone": false, "pinned": false, "type": 0,
            "mentions": [{ "id": BOT_ID, "username": "parley", "discriminator": "0", "bot": true }],
            "mention_roles": [], "attachments": [], "embeds": [],
        },
        "user": BOT_ID, "roles": [], "parent": null,
    })
    .to_string()
}

#[tokio::test]
async fn messages_a_dead_instance_kept_are_answered_by_a_discord_instance_not_one_without_discord()
{
    let cluster = Cluster::new(60).await;
    let url = cluster.url.clone();
    // Open (and migrate) the database as an instance does, then leave two messages in it as an
    // instance that died would: accepted, its lease gone with it; one an hour old.
    let store = parley::store::SqliteStore::open(&url).await.expect("opens");
    store.close().await;
    let pool = sqlx::SqlitePool::connect(&url).await.expect("opens");
    let keep = "INSERT INTO inbox (scope, platform, event_id, payload, received_by, received_at) \
         VALUES (?1, 'discord', ?2, ?3, 'gone', CAST(unixepoch('subsec') * 1000 AS INTEGER) - ?4)";
    for (id, text, age_ms) in [
        ("7001", "an hour ago", 3_600_000),
        ("7002", "still there?", 5_000),
    ] {
        sqlx::query(keep)
            .bind(format!("discord:{CHANNEL}"))
            .bind(id)
            .bind(kept_message(id, text))
            .bind(age_ms)
            .execute(&pool)
            .await
            .expect("kept");
    }
    pool.close().await;

    // An instance that answers Telegram only comes up first: it must leave the channel alone.
    let tg = FakeTelegram::start().await;
    let mut env = cluster.env("telegram-only", None);
    env.retain(|key, _| !key.starts_with("PARLEY__DISCORD__"));
    env.insert("PARLEY__TELEGRAM__TOKEN".into(), TG_TOKEN.into());
    env.insert("PARLEY__TELEGRAM__API_URL".into(), tg.api_url());
    let telegram_only = App::start(app_config(&env)).await.expect("starts");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let b = cluster.start("b", None, 1).await;
    cluster
        .wait_for_channel(20, "both kept messages answered", |texts| texts.len() == 2)
        .await;
    let texts = cluster.discord.texts(CHANNEL);
    assert!(texts[0].contains("please send it again"), "{texts:?}");
    assert_eq!(texts[1], echo("still there?"));
    assert_eq!(
        cluster.llm.requests().len(),
        1,
        "the stale one never reached the model"
    );
    let holder = cluster
        .texts("SELECT instance FROM chat_leases WHERE scope = 'discord:10'")
        .await;
    assert_eq!(holder, ["b"]);
    assert_eq!(b.shutdown(GRACE).await, Stopped::Drained);
    assert_eq!(telegram_only.shutdown(GRACE).await, Stopped::Drained);
}
