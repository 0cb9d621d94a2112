//! Integration tests of `mini`, through its public API only.
//!
//! One test binary (one link) made of modules, one concept each:
//! - `util`: the watchdog every test body runs under, drop guards, socket helpers;
//! - `traits`: compile-time checks of the auto traits and the trait impls the API promises;
//! - `executor`: spawning, order, `yield_now`, runtime lifetime and misuse;
//! - `join`: `JoinHandle`: output, abort, panics, detaching;
//! - `wake`: wakers used from other threads, deduplicated wakes, many tasks;
//! - `timers`: `sleep`, `timeout`, `interval`, cancelling timers;
//! - `net`: `TcpListener` and `TcpStream` behaviour, one property per test;
//! - `net_load`: large transfers and many sockets (edge-triggered draining, descriptor reuse);
//! - `logging`: trace logging narrates without breaking anything;
//! - `backends`: each poller backend compiled in, chosen through the builder;
//! - `uring`: the completion-based sockets of `mini::uring` (feature `uring`);
//! - `faults`: a flooding client, a panicking handler, wake-up storms (docs/reliability.md).
//!
//! Each body runs under `util::run`, so a hang fails its test within `util::LIMIT`. No test
//! sleeps to wait for something: sleeps appear only where timers are what is tested. Every
//! socket is bound to 127.0.0.1 with port 0.
//!
//! The runtime picks its poller from `MINI_BACKEND` when set, so the suite can be run again
//! against each backend compiled in, e.g. `MINI_BACKEND=poll cargo test -p mini --features poll`.

mod backends;
mod examples;
mod executor;
mod faults;
mod join;
mod logging;
mod net;
mod net_load;
mod timers;
mod traits;
#[cfg(feature = "uring")]
mod uring;
mod util;
mod wake;
