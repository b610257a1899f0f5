//! jitgate's end-to-end tests: the real `jitgate-server` binary against real peers
//! (Postgres, the AWS peer), all in one test binary so they share one link step and one
//! Postgres server.

// The tests, the benchmark and the demo stand outside the server and compare what it did
// with real time, so they read the wall clock (the server reads it only through its Clock).
#![allow(clippy::disallowed_methods)]
// Test code: a failed expectation panics where it failed (the lint floor of
// Cargo.toml is for the server and the core).
#![allow(clippy::indexing_slicing, clippy::expect_used, clippy::panic)]

/// The test kit (`tests/kit`), under the name the scenarios use.
use testkit as harness;

mod api;
mod audit_key;
mod authz;
mod browser;
mod cli;
mod cli_login;
mod crash;
mod demo;
mod e2e;
mod fuzz;
mod hygiene;
mod identity;
mod jitgate_cli;
mod jitgate_ssh;
mod lifecycle;
mod live_sessions;
mod one_door;
mod pages;
mod queue;
mod roles;
mod signin;
mod slack;
mod slack_link;
mod slack_socket;
mod smoke;
mod step_up;
mod store;
mod sweep;
mod unstoppable;
mod upgrade;
mod world;
