//! `parley check --online`: the one authenticated call each adapter offers to prove its token.

use async_trait::async_trait;

/// Why a probe failed, in words fit to print (never a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProbeError(pub String);

/// A platform's online check (Telegram `getMe`, Discord current user).
#[async_trait]
pub trait Probe: Send + Sync {
    /// Calls the platform once and says who the bot is there (`@parley_bot`), or why it failed.
    async fn probe(&self) -> Result<String, ProbeError>;
}
