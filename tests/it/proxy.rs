//! A tiny round-robin HTTP reverse proxy, as a load balancer in front of several instances of the
//! bot: each request goes to the next backend in turn, with its method, path, headers and body;
//! the backend's status, headers and body come back. A backend that does not answer gives 502,
//! as nginx does. Backends can be added after the proxy starts (its address goes into the bot's
//! settings before the bot's own port is known).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::fake_net::{self, IDLE};

/// A running proxy; stops when dropped.
pub struct RoundRobin {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

struct Shared {
    backends: Mutex<Vec<SocketAddr>>,
    next: AtomicUsize,
    client: reqwest::Client,
    /// The backend each request went to, in order.
    routed: Mutex<Vec<SocketAddr>>,
    /// Test knob: the next this-many answers are held this long before they go back.
    slow: Mutex<(usize, std::time::Duration)>,
}

impl RoundRobin {
    /// Starts a proxy with no backend yet (every request gets 502 until one is added).
    pub async fn start() -> Self {
        let shared = Arc::new(Shared {
            backends: Mutex::new(Vec::new()),
            next: AtomicUsize::new(0),
            client: reqwest::Client::new(),
            routed: Mutex::new(Vec::new()),
            slow: Mutex::new((0, std::time::Duration::ZERO)),
        });
        let app = Router::new().fallback(forward).with_state(shared.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(fake_net::serve(listener, app, IDLE));
        Self { addr, shared, task }
    }

    /// `http://ADDR` of the proxy.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds a backend to the rotation.
    pub fn add(&self, backend: SocketAddr) {
        self.shared.backends.lock().unwrap().push(backend);
    }

    /// Takes a backend out of the rotation.
    pub fn remove(&self, backend: SocketAddr) {
        self.shared
            .backends
            .lock()
            .unwrap()
            .retain(|b| *b != backend);
    }

    /// Holds the backends' next `count` answers for `delay` before passing them on (a slow
    /// load balancer or network): the backend has handled the request, the client waits.
    pub fn slow_answers(&self, count: usize, delay: std::time::Duration) {
        *self.shared.slow.lock().unwrap() = (count, delay);
    }

    /// The backend each request was sent to, in order.
    pub fn routed(&self) -> Vec<SocketAddr> {
        self.shared.routed.lock().unwrap().clone()
    }
}

impl Drop for RoundRobin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Headers that belong to one connection, not to the request (RFC 9110, 7.6.1).
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "upgrade"
            | "te"
            | "trailer"
            | "host"
            | "content-length"
    )
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let backend = {
        let backends = shared.backends.lock().unwrap();
        if backends.is_empty() {
            return StatusCode::BAD_GATEWAY.into_response();
        }
        backends[shared.next.fetch_add(1, Ordering::SeqCst) % backends.len()]
    };
    shared.routed.lock().unwrap().push(backend);
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 16 << 20).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut out = shared
        .client
        .request(parts.method, format!("http://{backend}{path}"))
        .body(body);
    for (name, value) in parts.headers.iter().filter(|(n, _)| !hop_by_hop(n)) {
        out = out.header(name, value);
    }
    let Ok(answer) = out.send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = answer.status();
    let headers = answer.headers().clone();
    let body: Bytes = answer.bytes().await.unwrap_or_default();
    let delay = {
        let mut slow = shared.slow.lock().unwrap();
        let delay = (slow.0 > 0).then_some(slow.1);
        slow.0 = slow.0.saturating_sub(1);
        delay
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    for (name, value) in headers.iter().filter(|(n, _)| !hop_by_hop(n)) {
        response.headers_mut().insert(name, value.clone());
    }
    response
}
