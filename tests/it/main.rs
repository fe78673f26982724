//! The integration tests: real SQLite files, fakes of the outside world.

mod chat;
mod fake_llm;
mod fake_telegram;
mod llm;
mod store;
mod telegram;
