//! The integration tests: real SQLite files, fakes of the outside world.

mod store;
