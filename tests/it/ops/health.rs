//! `/healthz` and `/metrics` served in-process over a real SQLite file.

use std::sync::Arc;

use parley::health::Health;
use parley::http::{self, HttpState};
use parley::store::SqliteStore;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

struct Server {
    base: String,
    health: Health,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("parley.db").display());
        let store = Arc::new(SqliteStore::open(&url).await.expect("opens"));
        let health = Health::new();
        let recorder = parley::metrics::recorder().expect("recorder");
        let state = HttpState {
            health: health.clone(),
            store,
            metrics: recorder.handle(),
        };
        let loopback = "127.0.0.1:0".parse().expect("an address");
        let listener = http::bind(loopback).await.expect("binds");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let stop = CancellationToken::new();
        tokio::spawn(http::serve(listener, state, stop.clone()));
        Self {
            base,
            health,
            stop,
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
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
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
}

#[tokio::test]
async fn healthz_names_a_platform_that_has_not_connected_with_503() {
    let server = Server::start().await;
    let telegram = server.health.register("telegram");
    let (status, body) = server.get("/healthz").await;
    assert_eq!(status, 503, "{body}");
    let json: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(json["failing"], serde_json::json!(["telegram"]));
    assert_eq!(json["components"]["telegram"]["status"], "failing");
    telegram.beat();
    let (status, body) = server.get("/healthz").await;
    assert_eq!(status, 200, "{body}");
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
}
