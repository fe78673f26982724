//! In-memory implementations of the engine's ports, for engine tests and benchmarks.

mod model;
mod platform;
mod store;

pub use model::{Script, ScriptedModel};
pub use platform::{Call, CallKind, MemoryPlatform, StoredMessage};
pub use store::MemoryStore;
