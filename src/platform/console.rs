//! The terminal platform behind `parley chat`.
