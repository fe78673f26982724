//! The `Receipt` port: how a queued message tells where it was kept (the shared inbox, when
//! several instances coordinate) that its turn started.

use async_trait::async_trait;

/// Travels with a queued message from where it was kept until its turn ends.
///
/// Contract: `started` is called once, when the message's turn starts (or when it is answered
/// "busy" instead); after that the message must not be handed out again. A receipt dropped
/// without `started` leaves the message where it was kept, for whoever takes its chat next.
/// Dropping it says the turn is over.
#[async_trait]
pub trait Receipt: Send + Sync {
    /// The message's turn starts now.
    async fn started(&self);
}
