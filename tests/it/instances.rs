//! Several instances on one database (`instance.coordinate`), against one fake Bot API: each
//! message answered once, in order, by whichever instance holds its chat; one instance polls;
//! a graceful stop hands polling and chats over at once, a kill -9 within the failover time,
//! with the killed instance's reply marked and its queued message answered.
//!
//! On SQLite (several processes share one file); the store is the one thing a PostgreSQL run
//! would change: `Cluster::env` names it.

mod failover;
mod kill_busy;
mod shards;
mod webhook;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use parley::app::App;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::fake_llm::{FakeLlm, Script};
use crate::fake_telegram::{FAKE_TOKEN, FakeTelegram, User, private};
use crate::support::{app_config, app_env, db_url, parley_command};

/// How long replies get to finish when a test stops an instance.
const GRACE: Duration = Duration::from_secs(5);

/// One fake Bot API, one fake completion server, one database, and the instances on it.
pub struct Cluster {
    pub tg: FakeTelegram,
    pub llm: FakeLlm,
    dir: tempfile::TempDir,
    failover_secs: u64,
    /// `store.database_url`: an SQLite file in `dir`, or a database on the test server.
    url: String,
}

impl Cluster {
    /// The fakes and an empty SQLite database; instances count as dead after `failover_secs`.
    pub async fn new(failover_secs: u64) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = db_url(&dir.path().join("parley.db"));
        Self::with_url(failover_secs, dir, url).await
    }

    /// The same on a new database of the tests' PostgreSQL server; `None` when there is none.
    pub async fn on_postgres(failover_secs: u64) -> Option<Self> {
        let url = crate::support::postgres::database().await?;
        let dir = tempfile::tempdir().expect("temp dir");
        Some(Self::with_url(failover_secs, dir, url).await)
    }

    async fn with_url(failover_secs: u64, dir: tempfile::TempDir, url: String) -> Self {
        Self {
            tg: FakeTelegram::start().await,
            llm: FakeLlm::start().await,
            dir,
            failover_secs,
            url,
        }
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("parley.db")
    }

    /// The `PARLEY__...` settings of instance `id`.
    fn env(&self, id: &str) -> HashMap<String, String> {
        let mut env = app_env(&self.llm, &self.db());
        let more = [
            ("TELEGRAM__TOKEN", FAKE_TOKEN.to_string()),
            ("TELEGRAM__API_URL", self.tg.api_url()),
            ("TELEGRAM__FAILOVER_SECS", self.failover_secs.to_string()),
            ("LLM__RETRY__INITIAL_BACKOFF_MS", "10".into()),
            ("INSTANCE__COORDINATE", "true".into()),
            ("INSTANCE__ID", id.into()),
            ("STORE__DATABASE_URL", self.url.clone()),
        ];
        for (key, value) in more {
            env.insert(format!("PARLEY__{key}"), value);
        }
        env
    }

    /// Starts instance `id` in this process, as `parley run` starts.
    pub async fn start(&self, id: &str) -> App {
        self.start_with(id, &[]).await
    }

    /// Starts instance `id` with `extra` `PARLEY__...` settings.
    pub async fn start_with(&self, id: &str, extra: &[(&str, String)]) -> App {
        let mut env = self.env(id);
        for (key, value) in extra {
            env.insert(format!("PARLEY__{key}"), value.clone());
        }
        App::start(app_config(&env))
            .await
            .expect("the instance starts")
    }

    /// Starts instance `id` as a `parley run` process of its own; its log goes to a file.
    pub fn spawn(&self, id: &str) -> Child {
        self.spawn_with(id, &[])
    }

    /// Spawns instance `id` (as [`Cluster::spawn`]) with `extra` `PARLEY__...` settings.
    pub fn spawn_with(&self, id: &str, extra: &[(&str, String)]) -> Child {
        let mut command: Command = parley_command(&["run"], &self.llm, &self.db());
        for (key, value) in self.env(id) {
            command.env(key, value);
        }
        for (key, value) in extra {
            command.env(format!("PARLEY__{key}"), value);
        }
        let log = std::fs::File::create(self.dir.path().join(format!("{id}.log"))).expect("log");
        command.stdout(Stdio::null()).stderr(Stdio::from(log));
        command.spawn().expect("parley run starts")
    }

    /// The log of a spawned instance so far.
    pub fn log(&self, id: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{id}.log"))).unwrap_or_default()
    }

    /// `/metrics` of the spawned instance `id`, at the address its log names.
    pub async fn metrics(&self, id: &str) -> String {
        let address = crate::support::log::http_address(&self.log(id))
            .expect("the listener's address is logged");
        let url = format!("http://{address}/metrics");
        let response = reqwest::get(url).await.expect("/metrics answers");
        response.text().await.expect("a body")
    }

    /// Rows of `sql` (one text column) in the database.
    pub async fn texts(&self, sql: &'static str) -> Vec<String> {
        self.try_texts(sql).await.expect("the database answers")
    }

    /// Rows of `sql`, or the error of a database not created yet.
    async fn try_texts(&self, sql: &'static str) -> Result<Vec<String>, sqlx::Error> {
        if self.url.starts_with("postgres") {
            let pool = sqlx::PgPool::connect(&self.url).await?;
            let rows = sqlx::query_scalar(sql).fetch_all(&pool).await;
            pool.close().await;
            return rows;
        }
        let pool = sqlx::SqlitePool::connect(&self.url).await?;
        let rows = sqlx::query_scalar(sql).fetch_all(&pool).await;
        pool.close().await;
        rows
    }

    /// The instance holding the Telegram poll lease.
    pub async fn poller(&self) -> Option<String> {
        let sql = "SELECT instance FROM chat_leases WHERE scope = 'telegram:poll'";
        self.try_texts(sql).await.ok()?.pop()
    }

    /// Waits until `id` holds the poll lease; how long that took.
    pub async fn wait_for_poller(&self, id: &str, secs: u64) -> Duration {
        let started = Instant::now();
        let what = format!("{id} polling");
        wait_until(secs, &what, || async {
            self.poller().await.as_deref() == Some(id)
        })
        .await;
        started.elapsed()
    }

    /// getUpdates calls another poll ended with 409 (two instances polling at once).
    pub fn poll_conflicts(&self) -> usize {
        self.tg.poll_conflicts()
    }
}

