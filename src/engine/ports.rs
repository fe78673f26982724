//! The traits the engine needs from the outside world: a chat `Platform`, a completion `Model`
//! and a conversation `Store`, with the value types that cross them.
//!
//! One file per port; every item is re-exported here, so `crate::engine::ports::X` names it.

mod model;
mod platform;
mod receipt;
mod store;

pub use model::{
    ChatMessage, CompletionRequest, Hold, Model, ModelError, ModelName, Part, Role, StreamEvent,
    TimeoutKind, TokenStream, Usage,
};
pub use platform::{
    Button, FetchError, LengthUnit, Limits, Phase, Platform, PlatformError, Rate, Window,
};
pub use receipt::{Receipt, Started};
pub use store::{
    ChatSettings, Conversation, InterruptedReply, LastReply, MessageRowId, ReplyRecord,
    ReplyStatus, Store, StoreError, StoredMessage, TurnContext, TurnRows, TurnStart, UsageTotals,
};
