//! Turns an instance answers without the inbox (a Discord slash command, whose token must not
//! be stored; a message answered here because the database failed): counted as running in
//! their scope, so a graceful stop keeps the scope's lease until they end.

use async_trait::async_trait;

use super::{Instance, Running, Scope, lock};
use crate::engine::ports::Receipt;

impl Instance {
    /// Counts a turn answered here as running in `scope` until the returned receipt is
    /// dropped (the dispatcher drops it when the turn ends, or when it turns the message away).
    pub fn local_turn(&self, scope: &Scope) -> Box<dyn Receipt> {
        let running = Running::count(&self.shared, &mut lock(&self.shared.local), scope);
        Box::new(LocalTurn { _running: running })
    }
}

/// One turn answered here, from its queueing to its end.
struct LocalTurn {
    _running: Running,
}

#[async_trait]
impl Receipt for LocalTurn {
    /// Nothing was kept in the database: nothing to note.
    async fn started(&self) {}
}
