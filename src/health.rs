//! Health: the components `/healthz` reports on (each platform adapter registers one) and when
//! each last succeeded. A component is healthy when its last success is recent.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

/// How recent a component's last success must be for it to count as healthy.
pub const FRESH: Duration = Duration::from_secs(60);

/// The registry of components; cheap to clone.
#[derive(Clone, Default)]
pub struct Health {
    components: Arc<Mutex<BTreeMap<String, Component>>>,
}

#[derive(Debug, Clone, Default)]
struct Component {
    last_success: Option<Instant>,
    last_error: Option<String>,
}

/// What an adapter holds to report on its component; cheap to clone.
#[derive(Clone)]
pub struct HealthHandle {
    name: String,
    health: Health,
}

/// One component's state as `/healthz` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentReport {
    /// `ok` or `failing`.
    pub status: &'static str,
    /// Why it is failing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl ComponentReport {
    /// A healthy component.
    pub fn ok() -> Self {
        Self {
            status: "ok",
            reason: None,
        }
    }

    /// A failing component and why.
    pub fn failing(reason: impl Into<String>) -> Self {
        Self {
            status: "failing",
            reason: Some(reason.into()),
        }
    }

    /// True when the component is healthy.
    pub fn is_ok(&self) -> bool {
        self.reason.is_none()
    }
}

impl Health {
    /// A registry without components.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a component (`telegram`, `discord`), unhealthy until its first success.
    pub fn register(&self, name: &str) -> HealthHandle {
        self.lock().entry(name.to_string()).or_default();
        HealthHandle {
            name: name.to_string(),
            health: self.clone(),
        }
    }

    /// Every registered component's state, by name.
    pub fn report(&self) -> BTreeMap<String, ComponentReport> {
        let now = Instant::now();
        self.lock()
            .iter()
            .map(|(name, component)| (name.clone(), component.report(now)))
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Component>> {
        // A panic while holding the lock cannot leave the map half-written: recover it.
        self.components
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn update(&self, name: &str, change: impl FnOnce(&mut Component)) {
        change(self.lock().entry(name.to_string()).or_default());
    }
}

impl Component {
    fn report(&self, now: Instant) -> ComponentReport {
        match self.last_success {
            Some(at) if now.duration_since(at) <= FRESH => ComponentReport::ok(),
            Some(at) => {
                let ago = now.duration_since(at).as_secs();
                let why = self.last_error.as_deref().unwrap_or("no news");
                ComponentReport::failing(format!("last success {ago} s ago ({why})"))
            }
            None => ComponentReport::failing(
                self.last_error
                    .clone()
                    .unwrap_or_else(|| "not connected yet".into()),
            ),
        }
    }
}

impl HealthHandle {
    /// A success: a poll answered, a heartbeat acknowledged, a shard connected.
    pub fn beat(&self) {
        self.health.update(&self.name, |c| {
            c.last_success = Some(Instant::now());
            c.last_error = None;
        });
    }

    /// A failure; the component turns unhealthy once its last success is older than [`FRESH`].
    pub fn fail(&self, reason: impl Into<String>) {
        let reason = reason.into();
        self.health
            .update(&self.name, |c| c.last_error = Some(reason));
    }

    /// Unhealthy at once (a disconnected shard, a refused token), until the next beat.
    pub fn down(&self, reason: impl Into<String>) {
        let reason = reason.into();
        self.health.update(&self.name, |c| {
            c.last_success = None;
            c.last_error = Some(reason);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_component_is_unhealthy_until_its_first_beat() {
        let health = Health::new();
        let telegram = health.register("telegram");
        assert_eq!(
            health.report()["telegram"],
            ComponentReport::failing("not connected yet")
        );
        telegram.beat();
        assert!(health.report()["telegram"].is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_component_turns_unhealthy_a_minute_after_its_last_success() {
        let health = Health::new();
        let telegram = health.register("telegram");
        telegram.beat();
        telegram.fail("getUpdates: connection refused");
        assert!(
            health.report()["telegram"].is_ok(),
            "one failure is not news"
        );
        tokio::time::advance(FRESH + Duration::from_secs(1)).await;
        let report = &health.report()["telegram"];
        assert!(!report.is_ok());
        let reason = report.reason.as_deref().unwrap_or("");
        assert!(reason.contains("connection refused"), "{reason}");
        telegram.beat();
        assert!(health.report()["telegram"].is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn down_is_unhealthy_at_once() {
        let health = Health::new();
        let discord = health.register("discord");
        discord.beat();
        discord.down("shard disconnected");
        assert_eq!(
            health.report()["discord"],
            ComponentReport::failing("shard disconnected")
        );
    }
}
