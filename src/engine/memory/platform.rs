//! An in-memory chat platform that enforces a length limit and a rate limit.

/// TODO(reply helper): an in-memory `Platform`.
pub struct MemoryPlatform;
