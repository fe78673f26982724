//! `[instance]` and `telegram.failover_secs`: whether this process coordinates with other
//! instances on its database, under which id, and how soon a silent one counts as dead.

use std::time::Duration;

use super::check;
use crate::instances::{InstanceConfig, InstanceId};
use crate::settings::{Settings, SettingsError};

/// The longest `instance.id`.
const MAX_ID: usize = 64;

/// The instance's configuration when `instance.coordinate` is on or the store is PostgreSQL;
/// `None` otherwise.
pub(super) fn parse(settings: &Settings) -> Result<Option<InstanceConfig>, SettingsError> {
    let secs = settings.telegram.failover_secs;
    check((1..=600).contains(&secs), "telegram.failover_secs", || {
        "must be 1 to 600 seconds".into()
    })?;
    let id = settings.instance.id.trim();
    let printable = id.chars().all(|c| c.is_ascii_graphic());
    check(id.len() <= MAX_ID && printable, "instance.id", || {
        format!(
            "must be at most {MAX_ID} printable ASCII characters without spaces, or \"\" for hostname-pid-random"
        )
    })?;
    // Several instances are what a PostgreSQL store is for: it always coordinates.
    let postgres = settings.store.database_url.is_postgres();
    if !settings.instance.coordinate && !postgres {
        return Ok(None);
    }
    let id = match id {
        "" => default_id(),
        id => id.to_string(),
    };
    Ok(Some(InstanceConfig {
        id: InstanceId::new(id),
        failover: Duration::from_secs(secs),
    }))
}

/// `hostname-pid-random`: unique per process, readable in logs and the `instances` table.
fn default_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "parley".into());
    let host: String = host
        .chars()
        .filter(char::is_ascii_graphic)
        .take(40)
        .collect();
    format!("{host}-{}-{:04x}", std::process::id(), fastrand::u16(..))
}
