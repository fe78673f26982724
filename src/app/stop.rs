//! Stopping in order: no new messages, replies get the grace period, then the rest are
//! interrupted and marked; and the signal `parley run` stops on.

use std::time::Duration;

use super::Runtime;

/// How long interrupted replies get to show their marker after the grace period.
pub(super) const MARKING_TIME: Duration = Duration::from_secs(1);

/// How [`App::shutdown`](super::App::shutdown) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Every reply finished within the grace period.
    Drained,
    /// Replies still streaming after the grace period were interrupted and marked so.
    Interrupted,
    /// Some interrupted replies could not be marked in time: they stay `streaming` in the
    /// database, and the next start marks them.
    Unmarked,
}

/// Stops taking messages, lets replies finish for `grace`, then interrupts the rest (the reply
/// engine marks them "⚠️ reply interrupted: the bot restarted" and they are stored partial).
pub(super) async fn drain(runtime: &Runtime, grace: Duration) -> Stopped {
    tracing::info!(
        grace_secs = grace.as_secs(),
        "stopping: no new messages; letting replies finish"
    );
    runtime.shutdown.intake.cancel();
    runtime.tracker.close();
    if tokio::time::timeout(grace, runtime.tracker.wait())
        .await
        .is_ok()
    {
        return Stopped::Drained;
    }
    tracing::warn!("interrupting replies still streaming");
    runtime.shutdown.abort.cancel();
    // Marking a reply interrupted is one more platform call; a platform that no longer
    // answers must not hold the process past Docker's stop timeout. A reply left behind
    // stays `streaming` in the database and is marked on the next start.
    if tokio::time::timeout(MARKING_TIME, runtime.tracker.wait())
        .await
        .is_ok()
    {
        return Stopped::Interrupted;
    }
    tracing::warn!("some replies could not be marked interrupted; the next start will");
    Stopped::Unmarked
}

/// After a failed start: stops whatever had started at once, without a grace period.
pub(super) async fn abandon(runtime: &Runtime) {
    runtime.shutdown.intake.cancel();
    runtime.shutdown.abort.cancel();
    runtime.tracker.close();
    let _ = tokio::time::timeout(MARKING_TIME, runtime.tracker.wait()).await;
}

/// Resolves on SIGINT or SIGTERM.
pub async fn stop_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
