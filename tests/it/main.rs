//! The integration tests: real SQLite files, fakes of the outside world.

mod chat;
mod fake_llm;
mod llm;
mod ops;
mod store;
