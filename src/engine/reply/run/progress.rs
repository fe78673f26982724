//! What a reply reports besides its messages: the text so far, for crash recovery, and its
//! platform calls, for the metrics.

use std::time::Duration;

use tokio::time::Instant;

use super::Reply;
use crate::engine::meter::{CallKind, meter};
use crate::engine::pace::Urgency;
use crate::engine::ports::PlatformError;

impl Reply<'_> {
    /// Tells the observer the text so far.
    pub(super) async fn save_progress(&mut self) {
        if !self.text.is_empty() {
            self.ctx.observer.text_so_far(&self.text).await;
            self.saved_at = Instant::now();
        }
    }

    /// Tells the observer the text so far when `every` has passed since it was last told.
    pub(super) async fn save_progress_every(&mut self, every: Duration) {
        if self.saved_at.elapsed() >= every {
            self.save_progress().await;
        }
    }

    /// Shows the typing indicator, counted like any platform call; skipped (and counted as
    /// deferred) while other calls wait for the bot-wide budget.
    pub(super) async fn typing(&self) -> Result<(), PlatformError> {
        let (pacer, chat) = (self.ctx.pacer, self.ctx.chat);
        if pacer
            .try_acquire(chat, &self.limits, Urgency::Typing)
            .is_err()
        {
            meter().deferred(self.ctx.platform.kind(), CallKind::Typing);
            return Ok(());
        }
        let result = self.ctx.platform.typing(self.ctx.chat).await;
        self.count_call(CallKind::Typing, result.as_ref().err());
        result
    }

    /// Counts one platform call and, when the platform answered 429, the wait it asked for.
    pub(super) fn count_call(&self, kind: CallKind, error: Option<&PlatformError>) {
        let platform = self.ctx.platform.kind();
        match error {
            Some(PlatformError::RetryAfter(wait)) => {
                meter().platform_call(platform, kind);
                meter().rate_limited(platform, kind, *wait);
            }
            _ => meter().platform_call(platform, kind),
        }
    }
}
