//! The load benchmark of the whole pipeline: `parley run` (engine, SQLite store, completion
//! client, Telegram and Discord adapters) against the project's fake Telegram and fake Discord
//! and a paced fake completion server, with N concurrent conversations.
//!
//! `cargo bench --bench load` runs N = 10, 100 and 1000; `cargo bench --bench load -- --n 100`
//! one size. Options: `--turns T` (messages per conversation, 2), `--ttft-ms` (200),
//! `--tps` (tokens a second, 50), `--token-chars` (characters a token, 4), `--chars` (reply
//! length, 1500), `--ramp-ms` (over which each round's messages arrive, 1000), `--poll-s` (the
//! bot's Telegram long-poll timeout, 10), `--side telegram|discord|both` (where the
//! conversations live; both: even ones on Telegram, odd ones on Discord, the default),
//! `--store sqlite|postgres` (the bot's database: a file in a temporary folder, the default, or a
//! fresh database on the throwaway PostgreSQL server the tests start, `scripts/postgres.sh`;
//! `PARLEY_TEST_POSTGRES_URL` names another), `--instances 2` (two `parley run` processes on one
//! database, PostgreSQL unless `--store sqlite` is given: Telegram in webhook mode behind a
//! round-robin proxy, Discord's two shards one each; then the failover round, see
//! `failover.rs`), `--kill-after-ms` (from the failover round's start to the kill, the ramp and
//! 2,000 more), `--failover-s` (`telegram.failover_secs`, 10 as in production). After the
//! rounds the bot idles for three poll timeouts and a second more, then every conversation writes
//! once again: the idle round. Without `--bench` (as `cargo test --bench load` runs it) it is a
//! smoke test: N = 10, polls of 2 s, and it fails only if a reply is missing or not exact.
//! BENCHMARKS.md explains the metrics.
//!
//! The burst of issue 15 (N conversations starting at once, 1,500 characters at 50 tokens/s each)
//! is `--ramp-ms 0`: `cargo bench --bench load -- --n 200,1000 --ramp-ms 0`. Both sides share N,
//! so N=200 puts 100 chats on each platform; `--n 200 --side telegram` puts all 200 on Telegram,
//! as the issue measured.

#[path = "../../tests/it"]
#[allow(unused_imports)]
mod it {
    pub mod fake_discord;
    pub mod fake_net;
    pub mod fake_telegram;
    pub mod proxy;
    /// The tests' throwaway PostgreSQL server, for `--store postgres`.
    #[allow(dead_code)]
    pub mod support {
        pub mod log;
        pub mod postgres;
    }
}
mod bot;
mod cluster;
mod drive;
mod failover;
mod limits;
mod llm;
mod report;
mod schedule;
mod table;

use std::time::Duration;

use tokio::time::{Instant, sleep};

use bot::Endpoints;
use cluster::{Cluster, Setup};
use drive::{Conversation, Fakes, Side};
use it::fake_discord::FakeDiscord;
use it::fake_telegram::FakeTelegram;
use llm::{FakeLlm, Shape};
use table::Row;

/// How long the bot's idle CPU time is measured after start.
const IDLE: Duration = Duration::from_secs(4);

