//! Discord shard ranges across processes: two `parley run` processes on one database, one
//! running shard 0 and the other shard 1 of 2, started at the same moment against the fake
//! Discord, which enforces Discord's session start limit (one IDENTIFY per 5 s per rate-limit
//! key, op 9 beyond it). The instances take turns at identifying, so neither is refused; each
//! answers its own guilds' channels, every message once and in order, without a 429.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::fake_discord::{FAKE_TOKEN, FakeDiscord, UserMessage};
use crate::fake_llm::FakeLlm;
use crate::support::{db_url, parley_command};

/// A guild on shard 0 of 2, and one on shard 1 (`(id >> 22) % 2`).
const GUILD_0: &str = "1";
const GUILD_1: &str = "4194304";
/// Two channels in each guild.
const CHANNELS: [(&str, &str); 4] = [
    (GUILD_0, "10"),
    (GUILD_0, "11"),
    (GUILD_1, "20"),
    (GUILD_1, "21"),
];
/// Messages written in each channel.
const ROUNDS: usize = 3;
const USER: &str = "42";

#[tokio::test]
async fn two_processes_on_postgres_identify_their_shards_in_turns_and_answer_each_message_once() {
    if let Some(url) = crate::support::postgres::database().await {
        two_shard_processes(url, tempfile::tempdir().expect("temp dir")).await;
    }
}

#[tokio::test]
async fn two_processes_on_sqlite_identify_their_shards_in_turns_and_answer_each_message_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("parley.db");
    // Two processes migrating a new SQLite file at once collide (SQLite has no migration lock,
    // PostgreSQL's advisory lock serialises them): create it first, as an operator would.
    let llm = FakeLlm::start().await;
    let mut check = parley_command(&["check"], &llm, &db);
    check.env("PARLEY__DISCORD__TOKEN", FAKE_TOKEN);
    let check = check.output().await.expect("parley check runs");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    two_shard_processes(db_url(&db), dir).await;
}

/// Which instance answered in which channel.
const ANSWERED_BY: &str = "SELECT DISTINCT c.chat || ' ' || m.instance FROM messages m \
     JOIN conversations c ON c.id = m.conversation WHERE m.role = 'assistant' ORDER BY 1";

/// Rows of `sql` (one text column) in the database at `url`.
async fn texts(url: &str, sql: &'static str) -> Vec<String> {
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url).await.expect("connects");
        let rows = sqlx::query_scalar(sql).fetch_all(&pool).await;
        pool.close().await;
        return rows.expect("the database answers");
    }
    let pool = sqlx::SqlitePool::connect(url).await.expect("opens");
    let rows = sqlx::query_scalar(sql).fetch_all(&pool).await;
    pool.close().await;
    rows.expect("the database answers")
}

/// Starts `parley run` with shard `shard` of 2 as instance `id` on the database at `url`; its
/// log goes to `dir`.
fn spawn(
    id: &str,
    shard: &str,
    url: &str,
    discord: &FakeDiscord,
    llm: &FakeLlm,
    dir: &tempfile::TempDir,
) -> Child {
    let mut command: Command = parley_command(&["run"], llm, &dir.path().join("unused.db"));
    let settings = [
        ("STORE__DATABASE_URL", url.to_string()),
        ("INSTANCE__COORDINATE", "true".into()),
        ("INSTANCE__ID", id.into()),
        ("DISCORD__TOKEN", FAKE_TOKEN.into()),
        ("DISCORD__PROXY_URL", discord.proxy_url()),
        ("DISCORD__SHARD_COUNT", "2".into()),
        ("DISCORD__SHARDS", shard.into()),
    ];
    for (key, value) in settings {
        command.env(format!("PARLEY__{key}"), value);
    }
    let log = std::fs::File::create(dir.path().join(format!("{id}.log"))).expect("log");
    command.stdout(Stdio::null()).stderr(Stdio::from(log));
    command.spawn().expect("parley run starts")
}

async fn two_shard_processes(url: String, dir: tempfile::TempDir) {
    // Discord's own bucket: 5 message creates or edits per 5 s in a channel.
    let (discord, llm) = (FakeDiscord::start().await, FakeLlm::start().await);
    let spawned = Instant::now();
    let a = spawn("a", "0", &url, &discord, &llm, &dir);
    let b = spawn("b", "1", &url, &discord, &llm, &dir);
    let log = |id: &str| {
        std::fs::read_to_string(dir.path().join(format!("{id}.log"))).unwrap_or_default()
    };
    let dump = || {
        for (_, channel) in CHANNELS {
            eprintln!("{channel}: {:?}", discord.texts(channel));
        }
        eprintln!(
            "IDENTIFYs: {:?}\nsession starts: {:?}",
            discord.identifies(),
            discord.session_starts()
        );
        eprintln!("a: {}\nb: {}", log("a"), log("b"));
    };
    let until = async |what: &str, check: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !check() {
            if Instant::now() >= deadline {
                dump();
                panic!("timed out waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    until("both shards connected", &|| {
        discord.session_starts().len() >= 2
    })
    .await;
    let starts = discord.session_starts();
    let shards: Vec<u64> = starts.iter().map(|s| s.0).collect();
    assert!(shards == [0, 1] || shards == [1, 0], "{shards:?}");
    assert_eq!(
        discord.invalid_sessions(),
        0,
        "no IDENTIFY refused: {:?}\na: {}\nb: {}",
        discord.identifies(),
        log("a"),
        log("b")
    );
    assert_eq!(discord.identifies().len(), 2, "one IDENTIFY per shard");
    let apart = starts[1].1 - starts[0].1;
    assert!(
        apart >= Duration::from_secs(5),
        "identified {apart:?} apart"
    );
    // A session takes its dispatches once READY is sent.
    discord.wait_ready(2).await;
    eprintln!(
        "shards identified {apart:?} apart, {:?} after the spawn",
        starts[1].1 - spawned
    );

    let expected = |channel: &str, rounds: usize| -> Vec<String> {
        (0..rounds)
            .map(|r| format!("echo: user{USER}: {channel} round {r}"))
            .collect()
    };
    let write = |round: usize| {
        for (guild, channel) in CHANNELS {
            let text = format!("{channel} round {round}");
            discord.user_message(UserMessage::mention(guild, channel, USER, &text));
        }
    };
    // Round by round: serenity runs each event's handler in a task of its own, so on main two
    // messages of one channel arriving together can overtake each other in the handler
    // (branch `dinbox` orders arrivals per channel; with it, every round can go back to back).
    for round in 0..ROUNDS {
        write(round);
        until("every channel answered", &|| {
            CHANNELS
                .iter()
                .all(|(_, c)| discord.texts(c) == expected(c, round + 1))
        })
        .await;
    }
    for (_, channel) in CHANNELS {
        assert_eq!(
            discord.texts(channel),
            expected(channel, ROUNDS),
            "{channel}: once each, in order"
        );
    }
    assert_eq!(
        llm.requests().len(),
        CHANNELS.len() * ROUNDS,
        "every message answered once"
    );
    assert_eq!(discord.rate_limited(), 0, "no 429 from Discord");
    assert_eq!(
        texts(&url, ANSWERED_BY).await,
        ["10 a", "11 a", "20 b", "21 b"],
        "each instance answers the channels of its shard's guild"
    );
    for (id, process) in [("a", a), ("b", b)] {
        drop(process);
        let log = log(id);
        assert!(!log.contains("panicked"), "{log}");
    }
}