impl Cluster {
    /// Waits until what the chats show passes `check`; after `secs` seconds, prints the
    /// inbox, the leases, the instances and the calls, and panics naming `what`.
    pub async fn wait_for_chats(
        &self,
        secs: u64,
        what: &str,
        check: impl Fn(&FakeTelegram) -> bool,
    ) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !check(&self.tg) {
            if Instant::now() >= deadline {
                self.dump().await;
                panic!("timed out waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Prints what the database says about the instances, for a failed test.
    async fn dump(&self) {
        let inbox = "SELECT seq || ' ' || scope || ' ' || event_id || ' by ' || received_by \
             || ' ' || COALESCE('started ' || started_at, 'waiting') FROM inbox ORDER BY seq";
        let leases = "SELECT scope || ' ' || instance || COALESCE(' released ' || released_at, '') \
             FROM chat_leases";
        let instances = "SELECT id || ' beat ' || heartbeat_at || ' stopping ' || stopping \
             FROM instances";
        for (name, sql) in [
            ("inbox", inbox),
            ("leases", leases),
            ("instances", instances),
        ] {
            eprintln!("{name}: {:#?}", self.try_texts(sql).await);
        }
        for call in self.tg.calls().iter().filter(|c| c.method != "getupdates") {
            eprintln!("{} {} -> {:?}", call.method, call.body, call.error);
        }
    }
}

/// Waits until `check` holds, or panics after `secs` seconds naming `what`.
pub async fn wait_until<F, Fut>(secs: u64, what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Texts of the bot's messages in `chat`, in order.
fn shown(tg: &FakeTelegram, chat: i64) -> Vec<String> {
    tg.messages(chat).into_iter().map(|m| m.text).collect()
}

/// Each of `users` writes `round` in their private chat.
fn everyone_writes(tg: &FakeTelegram, users: &[User], round: usize) {
    for user in users {
        tg.user_writes(&private(user), user, &format!("{} round {round}", user.id));
    }
}

/// What every private chat shows after `rounds`: each message's echo, once, in order.
fn echoes(user: &User, rounds: std::ops::Range<usize>) -> Vec<String> {
    rounds
        .map(|r| format!("echo: {} round {r}", user.id))
        .collect()
}

#[tokio::test]
async fn two_instances_answer_each_message_once_in_order_and_a_graceful_stop_hands_over_at_once() {
    // A failover far longer than the test waits: the handover must not wait for it.
    answered_once_in_order_and_handed_over(Cluster::new(60).await).await;
}

#[tokio::test]
async fn two_instances_on_postgres_answer_each_message_once_in_order_and_hand_over_at_once() {
    if let Some(cluster) = Cluster::on_postgres(60).await {
        answered_once_in_order_and_handed_over(cluster).await;
    }
}

async fn answered_once_in_order_and_handed_over(cluster: Cluster) {
    let a = cluster.start("a").await;
    cluster.wait_for_poller("a", 10).await;
    let b = cluster.start("b").await;
    let tg = &cluster.tg;
    let users: Vec<User> = (0..4).map(|i| User::new(9100 + i, "Ann")).collect();
    for round in 0..3 {
        everyone_writes(tg, &users, round);
    }
    let all_shown = |rounds: usize| {
        let users = users.clone();
        move |tg: &FakeTelegram| users.iter().all(|u| tg.messages(u.id).len() == rounds)
    };
    let three = all_shown(3);
    cluster
        .wait_for_chats(20, "three answers in every chat", three)
        .await;
    assert_eq!(
        cluster.poller().await.as_deref(),
        Some("a"),
        "one instance polls"
    );

    // Messages arrive while a stops: a answers what it took, b the rest.
    for round in 3..5 {
        everyone_writes(tg, &users, round);
    }
    a.shutdown(GRACE).await;
    let handover = cluster.wait_for_poller("b", 20).await;
    eprintln!("polling handed over {handover:?} after the graceful stop returned");
    everyone_writes(tg, &users, 5);
    let six = all_shown(6);
    cluster
        .wait_for_chats(20, "six answers in every chat", six)
        .await;
    // Nothing more comes: no message is answered twice, however late.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for user in &users {
        assert_eq!(shown(tg, user.id), echoes(user, 0..6), "chat {}", user.id);
    }
    let by = cluster
        .texts("SELECT COALESCE(instance, '-') FROM messages WHERE role = 'assistant' ORDER BY id")
        .await;
    assert_eq!(by.len(), 24, "one reply per message");
    assert!(by[..12].iter().all(|i| i == "a"), "{by:?}");
    assert!(
        by[20..].iter().all(|i| i == "b"),
        "after the stop b answers: {by:?}"
    );
    let statuses = cluster
        .texts("SELECT status FROM messages WHERE role = 'assistant'")
        .await;
    assert!(statuses.iter().all(|s| s == "complete"), "{statuses:?}");
    assert_eq!(tg.too_many_requests(), 0, "no 429 from the Bot API");
    assert_eq!(
        cluster.poll_conflicts(),
        0,
        "never two instances polling at once"
    );
    b.shutdown(GRACE).await;
    let leases = cluster
        .texts("SELECT scope FROM chat_leases WHERE released_at IS NULL")
        .await;
    assert!(
        leases.is_empty(),
        "both stopped instances gave their leases up: {leases:?}"
    );
}

#[tokio::test]
async fn a_single_instance_writes_nothing_for_coordination() {
    let cluster = Cluster::new(60).await;
    let mut env = cluster.env("alone");
    env.remove("PARLEY__INSTANCE__COORDINATE");
    let app = App::start(app_config(&env)).await.expect("starts");
    let ann = User::new(9250, "Ann");
    cluster.tg.user_writes(&private(&ann), &ann, "hello");
    let one = |tg: &FakeTelegram| tg.messages(9250).len() == 1;
    cluster.wait_for_chats(10, "the answer", one).await;
    app.shutdown(GRACE).await;
    for table in [
        "SELECT id FROM instances",
        "SELECT scope FROM chat_leases",
        "SELECT event_id FROM inbox",
        "SELECT instance FROM messages WHERE instance IS NOT NULL",
    ] {
        assert!(cluster.texts(table).await.is_empty(), "{table}");
    }
}

#[tokio::test]
async fn an_update_delivered_twice_is_answered_once() {
    let cluster = Cluster::new(60).await;
    let a = cluster.start("a").await;
    cluster.wait_for_poller("a", 10).await;
    let b = cluster.start("b").await;
    let tg = &cluster.tg;
    let ann = User::new(9200, "Ann");
    tg.user_writes(&private(&ann), &ann, "once");
    tg.wait_for(10, "the answer", |tg| tg.messages(ann.id).len() == 1)
        .await;
    tg.deliver_last_again();
    tg.user_writes(&private(&ann), &ann, "after");
    tg.wait_for(10, "the next answer", |tg| tg.messages(ann.id).len() >= 2)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(shown(tg, ann.id), ["echo: once", "echo: after"]);
    assert_eq!(
        cluster.llm.requests().len(),
        2,
        "the model was asked twice, not three times"
    );
    let kept = cluster
        .texts("SELECT event_id FROM inbox ORDER BY seq")
        .await;
    assert_eq!(kept.len(), 2, "the inbox holds each update once: {kept:?}");
    a.shutdown(GRACE).await;
    b.shutdown(GRACE).await;
}

/// A private-chat message update as the Bot API sends it.
fn stored_update(update_id: i64, chat: i64, text: &str) -> String {
    serde_json::json!({
        "update_id": update_id,
        "message": {
            "message_id": update_id + 100,
            "date": 1_700_000_000,
            "chat": { "id": chat, "type": "private", "first_name": "Old" },
            "from": { "id": chat, "is_bot": false, "first_name": "Old" },
            "text": text,
        }
    })
    .to_string()
}

#[tokio::test]
async fn messages_a_dead_instance_had_kept_are_answered_and_one_kept_too_long_is_asked_again() {
    let cluster = Cluster::new(60).await;
    // Open (and migrate) the database the way an instance does, then leave messages in it as
    // an instance that died would: accepted, its lease gone with it.
    let store = parley::store::SqliteStore::open(&db_url(&cluster.db()))
        .await
        .expect("opens");
    store.close().await;
    let pool = sqlx::SqlitePool::connect(&db_url(&cluster.db()))
        .await
        .expect("opens");
    let keep = "INSERT INTO inbox (scope, platform, event_id, payload, received_by, received_at) \
         VALUES (?1, 'telegram', ?2, ?3, 'gone', CAST(unixepoch('subsec') * 1000 AS INTEGER) - ?4)";
    for (chat, id, text, age_ms) in [
        (9401, 5001, "still there?", 5_000),
        (9402, 5002, "an hour ago", 3_600_000),
    ] {
        sqlx::query(keep)
            .bind(format!("telegram:{chat}"))
            .bind(id.to_string())
            .bind(stored_update(id, chat, text))
            .bind(age_ms)
            .execute(&pool)
            .await
            .expect("kept");
    }
    pool.close().await;

    let b = cluster.start("b").await;
    let both = |tg: &FakeTelegram| !tg.messages(9401).is_empty() && !tg.messages(9402).is_empty();
    cluster
        .wait_for_chats(20, "both kept messages answered", both)
        .await;
    assert_eq!(shown(&cluster.tg, 9401), ["echo: still there?"]);
    let asked_again = shown(&cluster.tg, 9402);
    assert_eq!(asked_again.len(), 1);
    assert!(
        asked_again[0].contains("please send it again"),
        "{asked_again:?}"
    );
    assert_eq!(
        cluster.llm.requests().len(),
        1,
        "the stale message never reached the model"
    );
    let waiting = cluster
        .texts("SELECT event_id FROM inbox WHERE started_at IS NULL")
        .await;
    assert!(waiting.is_empty(), "{waiting:?}");
    b.shutdown(GRACE).await;
}

#[tokio::test]
async fn a_graceful_stop_hands_idle_chats_over_at_once_and_a_busy_one_when_its_reply_ends() {
    let cluster = Cluster::new(60).await;
    let a = cluster.start("a").await;
    cluster.wait_for_poller("a", 10).await;
    let b = cluster.start("b").await;
    let tg = &cluster.tg;
    let (x, y) = (User::new(9501, "Xavier"), User::new(9502, "Yana"));
    tg.user_writes(&private(&y), &y, "hello");
    cluster
        .wait_for_chats(10, "y's answer", |tg| tg.messages(y.id).len() == 1)
        .await;
    // Eight seconds of answer in x's chat: 4 characters every 50 ms.
    let long: String = (0..160).map(|i| format!("w{:02} ", i % 100)).collect();
    cluster
        .llm
        .push(Script::reply(long.clone()).delay(Duration::from_millis(50)));
    tg.user_writes(&private(&x), &x, "a long one");
    let streaming = "SELECT instance FROM messages WHERE status = 'streaming'";
    wait_until(10, "a streaming x's reply", || async {
        cluster.texts(streaming).await == ["a"]
    })
    .await;

    let stopping = tokio::spawn(a.shutdown(Duration::from_secs(30)));
    cluster.wait_for_poller("b", 10).await;
    tg.user_writes(&private(&y), &y, "still there?");
    tg.user_writes(&private(&x), &x, "and then?");
    cluster
        .wait_for_chats(10, "y answered by b", |tg| tg.messages(y.id).len() == 2)
        .await;
    assert_eq!(
        cluster.texts(streaming).await,
        ["a"],
        "y's chat was handed over while a still streamed in x's"
    );
    stopping.await.expect("a stopped");
    let two = |tg: &FakeTelegram| tg.messages(9501).len() == 2;
    cluster
        .wait_for_chats(20, "x's next answer, by b", two)
        .await;
    assert_eq!(
        shown(tg, x.id),
        [long.trim_end().to_string(), "echo: and then?".into()]
    );
    assert_eq!(shown(tg, y.id), ["echo: hello", "echo: still there?"]);
    let by = cluster
        .texts("SELECT instance FROM messages WHERE role = 'assistant' ORDER BY id")
        .await;
    assert_eq!(by, ["a", "a", "b", "b"]);
    assert_eq!(tg.too_many_requests(), 0, "no 429 from the Bot API");
    assert_eq!(
        cluster.poll_conflicts(),
        0,
        "never two instances polling at once"
    );
    b.shutdown(GRACE).await;
}

#[tokio::test]
async fn a_chat_handed_over_carries_the_calls_made_in_it_to_the_next_instance() {
    let cluster = Cluster::new(60).await;
    let a = cluster.start("a").await;
    cluster.wait_for_poller("a", 10).await;
    let tg = &cluster.tg;
    let y = User::new(9511, "Yana");
    tg.user_writes(&private(&y), &y, "hello");
    cluster
        .wait_for_chats(10, "y's answer", |tg| tg.messages(y.id).len() == 1)
        .await;
    a.shutdown(GRACE).await;
    let kept = cluster
        .texts("SELECT COALESCE(recent, '') FROM chat_leases WHERE scope = 'telegram:9511'")
        .await;
    let calls = parley::instances::decode_recent(kept.first().map(String::as_str), Duration::ZERO);
    assert!(
        !calls.is_empty() && calls.iter().all(|ago| *ago < Duration::from_secs(30)),
        "a's calls in y's chat, for the next holder's pacing: {kept:?}"
    );
    // The next holder takes them (and the row forgets them).
    let b = cluster.start("b").await;
    tg.user_writes(&private(&y), &y, "again");
    cluster
        .wait_for_chats(10, "y's second answer", |tg| tg.messages(y.id).len() == 2)
        .await;
    let left = cluster
        .texts("SELECT COALESCE(recent, '') FROM chat_leases WHERE scope = 'telegram:9511'")
        .await;
    assert_eq!(left, [""], "taken over");
    assert_eq!(tg.too_many_requests(), 0, "no 429 from the Bot API");
    b.shutdown(GRACE).await;
}
