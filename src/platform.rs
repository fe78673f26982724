//! Chat platforms: adapters that turn platform events into engine events.

pub mod budget;
pub mod console;
pub mod discord;
pub mod telegram;
