//! The HTTP listener on `http.listen`: `GET /healthz` (JSON, 200 or 503 naming what fails),
//! `GET /metrics` (Prometheus text) and, in Telegram's webhook mode, `POST /telegram/webhook`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::health::{ComponentReport, Health};
use crate::platform::telegram::{SECRET_HEADER, WEBHOOK_PATH, WebhookSlot};
use crate::store::Database;

/// How long `/healthz` waits for the database before calling it failing.
const PING_TIMEOUT: Duration = Duration::from_secs(3);

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The address is taken or not allowed.
    #[error("http.listen: cannot listen on {address}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The system's reason.
        #[source]
        source: std::io::Error,
    },
}

/// What the handlers read.
#[derive(Clone)]
pub struct HttpState {
    /// The platform components.
    pub health: Health,
    /// Pinged on every `/healthz`.
    pub database: Database,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Takes Telegram's webhook requests, once Telegram runs in webhook mode.
    pub telegram_webhook: WebhookSlot,
}

/// The `/healthz` body.
#[derive(Debug, Serialize)]
struct HealthBody {
    status: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    failing: Vec<String>,
    components: BTreeMap<String, ComponentReport>,
}

/// Binds `address` (`http.listen`).
pub async fn bind(address: SocketAddr) -> Result<TcpListener, HttpError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| HttpError::Bind { address, source })
}

/// The routes.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route(WEBHOOK_PATH, post(telegram_webhook))
        .with_state(state)
}

/// Serves until `stop` is cancelled, then finishes the requests in flight.
pub async fn serve(listener: TcpListener, state: HttpState, stop: CancellationToken) {
    let app = router(state);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    if let Err(error) = served {
        tracing::error!(%error, "the health and metrics listener failed");
    }
}

async fn healthz(State(state): State<HttpState>) -> Response {
    let mut components = state.health.report();
    let database = match tokio::time::timeout(PING_TIMEOUT, state.database.ping()).await {
        Ok(Ok(())) => ComponentReport::ok(),
        Ok(Err(error)) => ComponentReport::failing(error.to_string()),
        Err(_) => ComponentReport::failing("the database did not answer in time"),
    };
    components.insert("database".into(), database);
    let failing: Vec<String> = components
        .iter()
        .filter(|(_, c)| !c.is_ok())
        .map(|(name, _)| name.clone())
        .collect();
    let (code, status) = match failing.is_empty() {
        true => (StatusCode::OK, "ok"),
        false => (StatusCode::SERVICE_UNAVAILABLE, "failing"),
    };
    let body = HealthBody {
        status,
        failing,
        components,
    };
    (code, axum::Json(body)).into_response()
}

/// 404 unless Telegram runs in webhook mode; then the receiver decides.
async fn telegram_webhook(
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let Some(receiver) = state.telegram_webhook.get() else {
        return StatusCode::NOT_FOUND;
    };
    let secret = headers.get(SECRET_HEADER).map(|value| value.as_bytes());
    receiver.receive(secret, body).await
}

async fn metrics(State(state): State<HttpState>) -> Response {
    state.metrics.run_upkeep();
    let content_type = "text/plain; version=0.0.4; charset=utf-8";
    (
        [(header::CONTENT_TYPE, content_type)],
        state.metrics.render(),
    )
        .into_response()
}
