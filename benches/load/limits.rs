//! The platforms' bot-wide limits as the benchmark's fakes enforce them.

use std::time::Duration;

use super::it::fake_discord;
use super::it::fake_telegram::FakeLimits;

/// Telegram's limits as the fake enforces them here: about one message a second per chat (with
/// 100 ms of leeway for arrival jitter), 20 a minute per group, 30 a second over all chats.
pub const TELEGRAM: FakeLimits = FakeLimits {
    min_gap: Duration::from_millis(900),
    group_count: 20,
    group_per: Duration::from_secs(60),
    global_per_second: 30,
};

/// The bot-wide calls a second of a side, as the fakes enforce them.
pub fn global_rate(telegram: bool) -> usize {
    if telegram {
        TELEGRAM.global_per_second
    } else {
        fake_discord::GLOBAL_PER_SECOND
    }
}
