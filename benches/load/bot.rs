//! The bot under load: `parley run` as a child process (the real binary, wired by `App::start`),
//! so its CPU time and memory are measured apart from the fakes, from `/proc/<pid>`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// Where the bot connects to.
pub struct Endpoints {
    /// `llm.base_url`.
    pub llm: String,
    /// `telegram.api_url`.
    pub telegram: String,
    /// `discord.proxy_url`.
    pub discord: String,
    /// `telegram.failover_secs` (with several instances).
    pub failover: Duration,
}

/// A running `parley run`.
pub struct Bot {
    child: Child,
    pid: u32,
    /// Its log (stderr).
    log: PathBuf,
}

/// One instance among several on one database: its `instance.id` and the settings only it has.
pub struct Role {
    /// `instance.id`, also the name of its log, `<id>.log`.
    pub id: String,
    /// More `PARLEY__...` settings (without the prefix): the shared webhook and shard count,
    /// this instance's shard range.
    pub settings: Vec<(String, String)>,
}

/// CPU time and memory of the bot process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// User plus system CPU seconds so far.
    pub cpu_secs: f64,
    /// Resident set size now, in MB.
    pub rss_mb: f64,
    /// Peak resident set size (VmHWM), in MB.
    pub peak_mb: f64,
}

impl Bot {
    /// Starts `parley run` with the production defaults, except the endpoints, the database at
    /// `database_url`, its log in `dir`, a completion cap of `max_concurrent` and warnings-only logs (to `dir/bot.log`);
    /// `TOKIO_WORKER_THREADS` passes through, to compare runtime sizes. `PARLEY_BIN` names another
    /// binary: the one cargo builds for benchmarks carries the dev-dependencies' tokio features
    /// (`test-util`, `process`), a release build of the binary alone does not.
    /// `poll` is the Telegram long-poll timeout (`telegram.poll_timeout_secs`). With a `role`
    /// it is one of several instances, logging to `dir/<id>.log`.
    pub fn start(
        endpoints: &Endpoints,
        database_url: &str,
        dir: &Path,
        max_concurrent: usize,
        poll: Duration,
        role: Option<&Role>,
    ) -> Self {
        let name = role.map_or("bot".to_string(), |r| r.id.clone());
        let path = dir.join(format!("{name}.log"));
        let log = std::fs::File::create(&path).unwrap();
        let more = role.map(|r| r.settings.clone()).unwrap_or_default();
        let more = more.into_iter().map(|(k, v)| (format!("PARLEY__{k}"), v));
        let binary = std::env::var("PARLEY_BIN").unwrap_or(env!("CARGO_BIN_EXE_parley").into());
        let child = Command::new(binary)
            .arg("run")
            .env_clear()
            .env("PARLEY__LLM__API_KEY", super::llm::KEY)
            .env("PARLEY__LLM__BASE_URL", &endpoints.llm)
            .env("PARLEY__STORE__DATABASE_URL", database_url)
            .env(
                "PARLEY__TELEGRAM__TOKEN",
                super::it::fake_telegram::FAKE_TOKEN,
            )
            .env("PARLEY__TELEGRAM__API_URL", &endpoints.telegram)
            .env(
                "PARLEY__TELEGRAM__POLL_TIMEOUT_SECS",
                poll.as_secs().to_string(),
            )
            .env(
                "PARLEY__DISCORD__TOKEN",
                super::it::fake_discord::FAKE_TOKEN,
            )
            .env("PARLEY__DISCORD__PROXY_URL", &endpoints.discord)
            .env(
                "PARLEY__TELEGRAM__FAILOVER_SECS",
                endpoints.failover.as_secs().to_string(),
            )
            .env(
                "PARLEY__DISPATCH__MAX_CONCURRENT",
                max_concurrent.to_string(),
            )
            // Any free port: another bot on the machine may hold the default one.
            .env("PARLEY__HTTP__LISTEN", "127.0.0.1:0")
            // Warnings only, and the line naming the listener's address.
            .env("PARLEY__LOG__LEVEL", "warn,parley::app::serve=info")
            .envs(more)
            .envs(std::env::var("TOKIO_WORKER_THREADS").map(|v| ("TOKIO_WORKER_THREADS", v)))
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start parley run");
        let pid = child.id().expect("a running child");
        Self {
            child,
            pid,
            log: path,
        }
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(lines).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        tail.join("\n")
    }

    /// The address of its `/healthz` listener, once its log names it (within 60 s).
    pub async fn http_address(&self) -> SocketAddr {
        for _ in 0..600 {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(address) = super::it::support::log::http_address(&log) {
                return address;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "parley run {} named no listener; its log:\n{}",
            self.pid,
            self.log_tail(40)
        );
    }

    /// Kills it with SIGKILL (a crash, an OOM kill, a lost host) and reaps it.
    pub async fn kill(&mut self) {
        self.child.start_kill().expect("kill -9");
        let _ = self.child.wait().await;
    }

    /// The process id, for a profiler.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// CPU time and memory so far.
    pub fn usage(&self) -> Usage {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        // Fields after the command name (which may hold spaces): utime is the 14th field.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let hz = clock_ticks();
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        Usage {
            cpu_secs: (ticks(11) + ticks(12)) / hz,
            rss_mb: status_kb(&status, "VmRSS:") / 1024.0,
            peak_mb: status_kb(&status, "VmHWM:") / 1024.0,
        }
    }

    /// Stops it with SIGTERM, as a service manager would, and waits for it.
    pub async fn stop(mut self) -> Option<i32> {
        // Killed and reaped already: its pid may be another process's by now.
        self.child.id()?;
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let waited = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
        waited.ok().and_then(Result::ok).and_then(|s| s.code())
    }
}

/// A `kB` value of `/proc/<pid>/status`.
fn status_kb(status: &str, key: &str) -> f64 {
    let line = status.lines().find(|l| l.starts_with(key)).unwrap_or("");
    let value = line.trim_start_matches(key).trim().trim_end_matches("kB");
    value.trim().parse().unwrap_or(0.0)
}

/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ, 100 on Linux).
fn clock_ticks() -> f64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output();
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    text.ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(100.0)
}
