//! Starting and stopping the health and metrics listener beside the bot.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::http::{self, HttpState};

/// The running listener, or nothing when `http.listen` is empty.
pub(super) struct Listener {
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
    address: Option<SocketAddr>,
}

/// Binds `listen` (failing before any platform connects) and serves in the background.
pub(super) async fn start(
    listen: Option<SocketAddr>,
    state: HttpState,
) -> anyhow::Result<Listener> {
    let stop = CancellationToken::new();
    let Some(listen) = listen else {
        return Ok(Listener {
            stop,
            task: None,
            address: None,
        });
    };
    let listener = http::bind(listen)
        .await
        .context("starting /healthz and /metrics")?;
    let address = listener.local_addr().unwrap_or(listen);
    tracing::info!(%address, "serving /healthz and /metrics");
    let task = tokio::spawn(http::serve(listener, state, stop.clone()));
    Ok(Listener {
        stop,
        task: Some(task),
        address: Some(address),
    })
}

impl Listener {
    /// The address bound (with the port the system chose for port 0).
    pub(super) fn address(&self) -> Option<SocketAddr> {
        self.address
    }

    /// Stops serving and waits for the requests in flight.
    pub(super) async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Listener {
    /// An early return (a platform failed to start) stops the listener too.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
