//! The bot as one process or as several instances on one database: with `--instances 2`, two
//! `parley run` processes (`instance.id` a and b) share the fakes and the database; Telegram
//! posts its updates (webhook mode) to a round-robin proxy in front of their HTTP listeners,
//! and Discord's two shards are split between them (a runs shard 0, b shard 1).
//!
//! The proxy checks its backends as a load balancer does (`GET /healthz` every second, out of
//! the rotation after two checks without an answer, back after one answer), and the fake Telegram retries a
//! delivery that failed as the real one does: an update sent to a killed instance reaches the
//! other one.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::bot::{Bot, Endpoints, Role, Usage};
use super::it::proxy::RoundRobin;

/// `telegram.webhook_secret` of the instances.
const SECRET: &str = "load-Secret_1";

/// How often the proxy's health check asks each backend.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Failed checks in a row that take a backend out of the rotation.
const FALL: u32 = 2;

/// The running bot: one process, or several instances behind the proxy.
pub struct Cluster {
    /// The processes, in the order of their ids (a, b, ...).
    pub bots: Vec<Bot>,
    /// The ids of the instances (`bot` for a lone process).
    pub ids: Vec<String>,
    /// The proxy in front of the instances, kept running while they run.
    _proxy: Option<Arc<RoundRobin>>,
    health: Option<JoinHandle<()>>,
}

/// What starting the bot needs.
pub struct Setup<'a> {
    /// Where it connects to.
    pub endpoints: &'a Endpoints,
    /// `store.database_url`.
    pub database: &'a str,
    /// Its folder (logs).
    pub dir: &'a Path,
    /// `dispatch.max_concurrent`.
    pub max_concurrent: usize,
    /// `telegram.poll_timeout_secs` (one instance).
    pub poll: Duration,
}

impl Cluster {
    /// Starts `count` instances: one as the benchmark always ran it (long polling, one
    /// shard), or several behind the proxy, each with its shard; returns once every instance
    /// serves its listener.
    pub async fn start(count: usize, setup: &Setup<'_>) -> Self {
        let Setup {
            endpoints,
            database,
            dir,
            max_concurrent,
            poll,
        } = *setup;
        if count <= 1 {
            let bot = Bot::start(endpoints, database, dir, max_concurrent, poll, None);
            return Self {
                bots: vec![bot],
                ids: vec!["bot".into()],
                _proxy: None,
                health: None,
            };
        }
        let proxy = Arc::new(RoundRobin::start().await);
        let ids: Vec<String> = (0..count)
            .map(|i| ((b'a' + i as u8) as char).to_string())
            .collect();
        let bots: Vec<Bot> = ids
            .iter()
            .enumerate()
            .map(|(shard, id)| {
                let role = Role {
                    id: id.clone(),
                    settings: vec![
                        ("INSTANCE__ID".into(), id.clone()),
                        // PostgreSQL always coordinates; an SQLite file needs it said.
                        ("INSTANCE__COORDINATE".into(), "true".into()),
                        (
                            "TELEGRAM__WEBHOOK_URL".into(),
                            format!("{}/telegram/webhook", proxy.url()),
                        ),
                        ("TELEGRAM__WEBHOOK_SECRET".into(), SECRET.into()),
                        ("DISCORD__SHARD_COUNT".into(), count.to_string()),
                        ("DISCORD__SHARDS".into(), shard.to_string()),
                    ],
                };
                Bot::start(endpoints, database, dir, max_concurrent, poll, Some(&role))
            })
            .collect();
        let mut backends = Vec::new();
        for bot in &bots {
            let address = bot.http_address().await;
            proxy.add(address);
            backends.push(address);
        }
        let health = tokio::spawn(check_health(proxy.clone(), backends));
        Self {
            bots,
            ids,
            _proxy: Some(proxy),
            health: Some(health),
        }
    }

    /// Several instances (webhook mode, shards).
    pub fn several(&self) -> bool {
        self.bots.len() > 1
    }

    /// Each process's CPU time and memory so far.
    pub fn usage(&self) -> Vec<Usage> {
        self.bots.iter().map(Bot::usage).collect()
    }

    /// Stops every process that still runs with SIGTERM; their exit codes (`None` for one
    /// killed before).
    pub async fn stop(self) -> Vec<Option<i32>> {
        if let Some(health) = &self.health {
            health.abort();
        }
        let mut codes = Vec::new();
        for bot in self.bots {
            codes.push(bot.stop().await);
        }
        codes
    }
}

/// The proxy's health check: a backend that fails [`FALL`] checks in a row leaves the
/// rotation, one that answers again comes back.
async fn check_health(proxy: Arc<RoundRobin>, backends: Vec<SocketAddr>) {
    let client = reqwest::Client::builder()
        .timeout(CHECK_EVERY * 2)
        .build()
        .expect("a client");
    let mut failures = vec![0u32; backends.len()];
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        for (i, backend) in backends.iter().enumerate() {
            let answer = client.get(format!("http://{backend}/healthz")).send().await;
            // Alive when it answers at all: a 503 names a failing platform, and the webhook
            // endpoint still takes updates.
            let healthy = answer.is_ok();
            if healthy {
                if failures[i] >= FALL {
                    proxy.add(*backend);
                }
                failures[i] = 0;
            } else {
                failures[i] += 1;
                if failures[i] == FALL {
                    proxy.remove(*backend);
                }
            }
        }
    }
}
