//! `tail`: print VK Video Live events as NDJSON (work in progress).
fn main() {}
