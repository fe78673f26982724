//! The `parley` binary.

fn main() {}
