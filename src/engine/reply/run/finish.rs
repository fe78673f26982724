//! How a reply ends: the last message's final text, the interruption marker, the outcome.

use super::{End, Forbidden, Reply};
use crate::engine::controls::STOPPED;
use crate::engine::deliver::{Delivery, Policy};
use crate::engine::pace::Urgency;
use crate::engine::ports::{ModelError, ReplyStatus};
use crate::engine::reply::{INTERRUPTED, RESTARTED, ReplyOutcome, STOPPED_MARKER};
use crate::engine::split;

impl Reply<'_> {
    /// Lands the final state for how reading ended and builds the outcome.
    pub(super) async fn finish(&mut self, end: End) -> Result<ReplyOutcome, Forbidden> {
        let (status, error, reason) = match end {
            End::Complete if !self.text.is_empty() => (ReplyStatus::Complete, None, None),
            End::Complete => (
                ReplyStatus::Failed,
                None,
                Some("the model sent no text".into()),
            ),
            End::Failed(error) => {
                let reason = error.to_string();
                let status = self.interrupted_status();
                (status, Some(error), Some(reason))
            }
            End::Cancelled if self.stopped() => {
                (self.interrupted_status(), None, Some(STOPPED.to_string()))
            }
            End::Cancelled => (self.interrupted_status(), None, Some(RESTARTED.to_string())),
        };
        let notice = match (&error, status) {
            (_, ReplyStatus::Complete) => None,
            (Some(error), _) => Some((self.ctx.options.error_text)(error)),
            (None, _) if reason.as_deref() == Some(RESTARTED) => Some(RESTARTED.to_string()),
            (None, _) if reason.as_deref() == Some(STOPPED) => Some(STOPPED.to_string()),
            (None, _) => Some("The model sent an empty answer.".to_string()),
        };
        if reason.as_deref() == Some(RESTARTED) {
            // The process may exit before the marker lands and the row is finished (it has
            // about a second): the row then holds all the text shown, so the next start marks
            // the same text instead of an older one.
            self.save_progress().await;
        }
        self.land_end(notice).await?;
        self.delete_spares().await;
        Ok(self.outcome(status, reason, error))
    }

    fn interrupted_status(&self) -> ReplyStatus {
        if self.text.is_empty() {
            ReplyStatus::Failed
        } else {
            ReplyStatus::Partial
        }
    }

    /// Lands the last message: the remaining text, with `notice` as an interruption marker
    /// when text was shown, or `notice` alone when there was none.
    async fn land_end(&mut self, notice: Option<String>) -> Result<(), Forbidden> {
        let (max_len, unit) = (self.limits.max_len, self.limits.unit);
        let has_text = self.text.len() > self.at.offset;
        let last = has_text.then(|| split::tail(&self.text, &self.at).text);
        let marker = notice.map(|n| match self.text.is_empty() {
            _ if n == STOPPED => format!("{}{STOPPED_MARKER}", self.gap()),
            true if n == RESTARTED => format!("{INTERRUPTED}{n}"),
            true => n,
            false => format!("\n\n{INTERRUPTED}{n}"),
        });
        // A marker after a code block cut short must not render as code: close the block.
        let last = last.map(|last| match &marker {
            Some(_)
                if split::ends_in_code_block(&last)
                    && unit.len(&last) + unit.len(split::FENCE_CLOSE) <= max_len =>
            {
                last + split::FENCE_CLOSE
            }
            _ => last,
        });
        match (last, marker) {
            (Some(last), None) => self.land_last(last).await,
            (Some(last), Some(marker)) if unit.len(&last) + unit.len(&marker) <= max_len => {
                self.land_last(last + &marker).await
            }
            (Some(last), Some(marker)) => {
                self.land(last).await?;
                self.next_message(self.at.clone());
                self.land_last(split::truncate(marker.trim_start(), max_len, unit))
                    .await
            }
            (None, Some(marker)) => {
                self.closing = true;
                if self.text.is_empty() {
                    return self.land(split::truncate(&marker, max_len, unit)).await;
                }
                // Everything already landed in finished messages: the marker goes alone.
                self.land(split::truncate(marker.trim_start(), max_len, unit))
                    .await
            }
            (None, None) => Ok(()),
        }
    }

    /// Lands the reply's last message, with the finished reply's buttons.
    async fn land_last(&mut self, text: String) -> Result<(), Forbidden> {
        self.closing = true;
        self.land(text).await
    }

    /// Deletes the messages of an earlier answer this one did not need, each paced.
    async fn delete_spares(&mut self) {
        let (platform, pacer, chat) = (self.ctx.platform, self.ctx.pacer, self.ctx.chat);
        while let Some(message) = self.spare.pop_front() {
            let delivery = Delivery::new(pacer, chat, self.limits, Urgency::Final, Policy::NOTICE);
            if let Err(error) = delivery.run(|| platform.delete(chat, &message)).await {
                tracing::warn!(%error, chat = %chat, "could not delete a message the new answer did not need");
            }
        }
    }

    /// What separates a marker from the text before it.
    fn gap(&self) -> &'static str {
        if self.text.is_empty() { "" } else { "\n\n" }
    }

    fn outcome(
        &mut self,
        status: ReplyStatus,
        reason: Option<String>,
        error: Option<ModelError>,
    ) -> ReplyOutcome {
        let (status, reason) = match (status, self.trouble.take()) {
            (ReplyStatus::Complete, Some(trouble)) => (ReplyStatus::Partial, Some(trouble)),
            (status, trouble) => (status, reason.or(trouble)),
        };
        ReplyOutcome {
            text: std::mem::take(&mut self.text),
            status,
            reason,
            messages: std::mem::take(&mut self.messages),
            usage: self.usage,
            error,
            finish_reason: self.finish_reason.take(),
            others: std::mem::take(&mut self.others)
                .into_values()
                .filter(|(text, _)| !text.is_empty())
                .collect(),
        }
    }

    pub(super) fn forbidden_outcome(mut self, reason: String) -> ReplyOutcome {
        let status = self.interrupted_status();
        self.trouble = None;
        self.outcome(status, Some(format!("forbidden: {reason}")), None)
    }
}
