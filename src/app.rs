//! Wiring: store, client, platforms, dispatcher.
