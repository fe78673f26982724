//! `parley run` as a subprocess with Telegram configured: it answers, and stops on SIGTERM.

use std::time::Duration;

use tokio::process::Child;

use crate::fake_llm::FakeLlm;
use crate::fake_telegram::{FAKE_TOKEN, FakeTelegram, User, private};
use crate::support::parley_command;

fn parley_run(tg: &FakeTelegram, llm: &FakeLlm, dir: &std::path::Path, token: &str) -> Child {
    parley_run_with(tg, llm, dir, token, "info")
}

/// `parley run` logging at `level`.
fn parley_run_with(
    tg: &FakeTelegram,
    llm: &FakeLlm,
    dir: &std::path::Path,
    token: &str,
    level: &str,
) -> Child {
    parley_command(&["run"], llm, &dir.join("parley.db"))
        .env("PARLEY__TELEGRAM__TOKEN", token)
        .env("PARLEY__TELEGRAM__API_URL", tg.api_url())
        .env("PARLEY__TELEGRAM__EDIT_INTERVAL_MS", "50")
        .env("RUST_LOG", level)
        .spawn()
        .expect("start parley run")
}

/// SIGTERM, then what the exit and the logs were.
async fn terminate(child: Child) -> (Option<i32>, String) {
    let pid = child.id().expect("a running child").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    assert!(killed.unwrap().success());
    finish(child).await
}

async fn finish(child: Child) -> (Option<i32>, String) {
    let output = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("parley run exits")
        .unwrap();
    let logs = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code(), logs)
}

#[tokio::test]
async fn parley_run_answers_on_telegram_and_stops_on_sigterm() {
    let (tg, llm) = (FakeTelegram::start().await, FakeLlm::start().await);
    let dir = tempfile::tempdir().unwrap();
    let child = parley_run(&tg, &llm, dir.path(), FAKE_TOKEN);
    tg.wait_for(20, "the first poll", |tg| {
        !tg.calls_of("getUpdates").is_empty()
    })
    .await;
    let alice = User::new(901, "Alice");
    tg.user_writes(&private(&alice), &alice, "hello from run");
    tg.wait_for(20, "the answer", |tg| {
        tg.messages(901)
            .first()
            .is_some_and(|m| m.text == "echo: hello from run")
    })
    .await;
    let (code, logs) = terminate(child).await;
    assert_eq!(code, Some(0), "{logs}");
    assert!(logs.contains("telegram polling stopped"), "{logs}");
    assert!(
        !logs.contains("fake-secret-token"),
        "the token leaks: {logs}"
    );
}

#[tokio::test]
async fn parley_run_with_a_bad_token_exits_naming_the_setting() {
    let (tg, llm) = (FakeTelegram::start().await, FakeLlm::start().await);
    let dir = tempfile::tempdir().unwrap();
    let child = parley_run(&tg, &llm, dir.path(), "42:not-the-token");
    let (code, logs) = finish(child).await;
    assert_ne!(code, Some(0));
    assert!(logs.contains("telegram.token"), "{logs}");
    assert!(!logs.contains("not-the-token"), "the token leaks: {logs}");
}

/// True when `haystack` holds `needle` anywhere.
fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn the_bot_token_in_file_urls_reaches_no_request_log_line_or_row() {
    use crate::fake_telegram::Media;
    let (tg, llm) = (FakeTelegram::start().await, FakeLlm::start().await);
    let dir = tempfile::tempdir().unwrap();
    let child = parley_run_with(&tg, &llm, dir.path(), FAKE_TOKEN, "trace");
    let alice = User::new(902, "Alice");
    let chat = private(&alice);
    let photo = Media::Photo(crate::parts::jpeg(31, 2000));
    tg.user_sends(&chat, &alice, &photo, "what is this?", None);
    tg.wait_for(20, "the answer", |tg| {
        tg.messages(902)
            .iter()
            .any(|m| m.text == "echo: what is this?")
    })
    .await;
    tg.lose_files();
    let notes = Media::document("notes.txt", "text/plain", b"secret plans");
    tg.user_sends(&chat, &alice, &notes, "and this?", None);
    let line = "I could not download notes.txt — please send it again.";
    tg.wait_for(20, "the failed download's line", |tg| {
        tg.messages(902).iter().any(|m| m.text == line)
    })
    .await;
    tg.wait_for(20, "the second answer", |tg| {
        tg.messages(902).iter().any(|m| m.text == "echo: and this?")
    })
    .await;
    let (code, logs) = terminate(child).await;
    assert_eq!(code, Some(0), "{logs}");
    assert!(logs.contains("could not download an attachment"), "{logs}");
    assert!(logs.contains("TRACE"), "trace logging is on");
    let requests = llm.requests();
    assert_eq!(requests.len(), 2);
    let secret = FAKE_TOKEN.split(':').nth(1).unwrap();
    for request in &requests {
        assert!(!holds(&request.raw, secret), "the token reached the model");
    }
    assert!(!logs.contains(secret), "the token is in the log");
    let mut stored = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        stored.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    assert!(
        holds(&stored, "what is this?"),
        "the rows are in the files read"
    );
    assert!(!holds(&stored, secret), "the token is in the database");
}
