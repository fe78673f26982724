//! Self-hosting: the health and metrics endpoint, `check --online`, secrets in trace logs, a
//! kill -9 in the middle of a reply, and the binary run the way the Docker image runs it.

mod attachment_cost;
mod check;
mod crash;
mod field;
mod health;
mod image;
mod lifecycle;
mod secrets;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::fake_llm::FakeLlm;
use crate::fake_telegram::{FAKE_TOKEN, FakeTelegram};
use crate::support::{db_url, parley_command, parley_command_of};

/// A temporary installation: a data folder and the fake completion server.
struct Install {
    fake: FakeLlm,
    dir: tempfile::TempDir,
}

/// What one finished run printed.
struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Install {
    async fn new() -> Self {
        Self {
            fake: FakeLlm::start().await,
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("data").join("parley.db")
    }

    /// `parley ARGS` with only environment configuration, pipes for every stream.
    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = parley_command(args, &self.fake, &self.db());
        for (key, value) in env {
            cmd.env(key, value);
        }
        cmd
    }

    /// Runs `parley ARGS` with `input` on stdin to its end.
    async fn run(&self, args: &[&str], input: &str, env: &[(&str, &str)]) -> Output {
        let child = self.command(args, env).spawn().expect("start parley");
        finish(child, input).await
    }
}

/// Writes `input`, closes stdin and waits for the exit.
async fn finish(mut child: Child, input: &str) -> Output {
    use tokio::io::AsyncWriteExt;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes()).await;
    }
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("parley exits")
        .expect("output");
    Output {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A free port on loopback, for a listener the subprocess binds.
fn free_port() -> u16 {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("address").port()
}

/// Opens the database file beside the process using it.
async fn open_db(path: &Path) -> sqlx::SqlitePool {
    sqlx::SqlitePool::connect(&db_url(path))
        .await
        .expect("opens the database")
}

/// Status, reason and content of the first reply, after checking the database's integrity.
async fn first_reply(install: &Install) -> (String, Option<String>, String) {
    let pool = open_db(&install.db()).await;
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&pool)
        .await
        .expect("checked");
    assert_eq!(integrity, "ok");
    sqlx::query_as(
        "SELECT status, failure_reason, content FROM messages WHERE role = 'assistant' \
         ORDER BY id LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .expect("the reply row")
}

/// `parley run` as a subprocess, on Telegram (a fake), with its health listener on a free port.
struct Bot {
    tg: Arc<FakeTelegram>,
    child: Child,
    listen: String,
    port: u16,
}

impl Bot {
    /// Starts `parley run` in `cwd` (or the test's) with `env` on top of the install's.
    async fn start(install: &Install, cwd: Option<&Path>, env: &[(&str, &str)]) -> Self {
        Self::start_with(install, Arc::new(FakeTelegram::start().await), cwd, env).await
    }

    /// `parley run` from the binary at `bin` (another build, for comparisons).
    async fn start_binary(install: &Install, bin: &str, env: &[(&str, &str)]) -> Self {
        let tg = Arc::new(FakeTelegram::start().await);
        Self::launch(install, bin, tg, None, env).await
    }

    /// Like [`Bot::start`], on an existing fake Telegram.
    async fn start_with(
        install: &Install,
        tg: Arc<FakeTelegram>,
        cwd: Option<&Path>,
        env: &[(&str, &str)],
    ) -> Self {
        Self::launch(install, env!("CARGO_BIN_EXE_parley"), tg, cwd, env).await
    }

    async fn launch(
        install: &Install,
        bin: &str,
        tg: Arc<FakeTelegram>,
        cwd: Option<&Path>,
        env: &[(&str, &str)],
    ) -> Self {
        let port = free_port();
        let listen = format!("0.0.0.0:{port}");
        let api_url = tg.api_url();
        let mut all = vec![
            ("PARLEY__HTTP__LISTEN", listen.as_str()),
            ("PARLEY__TELEGRAM__TOKEN", FAKE_TOKEN),
            ("PARLEY__TELEGRAM__API_URL", api_url.as_str()),
        ];
        all.extend_from_slice(env);
        let mut command = parley_command_of(bin, &["run"], &install.fake, &install.db());
        for (key, value) in &all {
            command.env(key, value);
        }
        if let Some(cwd) = cwd {
            command.current_dir(cwd);
        }
        let child = command.spawn().expect("start parley run");
        Self {
            tg,
            child,
            listen,
            port,
        }
    }

    fn listen_env(&self) -> [(&str, &str); 1] {
        [("PARLEY__HTTP__LISTEN", self.listen.as_str())]
    }

    async fn status(&self) -> Option<u16> {
        let url = format!("http://127.0.0.1:{}/healthz", self.port);
        let response = reqwest::get(url).await.ok()?;
        Some(response.status().as_u16())
    }

    async fn get(&self, path: &str) -> String {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let response = reqwest::get(url).await.expect("answers");
        response.text().await.expect("body")
    }

    /// Waits (up to 30 s) until /healthz answers 200.
    async fn wait_healthy(&self) {
        for _ in 0..300 {
            if self.status().await == Some(200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("/healthz never answered 200");
    }

    /// SIGTERM, then waits for the exit.
    async fn terminate(self) -> Output {
        let pid = self.child.id().expect("running").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        assert!(sent.success());
        finish(self.child, "").await
    }

    /// SIGKILL, then waits for the exit.
    async fn kill(mut self) {
        self.child.start_kill().expect("kill -9");
        self.child.wait().await.expect("killed");
    }
}
