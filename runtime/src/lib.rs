//! # mini: a small async runtime, written from the OS calls up
//!
//! `mini` runs many socket conversations on one thread. Each conversation is a *task* (a
//! future); a task that would have to wait for the network returns `Pending` instead, after
//! leaving a *waker* with the *reactor*; the reactor waits for all sockets at once in the OS
//! *poller* (epoll by default) and wakes exactly the tasks whose sockets became ready. An idle server
//! therefore uses no CPU at all, however many clients sit connected.
//!
//! ```
//! use mini::net::{TcpListener, TcpStream};
//!
//! mini::block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0")?;
//!     let addr = listener.local_addr()?;
//!
//!     // An echo server: one task per connection.
//!     mini::spawn(async move {
//!         while let Ok((mut stream, _)) = listener.accept().await {
//!             mini::spawn(async move {
//!                 let mut buf = [0; 1024];
//!                 while let Ok(n @ 1..) = stream.read(&mut buf).await {
//!                     if stream.write_all(&buf[..n]).await.is_err() {
//!                         break;
//!                     }
//!                 }
//!             });
//!         }
//!     });
//!
//!     let mut client = TcpStream::connect(addr).await?;
//!     client.write_all(b"hello").await?;
//!     let mut reply = [0; 5];
//!     client.read_exact(&mut reply).await?;
//!     assert_eq!(&reply, b"hello");
//!     Ok::<(), std::io::Error>(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Layers
//!
//! Each layer knows only the one below it; registrations flow down, wake-ups flow up.
//!
//! 1. `sys`: the poller, a thin safe wrapper over epoll, io_uring, poll or select (see
//!    [`Backend`]) plus an eventfd to wake it from other threads. It moves tokens, and knows
//!    nothing of tasks.
//! 2. `reactor`: the registry of sockets (readiness and waiting wakers, keyed by token) and the
//!    timers. One `turn` waits once and wakes what became ready.
//! 3. `executor`: the run queue and the loop of [`block_on`]: poll what is ready, sleep in the
//!    reactor when nothing is.
//! 4. [`net`] and [`time`]: the sockets and timers programs use.
//!
//! # Implementation notes
//!
//! The runtime is single-threaded: tasks need not be `Send`, and no lock is taken on the way
//! from an event to a task. Wakers *are* `Send + Sync`, so another thread may wake a task
//! (through a mutex-guarded queue); that wakes the poller too if the runtime is asleep in it.
//!
//! Set `RUST_LOG=mini=trace` (with a logger such as `env_logger`) to watch the runtime narrate
//! each wait, event, wake and poll.

#![deny(missing_docs)]
#![doc(test(attr(deny(warnings))))]

#[macro_use]
mod trace;

mod coop;
mod executor;
mod reactor;
mod runtime;
mod slab;
mod sys;
mod task;
#[cfg(test)]
mod test_rng;
#[cfg(test)]
mod wake_model;

pub mod net;
pub mod time;
#[cfg(feature = "uring")]
pub mod uring;

pub use runtime::{block_on, Builder, Runtime, BACKEND_ENV};
pub use sys::{Backend, UnknownBackend};
pub use task::{spawn, yield_now, JoinError, JoinHandle, YieldNow};

/// The README's Rust example, compiled as a doctest so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
