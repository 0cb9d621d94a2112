//! End-to-end tests of the `echo` binary: each test starts the real binary as a child process
//! and talks to it over TCP on 127.0.0.1, port 0, as a user would.
//!
//! One test binary (one link) holding a list of modules:
//! - `util`: start/reap servers, bounded socket I/O, deadlines, descriptor counts;
//! - `echo_servers`: one suite generated for each server (`mini`, `threaded`, `spin`, `select`,
//!   `epoll`, `sigio`, and with the `tokio` feature `tokio-current` and `tokio-multi`);
//! - `cli`: flags, errors, signals and the `client` subcommand;
//! - `bench`: `echo bench` on a tiny matrix: its outputs, a failed point, a wrong server name,
//!   `--server-cpu` (a capped run where cgroups are writable, out-of-range percentages);
//! - `reliability`: the server faults (descriptor exhaustion and leaks, slow readers, short
//!   writes, resets while writing, connection cap, idle timeout), every server at once;
//! - `backends`: the `mini` server on epoll, poll and select past descriptor 1024 (only in a
//!   build with all three backends);
//! - `seccomp`: a filter that makes io_uring unavailable in a child process;
//! - `uring_fallback`: the `mini` server of a `uring` build under that filter (only in such a
//!   build): it falls back to epoll by itself, and refuses an explicit `--backend uring`.

#[cfg(all(feature = "epoll", feature = "poll", feature = "select"))]
mod backends;
mod bench;
mod cli;
mod echo_servers;
mod reliability;
#[cfg(all(feature = "uring", any(target_arch = "x86_64", target_arch = "aarch64")))]
mod seccomp;
#[cfg(all(feature = "uring", any(target_arch = "x86_64", target_arch = "aarch64")))]
mod uring_fallback;
mod util;
