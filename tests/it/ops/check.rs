//! `parley check --online`: one line per check, OK or the reason, never a secret.

use super::Install;
use crate::fake_discord::{self, FakeDiscord};
use crate::fake_telegram::{self, FakeTelegram};

#[tokio::test]
async fn check_online_asks_the_api_and_each_platform_once() {
    let install = Install::new().await;
    let (tg, discord) = (FakeTelegram::start().await, FakeDiscord::start().await);
    let env = [
        (
            "PARLEY__TELEGRAM__TOKEN",
            fake_telegram::FAKE_TOKEN.to_string(),
        ),
        ("PARLEY__TELEGRAM__API_URL", tg.api_url()),
        (
            "PARLEY__DISCORD__TOKEN",
            fake_discord::FAKE_TOKEN.to_string(),
        ),
        ("PARLEY__DISCORD__PROXY_URL", discord.proxy_url()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = install.run(&["check", "--online"], "", &env).await;
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines.contains(&"telegram online: OK (getMe: @parley_bot)"),
        "{lines:?}"
    );
    let discord_line = format!("discord online: OK (current user {})", fake_discord::BOT_ID);
    assert!(lines.contains(&discord_line.as_str()), "{lines:?}");
    assert!(
        run.stdout.contains("model API online: OK"),
        "{}",
        run.stdout
    );
    let requests = install.fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].body["max_tokens"], 1);
    assert_eq!(requests[0].body["stream"], false);
    for secret in [fake_telegram::FAKE_TOKEN, fake_discord::FAKE_TOKEN] {
        assert!(!run.stdout.contains(secret) && !run.stderr.contains(secret));
    }
}

#[tokio::test]
async fn check_online_names_refused_keys_without_printing_them() {
    let install = Install::new().await;
    let tg = FakeTelegram::start().await;
    let api_url = tg.api_url();
    let env = [
        ("PARLEY__TELEGRAM__TOKEN", "999:wrong-telegram-secret"),
        ("PARLEY__TELEGRAM__API_URL", api_url.as_str()),
        ("PARLEY__LLM__API_KEY", "wrong-key-456"),
    ];
    let run = install.run(&["check", "--online"], "", &env).await;
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("model API online: FAILED: the API key was refused"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("telegram online: FAILED"),
        "{}",
        run.stdout
    );
    for secret in ["wrong-key-456", "wrong-telegram-secret"] {
        assert!(!run.stdout.contains(secret) && !run.stderr.contains(secret));
    }
}

#[tokio::test]
async fn check_does_not_touch_replies_a_running_bot_is_streaming() {
    let install = Install::new().await;
    let env = [("PARLEY__TELEGRAM__TOKEN", "123:not-used-offline")];
    let run = install.run(&["check"], "", &env).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(!run.stderr.contains("marked replies"), "{}", run.stderr);
}
