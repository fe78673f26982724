//! The OpenAI-compatible streaming completion client: wire types, SSE decoding, errors, retries.

mod client;
mod config;
mod error;
mod retry;
mod sse;
mod transport;
mod whole;
mod wire;

pub use client::{ClientError, OpenAiClient};
pub use config::{ClientConfig, ModelOverride, ParamName, Params, RetryPolicy, Timeouts};
pub use sse::decode_body;
