//! The `Receipt` port: how a queued message tells where it was kept (the shared inbox, when
//! several instances coordinate) that its turn started.

use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;

/// Travels with a queued message from where it was kept until its turn ends.
///
/// Contract: `started` is called once, when the message's turn starts (or when it is answered
/// "busy" instead); after that the message must not be handed out again. A prompt's turn starts
/// once its user message and reply row are stored ([`Started`]): a process that dies before
/// leaves the message waiting, one that dies after leaves a streaming reply to be marked
/// interrupted, never neither. A receipt dropped without `started` leaves the message where it
/// was kept, for whoever takes its chat next. Dropping it says the turn is over.
#[async_trait]
pub trait Receipt: Send + Sync {
    /// The message's turn starts now.
    async fn started(&self);
}

/// Tells a message's receipt, once, that its turn started: the turn says so as soon as a death
/// would leave something to recover (a prompt's reply row is stored; a command at once), and
/// whoever ran the turn says so after it, if the turn did not (it ended early).
pub struct Started<'a> {
    receipt: Option<&'a dyn Receipt>,
    told: AtomicBool,
}

impl<'a> Started<'a> {
    /// For a message kept where `receipt` says (`None`: kept nowhere).
    pub fn new(receipt: Option<&'a dyn Receipt>) -> Self {
        Self {
            receipt,
            told: AtomicBool::new(false),
        }
    }

    /// The turn has started: tells the receipt, the first time only.
    pub async fn now(&self) {
        if !self.told.swap(true, Ordering::Relaxed)
            && let Some(receipt) = self.receipt
        {
            receipt.started().await;
        }
    }
}
