//! `parley check --online`: one line per check, OK or the reason, never a secret.

use super::Install;

const TELEGRAM: (&str, &str) = ("PARLEY__TELEGRAM__TOKEN", "123456:telegram-secret");

#[tokio::test]
async fn check_online_asks_the_api_for_one_token_and_lists_the_platforms() {
    let install = Install::new().await;
    let run = install.run(&["check", "--online"], "", &[TELEGRAM]).await;
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("model API online: OK"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("telegram online: not checked (adapter not built)"),
        "{}",
        run.stdout
    );
    let requests = install.fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].body["max_tokens"], 1);
    assert_eq!(requests[0].body["stream"], false);
}

#[tokio::test]
async fn check_online_names_a_refused_key_without_printing_it() {
    let install = Install::new().await;
    let env = [TELEGRAM, ("PARLEY__LLM__API_KEY", "wrong-key-456")];
    let run = install.run(&["check", "--online"], "", &env).await;
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("model API online: FAILED: the API key was refused"),
        "{}",
        run.stdout
    );
    for secret in ["wrong-key-456", "telegram-secret"] {
        assert!(!run.stdout.contains(secret) && !run.stderr.contains(secret));
    }
}

#[tokio::test]
async fn check_does_not_touch_replies_a_running_bot_is_streaming() {
    let install = Install::new().await;
    let run = install.run(&["check"], "", &[TELEGRAM]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(!run.stderr.contains("marked replies"), "{}", run.stderr);
}
