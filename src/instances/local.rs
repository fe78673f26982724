//! Turns an instance answers without the inbox (a Discord slash command, whose token must not
//! be stored; a message answered here because the database failed): counted as running in
//! their scope, so a graceful stop keeps the scope's lease until they end.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Instance, Scope, Shared, lock};
use crate::engine::ports::Receipt;

impl Instance {
    /// Counts a turn answered here as running in `scope` until the returned receipt is
    /// dropped (the dispatcher drops it when the turn ends, or when it turns the message away).
    pub fn local_turn(&self, scope: &Scope) -> Box<dyn Receipt> {
        let mut local = lock(&self.shared.local);
        *local.running.entry(scope.clone()).or_default() += 1;
        Box::new(LocalTurn {
            shared: self.shared.clone(),
            scope: scope.clone(),
        })
    }
}

/// One turn answered here, from its queueing to its end.
struct LocalTurn {
    shared: Arc<Shared>,
    scope: Scope,
}

#[async_trait]
impl Receipt for LocalTurn {
    /// Nothing was kept in the database: nothing to note.
    async fn started(&self) {}
}

impl Drop for LocalTurn {
    fn drop(&mut self) {
        {
            let mut local = lock(&self.shared.local);
            if let Some(count) = local.running.get_mut(&self.scope) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    local.running.remove(&self.scope);
                }
            }
        }
        self.shared.ended.notify_waiters();
    }
}
