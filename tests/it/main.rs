//! The integration tests: real SQLite files, fakes of the outside world.

mod chat;
mod discord;
mod fake_discord;
mod fake_llm;
mod fake_net;
mod fake_telegram;
mod instances;
mod llm;
mod ops;
mod parts;
mod proxy;
mod store;
mod support;
mod telegram;