/// What to run.
#[derive(Debug, Clone)]
struct Options {
    sizes: Vec<usize>,
    turns: usize,
    shape: Shape,
    ramp: Duration,
    poll: Duration,
    /// The one platform of every conversation, or `None` for both (alternating).
    only: Option<Side>,
    /// The bot's database.
    store: StoreKind,
    /// `parley run` processes on the database.
    instances: usize,
    /// From the failover round's start to the kill.
    kill_after: Duration,
    /// `telegram.failover_secs`.
    failover: Duration,
    smoke: bool,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        let at = args.iter().position(|a| a == name)?;
        args.get(at + 1).cloned()
    };
    let number = |name: &str, default: f64| {
        value(name).map_or(default, |v| {
            v.parse().unwrap_or_else(|_| panic!("{name} {v}"))
        })
    };
    let smoke = args.iter().any(|a| a == "--smoke") || !args.iter().any(|a| a == "--bench");
    let instances = number("--instances", 1.0) as usize;
    assert!(
        (1..=2).contains(&instances),
        "--instances {instances}: 1 or 2"
    );
    let ramp = Duration::from_millis(number("--ramp-ms", 1000.0) as u64);
    let kill_after =
        Duration::from_millis(number("--kill-after-ms", (ramp.as_millis() + 2000) as f64) as u64);
    assert!(
        kill_after >= ramp * 3 / 2,
        "--kill-after-ms: at least 1.5 ramps, so that wave B starts after wave A"
    );
    let sizes = match value("--n") {
        Some(list) => list.split(',').map(|n| n.parse().expect("--n N")).collect(),
        None if smoke => vec![10],
        None => vec![10, 100, 1000],
    };
    Options {
        sizes,
        turns: number("--turns", 2.0) as usize,
        shape: Shape {
            first_token: Duration::from_millis(number("--ttft-ms", 200.0) as u64),
            tokens_per_sec: number("--tps", 50.0),
            token_chars: number("--token-chars", 4.0) as usize,
            reply_chars: number("--chars", 1500.0) as usize,
        },
        ramp,
        poll: Duration::from_secs(number("--poll-s", if smoke { 2.0 } else { 10.0 }) as u64),
        only: match value("--side").as_deref() {
            None | Some("both") => None,
            Some("telegram") => Some(Side::Telegram),
            Some("discord") => Some(Side::Discord),
            Some(other) => panic!("--side {other}: telegram, discord or both"),
        },
        store: match value("--store").as_deref() {
            None if instances > 1 => StoreKind::Postgres,
            None | Some("sqlite") => StoreKind::Sqlite,
            Some("postgres") => StoreKind::Postgres,
            Some(other) => panic!("--store {other}: sqlite or postgres"),
        },
        instances,
        kill_after,
        failover: Duration::from_secs(number("--failover-s", 10.0) as u64),
        smoke,
    }
}

/// Where the bot keeps its conversations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreKind {
    /// An SQLite file in the run's temporary folder.
    Sqlite,
    /// A fresh database on the test PostgreSQL server.
    Postgres,
}

/// The database URL of one run: a file in `dir`, or a new PostgreSQL database.
async fn database_url(store: StoreKind, dir: &std::path::Path) -> String {
    match store {
        StoreKind::Sqlite => format!("sqlite://{}", dir.join("parley.db").display()),
        StoreKind::Postgres => it::support::postgres::database()
            .await
            .expect("--store postgres: no PostgreSQL server could be started"),
    }
}

fn main() {
    schedule::self_check();
    failover::self_check();
    let options = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    let mut failovers = Vec::new();
    for &n in &options.sizes {
        let (row, failover) = runtime.block_on(run(n, &options));
        rows.push(row);
        failovers.extend(failover);
    }
    let store = match options.store {
        StoreKind::Sqlite => "SQLite",
        StoreKind::Postgres => "PostgreSQL",
    };
    let instances = match options.instances {
        1 => "one instance (long polling, one Discord shard)".to_string(),
        n => format!(
            "{n} instances (Telegram webhook behind a round-robin proxy, one Discord shard each)"
        ),
    };
    println!("\nStore: {store}; {instances}.");
    println!("\n{}", table::render(&rows, &options.shape, options.only));
    for report in &failovers {
        println!("\n{}", failover::render(report));
    }
    let bad: usize = rows.iter().map(|r| r.replies - r.exact).sum();
    let lost = failovers
        .iter()
        .map(failover::Report::lost)
        .fold([0, 0], |a, b| [a[0] + b[0], a[1] + b[1]]);
    if bad > 0 || lost != [0, 0] {
        eprintln!(
            "{bad} replies missing or not exact; messages of the failover round lost or extra: \
             {} on Telegram, {} on Discord",
            lost[0], lost[1]
        );
        std::process::exit(1);
    }
}

