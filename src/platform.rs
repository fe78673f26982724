//! Chat platforms: adapters that turn platform events into engine events, the registry the app
//! reaches running platforms through, and the online check each adapter offers.

pub mod console;
pub mod discord;
pub mod download;
pub mod probe;
pub mod registry;
pub mod telegram;
