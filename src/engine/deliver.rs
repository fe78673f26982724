//! One way to deliver a text to a chat: wait for the pacer's slot, make the call, and sit out
//! what the platform said (a 429's wait, an outage) as far as the [`Policy`] allows. Replies'
//! final texts, notices, command answers, markers after a restart and the adapters' own calls
//! (a Telegram keyboard) all go through it.

use std::future::Future;
use std::time::Duration;

use tokio::time::sleep;

use super::event::{ChatKey, MessageRef};
use super::pace::{Pacer, Urgency};
use super::ports::{Limits, Phase, Platform, PlatformError};
use super::split;

/// How hard a delivery tries, and what it does with a text too long for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// 429s sat out (each for the wait the platform asked) before giving up.
    pub retry_afters: u32,
    /// Calls made in all while the platform is unavailable, 2, 4, 8… s apart.
    pub unavailable: u32,
    /// Calls made in all while the platform rejects the call.
    pub rejected: u32,
    /// A text longer than a message: cut, or sent as several messages.
    pub fit: Fit,
}

/// What a delivery does with a text longer than one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Cut it, with an ellipsis.
    Truncate,
    /// Send it as several messages, code blocks closed and reopened.
    Split,
}

impl Policy {
    /// A reply's final text: it must land.
    pub const FINAL: Self = Self {
        retry_afters: 20,
        unavailable: 4,
        rejected: 2,
        fit: Fit::Split,
    };
    /// A command's answer: a few tries, nothing cut.
    pub const ANSWER: Self = Self {
        retry_afters: 3,
        unavailable: 2,
        rejected: 1,
        fit: Fit::Split,
    };
    /// A short notice ("busy", an error): a few tries, cut to one message.
    pub const NOTICE: Self = Self {
        fit: Fit::Truncate,
        ..Self::ANSWER
    };
    /// The marker on a reply a restart interrupted.
    pub const MARKER: Self = Self {
        retry_afters: 4,
        unavailable: 5,
        rejected: 1,
        fit: Fit::Truncate,
    };
}

/// The tries of one call, in paced slots.
pub struct Delivery<'a> {
    pacer: &'a Pacer,
    chat: &'a ChatKey,
    limits: Limits,
    urgency: Urgency,
    policy: Policy,
    limited: u32,
    unavailable: u32,
    rejected: u32,
}

impl<'a> Delivery<'a> {
    /// The tries of a call of `urgency` in `chat`.
    pub fn new(
        pacer: &'a Pacer,
        chat: &'a ChatKey,
        limits: Limits,
        urgency: Urgency,
        policy: Policy,
    ) -> Self {
        Self {
            pacer,
            chat,
            limits,
            urgency,
            policy,
            limited: 0,
            unavailable: 0,
            rejected: 0,
        }
    }

    /// Waits for the next try's slot.
    pub async fn slot(&self) {
        self.pacer
            .acquire(self.chat, &self.limits, self.urgency)
            .await;
    }

    /// After a failed try: sits out what the platform asked and says whether to try again.
    /// A forbidden chat and a message that is gone are not tried again here (a reply goes on
    /// in a new message itself).
    pub async fn again(&mut self, error: &PlatformError) -> bool {
        match error {
            PlatformError::RetryAfter(wait) => {
                self.pacer.pause(self.chat, &self.limits, *wait);
                bump(&mut self.limited) <= self.policy.retry_afters
            }
            PlatformError::Unavailable(_) => {
                let tries = bump(&mut self.unavailable);
                if tries >= self.policy.unavailable {
                    return false;
                }
                sleep(Duration::from_secs(1 << tries.min(5))).await;
                true
            }
            PlatformError::Rejected(_) => bump(&mut self.rejected) < self.policy.rejected,
            PlatformError::MessageGone | PlatformError::Forbidden(_) => false,
        }
    }

    /// Makes `call` in paced slots until it succeeds or the policy gives up.
    pub async fn run<T, F, Fut>(mut self, mut call: F) -> Result<T, PlatformError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, PlatformError>>,
    {
        loop {
            self.slot().await;
            match call().await {
                Ok(value) => return Ok(value),
                Err(error) if self.again(&error).await => {}
                Err(error) => return Err(error),
            }
        }
    }
}

/// Sends `text` to `chat` as new messages (the first a reply to `reply_to`), fitted as
/// `policy` says, each paced and retried; returns the messages sent.
pub async fn send(
    platform: &dyn Platform,
    pacer: &Pacer,
    chat: &ChatKey,
    reply_to: Option<&MessageRef>,
    text: &str,
    policy: Policy,
) -> Result<Vec<MessageRef>, PlatformError> {
    let limits = platform.limits(chat);
    let pieces = match policy.fit {
        Fit::Truncate => vec![split::truncate(text, limits.max_len, limits.unit)],
        Fit::Split => split::split(text, limits.max_len, limits.unit)
            .into_iter()
            .map(|piece| piece.text)
            .collect(),
    };
    let mut sent = Vec::with_capacity(pieces.len());
    for piece in &pieces {
        let reply_to = reply_to.filter(|_| sent.is_empty());
        let urgency = if sent.is_empty() {
            Urgency::First
        } else {
            Urgency::Final
        };
        let delivery = Delivery::new(pacer, chat, limits, urgency, policy);
        let message = delivery
            .run(|| platform.send(chat, reply_to, piece, Phase::Final))
            .await?;
        sent.push(message);
    }
    Ok(sent)
}

/// Increments a counter and returns its new value.
fn bump(counter: &mut u32) -> u32 {
    *counter += 1;
    *counter
}

#[cfg(test)]
mod tests;
