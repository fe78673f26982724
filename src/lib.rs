//! Parley: a self-hosted chat bot that streams answers from an OpenAI-compatible API into
//! Discord and Telegram chats, keeping every conversation in SQLite.

pub mod app;
pub mod engine;
pub mod health;
pub mod http;
pub mod instances;
pub mod llm;
pub mod metrics;
pub mod platform;
pub mod secret;
pub mod settings;
pub mod store;
pub mod telemetry;
