//! One flood budget per group. Telegram counts its limits per chat, but the engine paces per
//! conversation, and each forum topic is its own: this makes every topic of a group share the
//! group's budget, and a 429 in one topic pause them all.

use std::time::Duration;

use super::outbound::Pace;
use crate::engine::event::{ChatKey, PlatformKind};
use crate::engine::pace::Pacer;
use crate::engine::ports::{LengthUnit, Limits};

/// Paces calls per group chat id, whatever the topic.
#[derive(Debug)]
pub struct GroupPace {
    pacer: Pacer,
    limits: Limits,
}

impl GroupPace {
    /// A budget of `pace` per group.
    pub fn new(pace: Pace) -> Self {
        Self {
            pacer: Pacer::new(),
            limits: Limits {
                max_len: usize::MAX,
                unit: LengthUnit::Utf16,
                min_interval: pace.min_interval,
                window: Some(pace.group_window),
                typing_every: Duration::MAX,
            },
        }
    }

    /// Waits for a slot in the group `chat`; private chats (positive ids) never wait here.
    pub async fn acquire(&self, chat: i64) {
        if chat < 0 {
            self.pacer.acquire(&key(chat), &self.limits).await;
        }
    }

    /// Pauses the whole group `chat` for `wait` (a retry-after seen in one of its topics).
    pub fn pause(&self, chat: i64, wait: Duration) {
        if chat < 0 {
            self.pacer.pause(&key(chat), wait);
        }
    }
}

fn key(chat: i64) -> ChatKey {
    ChatKey::new(PlatformKind::Telegram, chat.to_string())
}
