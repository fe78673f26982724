//! The binary run the way the Docker image runs it: configuration from the environment only,
//! a read-only working directory, the database in a separate data directory.

use std::os::unix::fs::PermissionsExt;

use super::{Bot, Install};
use crate::fake_discord::{self, FakeDiscord};

/// A read-only working directory, like `/` in the image for the `parley` user.
fn read_only_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let mode = std::fs::Permissions::from_mode(0o555);
    std::fs::set_permissions(dir.path(), mode).expect("chmod 555");
    dir
}

#[tokio::test]
async fn the_image_configuration_starts_answers_healthz_and_stops_cleanly_on_sigterm() {
    let install = Install::new().await;
    let cwd = read_only_dir();
    let bot = Bot::start(
        &install,
        Some(cwd.path()),
        &[("PARLEY__LOG__FORMAT", "json")],
    )
    .await;
    bot.wait_healthy().await;
    let body = bot.get("/healthz").await;
    assert!(body.contains(r#""telegram":{"status":"ok"}"#), "{body}");
    assert!(body.contains(r#""database":{"status":"ok"}"#), "{body}");
    let check = install.run(&["healthcheck"], "", &bot.listen_env()).await;
    assert_eq!(check.code, Some(0), "{}", check.stderr);
    let run = bot.terminate().await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr.contains(r#""message":"stopped""#),
        "JSON logs: {}",
        run.stderr
    );
    assert!(
        install.db().exists(),
        "the database is in the data directory"
    );
}

#[tokio::test]
async fn the_healthcheck_fails_when_nothing_listens() {
    let install = Install::new().await;
    let listen = format!("0.0.0.0:{}", super::free_port());
    let run = install
        .run(
            &["healthcheck"],
            "",
            &[("PARLEY__HTTP__LISTEN", listen.as_str())],
        )
        .await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("/healthz"), "{}", run.stderr);
}

#[tokio::test]
async fn healthz_counts_discord_once_its_shard_is_connected() {
    let install = Install::new().await;
    let discord = FakeDiscord::start().await;
    let port = super::free_port();
    let listen = format!("127.0.0.1:{port}");
    let proxy = discord.proxy_url();
    let env = [
        ("PARLEY__HTTP__LISTEN", listen.as_str()),
        ("PARLEY__DISCORD__TOKEN", fake_discord::FAKE_TOKEN),
        ("PARLEY__DISCORD__PROXY_URL", proxy.as_str()),
    ];
    let child = install.command(&["run"], &env).spawn().expect("start");
    let url = format!("http://{listen}/healthz");
    let mut body = String::new();
    for _ in 0..300 {
        if let Ok(response) = reqwest::get(&url).await {
            let ok = response.status().as_u16() == 200;
            body = response.text().await.unwrap_or_default();
            if ok {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(body.contains(r#""discord":{"status":"ok"}"#), "{body}");
    let pid = child.id().expect("running").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    assert!(sent.expect("kill -TERM").success());
    let run = super::finish(child, "").await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
}
