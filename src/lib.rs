//! The `gatehouse` root package holds no library code: it is where the workspace's end-to-end
//! tests (`tests/`: a real auth-service and client-service on ephemeral ports) and examples
//! (`examples/pair`, `examples/inventory`) live, with the client crate's `cli` feature on.
