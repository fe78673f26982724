//! `/healthz` and `/metrics` of the bot started in-process, over a real SQLite file.

use std::time::Duration;

use parley::app::App;
use serde_json::Value;

use crate::fake_llm::FakeLlm;
use crate::support::{app_config, app_env};

/// The bot with no platform: the store, the engine and the listener, on a port the system picks.
struct Server {
    base: String,
    app: App,
    _llm: FakeLlm,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let llm = FakeLlm::start().await;
        let mut env = app_env(&llm, &dir.path().join("parley.db"));
        // `parley run` wants a platform; this one is taken out again before the start.
        env.insert("PARLEY__TELEGRAM__TOKEN".into(), "1:never-used".into());
        let mut config = app_config(&env);
        config.telegram = None;
        let app = App::start(config).await.expect("the bot starts");
        let address = app.http_address().expect("the listener is up");
        Self {
            base: format!("http://{address}"),
            app,
            _llm: llm,
            _dir: dir,
        }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("{}{path}", self.base))
            .await
            .expect("answers");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    /// Stops the bot as `parley run` does.
    async fn stop(self) {
        self.app.shutdown(Duration::from_secs(1)).await;
    }
}

#[tokio::test]
async fn healthz_is_ok_when_the_database_answers_and_no_platform_is_registered() {
    let server = Server::start().await;
    let (status, body) = server.get("/healthz").await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["components"]["database"]["status"], "ok");
    server.stop().await;
}

#[tokio::test]
async fn healthz_names_a_platform_that_has_not_connected_with_503() {
    let server = Server::start().await;
    let telegram = server.app.health().register("telegram");
    let (status, body) = server.get("/healthz").await;
    assert_eq!(status, 503, "{body}");
    let json: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(json["failing"], serde_json::json!(["telegram"]));
    assert_eq!(json["components"]["telegram"]["status"], "failing");
    telegram.beat();
    let (status, body) = server.get("/healthz").await;
    assert_eq!(status, 200, "{body}");
    server.stop().await;
}

#[tokio::test]
async fn metrics_are_served_as_prometheus_text() {
    let server = Server::start().await;
    let response = reqwest::get(format!("{}/metrics", server.base))
        .await
        .expect("answers");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"].to_str().expect("ascii");
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    server.stop().await;
}
