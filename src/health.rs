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

#[derive(Debug, Clone)]
struct Component {
    last_success: Option<Instant>,
    last_error: Option<String>,
    /// The first failure since the last success.
    failing_since: Option<Instant>,
    /// How long failures may go on, without a success between, before the component counts
    /// as failing.
    grace: Duration,
}

impl Default for Component {
    fn default() -> Self {
        Self {
            last_success: None,
            last_error: None,
            failing_since: None,
            grace: FRESH,
        }
    }
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
        self.register_with_grace(name, FRESH)
    }

    /// Adds a component that counts as failing once its failures have gone on for longer than
    /// `grace` without a success between (a Telegram poll that keeps failing), besides when its
    /// last success is older than [`FRESH`].
    pub fn register_with_grace(&self, name: &str, grace: Duration) -> HealthHandle {
        self.lock().entry(name.to_string()).or_default().grace = grace;
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
        let why = self.last_error.as_deref().unwrap_or("no news");
        if let Some(since) = self.failing_since.filter(|_| self.last_success.is_some()) {
            let failing = now.duration_since(since);
            if failing > self.grace {
                let secs = failing.as_secs();
                return ComponentReport::failing(format!("failing for {secs} s ({why})"));
            }
        }
        match self.last_success {
            Some(at) if now.duration_since(at) <= FRESH => ComponentReport::ok(),
            Some(at) => {
                let ago = now.duration_since(at).as_secs();
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
    /// Registers another component `name` in the same registry (a Discord shard beside
    /// `discord`), unhealthy until its first beat.
    pub fn sibling(&self, name: &str) -> HealthHandle {
        self.health.register(name)
    }

    /// A success: a poll answered, a heartbeat acknowledged, a shard connected.
    pub fn beat(&self) {
        self.health.update(&self.name, |c| {
            c.last_success = Some(Instant::now());
            c.last_error = None;
            c.failing_since = None;
        });
    }

    /// A failure; the component turns unhealthy once its failures have gone on for longer than
    /// its grace, or its last success is older than [`FRESH`].
    pub fn fail(&self, reason: impl Into<String>) {
        let reason = reason.into();
        self.health.update(&self.name, |c| {
            c.last_error = Some(reason);
            c.failing_since.get_or_insert_with(Instant::now);
        });
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
    async fn failures_longer_than_the_grace_turn_a_component_unhealthy_until_the_next_beat() {
        let health = Health::new();
        let telegram = health.register_with_grace("telegram", Duration::from_secs(2));
        telegram.beat();
        telegram.fail("getUpdates: 502 Bad Gateway");
        tokio::time::advance(Duration::from_secs(1)).await;
        telegram.fail("getUpdates: 502 Bad Gateway");
        assert!(health.report()["telegram"].is_ok(), "within the grace");
        tokio::time::advance(Duration::from_millis(1500)).await;
        let report = &health.report()["telegram"];
        assert_eq!(
            report.reason.as_deref(),
            Some("failing for 2 s (getUpdates: 502 Bad Gateway)")
        );
        telegram.beat();
        assert!(
            health.report()["telegram"].is_ok(),
            "one success heals at once"
        );
        telegram.fail("one blip");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(health.report()["telegram"].is_ok(), "a new streak starts");
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
