//! The fake provider as a standalone binary.
fn main() {}
