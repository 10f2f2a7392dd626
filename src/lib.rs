//! The `gatehouse` root package: the demo pair ([`demo`], run by `examples/pair` and checked by
//! `tests/demo.rs`), and where the workspace's end-to-end tests (`tests/`: a real auth-service
//! and client-service on ephemeral ports) and examples (`examples/pair`, `examples/inventory`)
//! live, with the client crate's `cli` feature on.

pub mod demo;
