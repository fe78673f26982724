//! The binary run the way the Docker image runs it: configuration from the environment only,
//! a read-only working directory, the database in a separate data directory.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use super::{Install, finish, free_port};

/// A read-only working directory, like `/` in the image for the `parley` user.
fn read_only_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let mode = std::fs::Permissions::from_mode(0o555);
    std::fs::set_permissions(dir.path(), mode).expect("chmod 555");
    dir
}

async fn healthz(port: u16) -> Option<u16> {
    let url = format!("http://127.0.0.1:{port}/healthz");
    let response = reqwest::get(url).await.ok()?;
    Some(response.status().as_u16())
}

#[tokio::test]
#[ignore = "needs a platform adapter (issues 3 and 4): parley run refuses to start without one"]
async fn the_image_configuration_starts_answers_healthz_and_stops_cleanly_on_sigterm() {
    let install = Install::new().await;
    let cwd = read_only_dir();
    let port = free_port();
    let listen = format!("0.0.0.0:{port}");
    let env = [
        ("PARLEY__HTTP__LISTEN", listen.as_str()),
        ("PARLEY__LOG__FORMAT", "json"),
        ("PARLEY__TELEGRAM__TOKEN", "123:image-test"),
    ];
    let mut command = install.command(&["run"], &env);
    command.current_dir(cwd.path());
    let child = command.spawn().expect("start parley run");
    let mut status = None;
    for _ in 0..300 {
        status = healthz(port).await;
        if status == Some(200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, Some(200), "/healthz answers healthy");
    let check = install
        .run(
            &["healthcheck"],
            "",
            &[("PARLEY__HTTP__LISTEN", listen.as_str())],
        )
        .await;
    assert_eq!(check.code, Some(0), "{}", check.stderr);
    let pid = child.id().expect("running").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill -TERM");
    assert!(killed.success());
    let run = finish(child, "").await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr.contains("\"stopped\""),
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
    let listen = format!("0.0.0.0:{}", free_port());
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
