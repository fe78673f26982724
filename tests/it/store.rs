//! The conversation stores: one contract suite run against every `Store`, and the tests only
//! one store has (SQLite: its file, its pragmas, a restart; PostgreSQL: its URL, timeout,
//! migrations and the bot running on it).

mod coordination;
mod postgres;
mod sqlite;
mod suite;

use std::sync::Arc;

use parley::engine::memory::MemoryStore;
use parley::engine::ports::Store;

/// The `Store` contract, once per store: a new store adds its line here.
mod contract {
    use super::suite::store_suite;

    store_suite!(sqlite, crate::store::sqlite::fresh);
    store_suite!(postgres, crate::store::postgres::fresh);
    store_suite!(memory, crate::store::memory);
}

/// A new, empty in-memory store; it needs nothing kept beside it.
async fn memory() -> (Arc<dyn Store>, ()) {
    (Arc::new(MemoryStore::default()), ())
}