/// One size: fresh fakes, a fresh bot and database, `turns` rounds of N messages, the idle
/// round, and with several instances the failover round.
async fn run(n: usize, options: &Options) -> (Row, Option<failover::Report>) {
    let load = load_average();
    let fakes = Fakes {
        tg: FakeTelegram::start_with(limits::TELEGRAM).await,
        dc: FakeDiscord::start().await,
        llm: FakeLlm::start(options.shape).await,
        reply_chars: options.shape.reply_chars,
    };
    let dir = tempfile::tempdir().unwrap();
    let endpoints = Endpoints {
        llm: fakes.llm.base_url(),
        telegram: fakes.tg.api_url(),
        discord: fakes.dc.proxy_url(),
        failover: options.failover,
    };
    let database = database_url(options.store, dir.path()).await;
    let setup = Setup {
        endpoints: &endpoints,
        database: &database,
        dir: dir.path(),
        max_concurrent: n.max(256),
        poll: options.poll,
    };
    let mut cluster = Cluster::start(options.instances, &setup).await;
    for (id, bot) in cluster.ids.iter().zip(&cluster.bots) {
        eprintln!("N={n}: parley run {id} is pid {}", bot.pid());
    }
    wait_connected(&fakes, &cluster).await;
    sleep(Duration::from_secs(2)).await;
    let settled = cluster.usage();
    sleep(IDLE).await;
    let idle = cluster.usage();
    let idle_cpu = idle
        .iter()
        .zip(&settled)
        .map(|(idle, settled)| (idle.cpu_secs - settled.cpu_secs) / IDLE.as_secs_f64())
        .collect();
    let conversations: Vec<Conversation> =
        (0..n).map(|i| Conversation::new(i, options.only)).collect();
    let limit = Duration::from_secs(60) + Duration::from_millis(200) * n as u32;
    let started = Instant::now();
    let mut turns = Vec::new();
    for turn in 0..options.turns {
        eprintln!("N={n}: round {} of {}", turn + 1, options.turns);
        turns.extend(drive::round(&fakes, &conversations, turn, options.ramp, limit).await);
        sleep(Duration::from_secs(1)).await;
    }
    let wall = started.elapsed();
    let busy = cluster.usage();
    let quiet = options.poll * 3 + Duration::from_secs(1);
    eprintln!("N={n}: idle for {} s, then the idle round", quiet.as_secs());
    sleep(quiet).await;
    let idle_round = options.turns;
    turns.extend(drive::round(&fakes, &conversations, idle_round, options.ramp, limit).await);
    let logs = report::Logs::read(&fakes);
    let samples: Vec<report::Sample> = turns
        .iter()
        .map(|t| report::sample(&fakes, &logs, t))
        .collect();
    let inexact = turns.iter().zip(&samples).filter(|(_, s)| !s.exact);
    for (turn, _) in inexact.take(3) {
        eprintln!(
            "not exact: {:?} chat {} turn {}: shows {:?}, expected {:?}",
            turn.conversation.side, turn.conversation.chat, turn.tag, turn.shown, turn.visible
        );
    }
    let any_inexact = samples.iter().any(|s| !s.exact);
    let failover = if cluster.several() {
        eprintln!("N={n}: the failover round");
        let plan = failover::Plan {
            ramp: options.ramp,
            kill_after: options.kill_after,
            failover: options.failover,
            limit: limit + options.failover,
            turn: idle_round + 1,
            database: database.clone(),
        };
        Some(failover::round(&fakes, &conversations, &mut cluster, &plan).await)
    } else {
        None
    };
    let lost = failover.as_ref().is_some_and(|f| f.lost() != [0, 0]);
    let tails: Vec<String> = cluster.bots.iter().map(|b| b.log_tail(60)).collect();
    let ids = cluster.ids.clone();
    let codes = cluster.stop().await;
    // A killed instance has no exit code; every other one stops cleanly.
    let killed = usize::from(failover.is_some());
    let unclean = codes.iter().skip(killed).any(|c| *c != Some(0));
    if unclean || any_inexact || lost {
        for ((id, code), tail) in ids.iter().zip(&codes).zip(&tails) {
            eprintln!("parley run {id} exited with {code:?}; the end of its log:\n{tail}");
        }
    }
    let usage = table::Usages {
        idle,
        busy,
        idle_cpu,
    };
    let run = table::Run {
        n,
        load,
        idle_round,
        wall,
        smoke: options.smoke,
    };
    (Row::new(run, &samples, &logs, usage), failover)
}

/// Waits until the bot polls Telegram (one instance) or every instance has set the webhook
/// (several), and every instance has its Discord gateway session.
async fn wait_connected(fakes: &Fakes, cluster: &Cluster) {
    let count = cluster.bots.len();
    if cluster.several() {
        fakes
            .tg
            .wait_for(30, "every instance's setWebhook", |tg| {
                tg.calls_of("setWebhook").len() >= count
            })
            .await;
    } else {
        fakes
            .tg
            .wait_for(30, "the first getUpdates", |tg| {
                !tg.calls_of("getUpdates").is_empty()
            })
            .await;
    }
    fakes.dc.wait_ready(count).await;
}

/// The one-minute load average, from `/proc/loadavg`.
fn load_average() -> f64 {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let first = text.split_whitespace().next().unwrap_or("0");
    first.parse().unwrap_or(0.0)
}
