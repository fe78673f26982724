//! `parley run` as a subprocess with Telegram configured: it answers, and stops on SIGTERM.

use std::time::Duration;

use tokio::process::Child;

use crate::fake_llm::FakeLlm;
use crate::fake_telegram::{FAKE_TOKEN, FakeTelegram, User, private};
use crate::support::parley_command;

fn parley_run(tg: &FakeTelegram, llm: &FakeLlm, dir: &std::path::Path, token: &str) -> Child {
    parley_command(&["run"], llm, &dir.join("parley.db"))
        .env("PARLEY__TELEGRAM__TOKEN", token)
        .env("PARLEY__TELEGRAM__API_URL", tg.api_url())
        .env("PARLEY__TELEGRAM__EDIT_INTERVAL_MS", "50")
        .spawn()
        .expect("start parley run")
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
    let pid = child.id().expect("a running child").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    assert!(killed.unwrap().success());
    let (code, logs) = finish(child).await;
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
