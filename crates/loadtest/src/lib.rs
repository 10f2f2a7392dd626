//! Gatehouse load harness: the pieces the `loadtest` binary and the criterion benches share.
//!
//! - [`setup`]: the services in-process on `127.0.0.1:0` (auth-service, client layer in local
//!   and remote mode, the demo app, a bare axum route), SQLite in a temp dir or a fresh
//!   PostgreSQL database.
//! - [`load`]: a bounded keep-alive HTTP/1.1 load loop (hyper, one connection per worker) that
//!   records latencies in an HDR histogram.
//! - [`scenarios`]: what the binary runs and prints, compared with DESIGN.md's targets.
//! - [`rss`]: runs the release binaries as child processes and reads their resident memory.
//! - [`users`]: many distinct users (cold pass, steady pass) against the release binaries.
//! - [`listener`]: the shared listener at its default limits under silent connections from one
//!   address.
//! - [`tls`]: remote verify through a client over TLS against plain HTTP, and new TLS
//!   connections per second on one thread.
//! - [`push`]: how fast a logout-all reaches a long-polling local-mode client, and what a
//!   thousand waiting long polls cost the auth-service (release binaries).
//! - [`rotation`]: two auth-service replicas rotating EdDSA keys by themselves under load, a
//!   local-mode client-service on the JWKS refusing no valid token (release binaries).
//! - [`scale`]: the auth-service on an empty database and on one filled in bulk with a year of
//!   users, refresh records, sessions and audit events (release binary, issue #26).
//!
//! Everything here talks to loopback addresses only, and every loop stops by itself after a
//! duration and a request count.

pub mod listener;
pub mod load;
pub mod push;
pub mod rotation;
pub mod rss;
pub mod scale;
pub mod scenarios;
pub mod setup;
pub mod tls;
pub mod users;
