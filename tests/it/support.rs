//! What the tests that run the `parley` binary share: the command, configured only through the
//! environment against the fake completion server and a database file.

use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

use crate::fake_llm::{FAKE_KEY, FakeLlm};

/// `parley ARGS` with a clean environment: the fake's key and URL, the database at `db`, no
/// "thinking…" placeholder, every stream piped, killed when dropped.
pub fn parley_command(args: &[&str], llm: &FakeLlm, db: &Path) -> Command {
    parley_command_of(env!("CARGO_BIN_EXE_parley"), args, llm, db)
}

/// Like [`parley_command`], with the binary at `bin`.
pub fn parley_command_of(bin: &str, args: &[&str], llm: &FakeLlm, db: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env_clear()
        .env("PARLEY__LLM__API_KEY", FAKE_KEY)
        .env("PARLEY__LLM__BASE_URL", llm.base_url())
        .env("PARLEY__STORE__DATABASE_URL", db_url(db))
        .env("PARLEY__REPLY__THINKING_AFTER_SECS", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// The `sqlite://` URL of a database file.
pub fn db_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}
