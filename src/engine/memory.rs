//! In-memory implementations of the engine's ports, for engine tests and benchmarks.

mod platform;

pub use platform::{Call, CallKind, MemoryPlatform, StoredMessage};
