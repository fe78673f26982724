//! Secrets never reach the logs, even at trace level; spans carry the conversation.

use super::Install;

const TELEGRAM: &str = "777777:telegram-token-secret";
const DISCORD: &str = "discord-token-secret.XYZ";

#[tokio::test]
async fn no_secret_appears_in_a_chat_logged_at_trace_level() {
    let install = Install::new().await;
    let env = [
        ("RUST_LOG", "trace"),
        ("PARLEY__TELEGRAM__TOKEN", TELEGRAM),
        ("PARLEY__DISCORD__TOKEN", DISCORD),
    ];
    let run = install.run(&["chat"], "hello secret world\n", &env).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stdout, "echo: hello secret world\n");
    assert!(run.stderr.contains("TRACE"), "trace logging is on");
    for secret in [install.fake.key(), TELEGRAM, DISCORD] {
        assert!(!run.stdout.contains(secret), "{secret} in stdout");
        assert!(!run.stderr.contains(secret), "{secret} in the log");
    }
}

#[tokio::test]
async fn the_turn_span_names_the_platform_and_conversation_and_info_omits_the_text() {
    let install = Install::new().await;
    let info = install
        .run(&["chat"], "a private question\n", &[("RUST_LOG", "info")])
        .await;
    assert!(
        info.stderr.contains("platform=console") && info.stderr.contains("conversation="),
        "{}",
        info.stderr
    );
    assert!(
        !info.stderr.contains("a private question"),
        "{}",
        info.stderr
    );
    let debug = install
        .run(
            &["chat"],
            "a debug question\n",
            &[("RUST_LOG", "parley=debug")],
        )
        .await;
    assert!(
        debug.stderr.contains("a debug question"),
        "{}",
        debug.stderr
    );
}
