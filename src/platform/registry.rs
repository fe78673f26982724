//! The running platforms by kind: adapters register theirs once up, so the app can reach them
//! (marking replies a crash interrupted).

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::engine::event::PlatformKind;
use crate::engine::ports::Platform;

type Map = HashMap<PlatformKind, Arc<dyn Platform>>;

/// The registered platforms; cheap to clone.
#[derive(Clone)]
pub struct Platforms {
    map: Arc<watch::Sender<Map>>,
}

impl Default for Platforms {
    fn default() -> Self {
        Self {
            map: Arc::new(watch::Sender::new(Map::new())),
        }
    }
}

impl Platforms {
    /// No platform yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a running platform (replacing an earlier one of the same kind).
    pub fn register(&self, platform: Arc<dyn Platform>) {
        self.map.send_modify(|map| {
            map.insert(platform.kind(), platform);
        });
    }

    /// The platform of `kind`, if registered.
    pub fn get(&self, kind: PlatformKind) -> Option<Arc<dyn Platform>> {
        self.map.borrow().get(&kind).cloned()
    }

    /// Waits until a platform of `kind` is registered; `None` when `stop` comes first.
    pub async fn wait_for(
        &self,
        kind: PlatformKind,
        stop: &CancellationToken,
    ) -> Option<Arc<dyn Platform>> {
        let mut changes = self.map.subscribe();
        tokio::select! {
            _ = stop.cancelled() => None,
            found = changes.wait_for(|map| map.contains_key(&kind)) => {
                found.ok().and_then(|map| map.get(&kind).cloned())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::memory::MemoryPlatform;

    fn platform() -> Arc<dyn Platform> {
        Arc::new(MemoryPlatform::unpaced(10))
    }

    #[tokio::test]
    async fn waiting_ends_when_the_platform_registers() {
        let platforms = Platforms::new();
        let waiting = platforms.clone();
        let stop = CancellationToken::new();
        let found = tokio::spawn(async move {
            waiting
                .wait_for(PlatformKind::Telegram, &stop)
                .await
                .is_some()
        });
        platforms.register(platform());
        assert!(found.await.expect("joined"));
        assert!(platforms.get(PlatformKind::Discord).is_none());
    }

    #[tokio::test]
    async fn waiting_ends_with_none_on_stop() {
        let stop = CancellationToken::new();
        stop.cancel();
        let found = Platforms::new()
            .wait_for(PlatformKind::Discord, &stop)
            .await;
        assert!(found.is_none());
    }
}
