//! End-to-end tests of the `echo` binary: each test starts the real binary as a child process
//! and talks to it over TCP on 127.0.0.1, port 0, as a user would.
//!
//! One test binary (one link) holding a list of modules:
//! - `util`: start/reap servers, bounded socket I/O, deadlines, descriptor counts;
//! - `echo_servers`: one suite generated for each server (`mini`, `threaded`, `spin`, `select`,
//!   `epoll`, `sigio`, `uring`, and with the `tokio` feature `tokio-current` and `tokio-multi`);
//! - `churn`: connections reset or closed with receives and sends in flight, many times, under
//!   load (the buffer-ownership rule of a completion-based server);
//! - `cli`: flags, errors, signals and the `client` subcommand;
//! - `bench`: `echo bench` on a tiny matrix: its outputs, a failed point, a wrong server name,
//!   `--server-cpu` (a capped run where cgroups are writable, out-of-range percentages);
//! - `reliability`: the server faults (descriptor exhaustion and leaks, slow readers, short
//!   writes, resets while writing, connection cap, idle timeout), every server at once;
//! - `backends`: the `mini` server on epoll, poll and select past descriptor 1024 (only in a
//!   build with all three backends);
//! - `seccomp`: a filter that makes io_uring unavailable in a child process;
//! - `uring_fallback`: the servers under that filter: `echo --runtime uring` says why it cannot
//!   start; the `mini` server of a `uring` build falls back to epoll by itself, and refuses an
//!   explicit `--backend uring` (those cases only in such a build).

#[cfg(all(feature = "epoll", feature = "poll", feature = "select"))]
mod backends;
mod bench;
mod churn;
mod cli;
mod echo_servers;
mod reliability;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod seccomp;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod uring_fallback;
mod util;
