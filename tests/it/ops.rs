//! Self-hosting: the health and metrics endpoint, `check --online`, secrets in trace logs, a
//! kill -9 in the middle of a reply, and the binary run the way the Docker image runs it.

mod check;
mod crash;
mod health;
mod image;
mod secrets;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::fake_llm::{FAKE_KEY, FakeLlm};

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
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_parley"));
        cmd.args(args)
            .env_clear()
            .env("PARLEY__LLM__API_KEY", FAKE_KEY)
            .env("PARLEY__LLM__BASE_URL", self.fake.base_url())
            .env("PARLEY__STORE__DATABASE_URL", db_url(&self.db()))
            .env("PARLEY__REPLY__THINKING_AFTER_SECS", "0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
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

fn db_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
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
