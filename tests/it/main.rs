//! The integration tests: real SQLite files, fakes of the outside world.
mod fake_llm;
mod llm;
