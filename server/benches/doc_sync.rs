//! Document sync benchmark (filled in by the document store work).
fn main() {}
