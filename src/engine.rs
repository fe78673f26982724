//! The platform-neutral core: events, commands, dispatching, request building, streaming replies.
//!
//! Imports no platform, HTTP or SQL crate; adapters, the client and the store implement
//! [`ports`].

pub mod attachment;
pub mod command;
pub mod controls;
pub mod conversation;
pub mod deliver;
pub mod dispatcher;
pub mod event;
pub mod memory;
pub mod meter;
pub mod pace;
pub mod ports;
pub mod recover;
pub mod reply;
pub mod split;
pub mod turn;
